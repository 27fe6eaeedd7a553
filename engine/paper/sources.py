"""Where a paper session's bars come from: the exchange through ccxt, or a parquet replay.

A source answers three questions for a strategy's symbols: the time on its
clock, each symbol's closed bars opening from a given time on, and each
symbol's funding settlements in a range, both as known at a given time. The
session decides with the earlier of its own clock and the source's, so a bar
still open on either is never used.

- ``ExchangeSource``: the exchange's public REST endpoints through ccxt, with
  the feed's retries and backoff (``engine.data.feed``).
- ``ReplaySource``: recorded candles from parquet files (and the store's
  funding rates), released as a ``ReplayClock`` passes each bar's close: a
  replay is a session on the exchange's past, with no network. A replay reads
  one file for a single-symbol strategy, or a folder of candle files named as
  the store names them (``bybit_linear_BTCUSDT_1h.parquet``) for any strategy.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd

from engine.config import StrategyConfig
from engine.data.importers import read_valid_candles
from engine.data.retry import RetryPolicy
from engine.data.store import CandleStore, FundingKey, SeriesKey
from engine.data.symbols import timeframe_ms
from engine.data.validate import CANDLE_COLUMNS
from engine.errors import DataError, ExchangeError

if TYPE_CHECKING:
    import ccxt


def series_keys(config: StrategyConfig) -> list[SeriesKey]:
    """Return the series of a strategy's symbols, in order."""
    market = config.market
    return [SeriesKey(market.exchange, market.market, s, market.timeframe) for s in market.symbols]


class BarSource(Protocol):
    """What a paper session reads bars and funding from, for each of its symbols in order."""

    def time_ms(self) -> int:
        """Return the time on the source's clock."""

    def closed_bars(self, since_ms: int, now_ms: int) -> list[pd.DataFrame]:
        """Return each symbol's bars opening at or after ``since_ms`` that closed by ``now_ms``."""

    def funding(self, asset: int, since_ms: int, until_ms: int, now_ms: int) -> pd.DataFrame:
        """Return an asset's settlements (``timestamp``, ``rate``) in ``[since_ms, until_ms)``."""


class ExchangeSource:
    """An exchange's public endpoints through a ccxt client.

    Every error of the client is raised as an ``ExchangeError``, which a
    session logs and asks again after.

    Parameters
    ----------
    exchange : ccxt.Exchange
        A client from ``engine.data.feed.make_exchange`` (public endpoints only).
    keys : list of SeriesKey
        The markets and timeframe, one per symbol.
    retry : RetryPolicy
        Retries of each request.
    """

    def __init__(self, exchange: ccxt.Exchange, keys: list[SeriesKey], retry: RetryPolicy) -> None:
        self.exchange, self.keys, self.retry = exchange, keys, retry

    def time_ms(self) -> int:
        """Return the exchange's time."""
        with self._errors("its time"):
            return int(self.exchange.fetch_time())

    def closed_bars(self, since_ms: int, now_ms: int) -> list[pd.DataFrame]:
        """Return each symbol's closed bars from ``since_ms`` on (the kline endpoint, paged)."""
        from engine.data.feed import fetch_ohlcv

        with self._errors("closed bars"):
            return [
                fetch_ohlcv(self.exchange, key, since_ms, retry=self.retry, now_ms=now_ms)
                for key in self.keys
            ]

    def funding(self, asset: int, since_ms: int, until_ms: int, now_ms: int) -> pd.DataFrame:
        """Return an asset's funding settlements in ``[since_ms, until_ms)`` published by now."""
        from engine.data.feed import fetch_funding

        key = self.keys[asset]
        funding = FundingKey(key.exchange, key.market, key.symbol)
        with self._errors("funding rates"):
            return fetch_funding(
                self.exchange, funding, since_ms, until_ms, retry=self.retry, now_ms=now_ms
            )

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        # The client's errors as ExchangeError; ccxt is loaded, since the client is its.
        import ccxt

        try:
            yield
        except ccxt.BaseError as exc:
            raise ExchangeError(
                f"{self.exchange.id} did not give {what}: {type(exc).__name__}: {exc}"
            ) from exc


class ReplayClock:
    """A simulated clock: ``speed`` simulated seconds per real second; 0 jumps at once."""

    def __init__(self, now_ms: int, speed: float = 0.0) -> None:
        self._now, self.speed = now_ms, speed

    def now_ms(self) -> int:
        """Return the simulated time."""
        return self._now

    def jump(self, ms: int) -> None:
        """Set the simulated time to ``ms`` at once."""
        self._set(ms)

    def wait_until(self, ms: int, stop: threading.Event) -> None:
        """Advance the simulated time to ``ms``, waiting ``(ms - now) / speed`` real time."""
        if self.speed > 0 and ms > self._now:
            stop.wait((ms - self._now) / 1000 / self.speed)
        self._set(max(self._now, ms))

    def _set(self, ms: int) -> None:
        # Every change of the simulated time goes through here.
        self._now = ms


class ReplaySource:
    """Recorded candles and funding rates, released as a replay clock passes them.

    Parameters
    ----------
    candles : list of pandas.DataFrame
        Each symbol's candles in the store schema, sorted by time.
    funding : list of pandas.DataFrame
        Each symbol's funding settlements (``timestamp``, ``rate``); empty
        without funding.
    interval_ms : int
        The bar interval.
    clock : ReplayClock
        The replay's time: a bar exists once the clock has passed its close.
    """

    def __init__(
        self,
        candles: list[pd.DataFrame],
        funding: list[pd.DataFrame],
        interval_ms: int,
        clock: ReplayClock,
    ) -> None:
        self.candles = [c[list(CANDLE_COLUMNS)].reset_index(drop=True) for c in candles]
        self._stamps = [c["timestamp"].to_numpy() for c in self.candles]
        self.rates = [f[["timestamp", "rate"]].reset_index(drop=True) for f in funding]
        self._settled = [r["timestamp"].to_numpy() for r in self.rates]
        self.interval, self.clock = interval_ms, clock

    def time_ms(self) -> int:
        """Return the replay clock's time."""
        return self.clock.now_ms()

    def closed_bars(self, since_ms: int, now_ms: int) -> list[pd.DataFrame]:
        """Return each symbol's recorded bars from ``since_ms`` on that closed by ``now_ms``."""
        frames = []
        for candles, stamps in zip(self.candles, self._stamps, strict=True):
            first = int(np.searchsorted(stamps, since_ms))
            stop = int(np.searchsorted(stamps, now_ms - self.interval, side="right"))
            frames.append(candles.iloc[first:stop].reset_index(drop=True))
        return frames

    def funding(self, asset: int, since_ms: int, until_ms: int, now_ms: int) -> pd.DataFrame:
        """Return an asset's settlements in ``[since_ms, until_ms)`` at or before ``now_ms``."""
        settled = self._settled[asset]
        first = int(np.searchsorted(settled, since_ms))
        stop = int(np.searchsorted(settled, min(until_ms - 1, now_ms), side="right"))
        return self.rates[asset].iloc[first:stop].reset_index(drop=True)


def load_replay(config: StrategyConfig, candles: Path) -> list[pd.DataFrame]:
    """Return each symbol's recorded candles, validated as the store validates its files.

    ``candles`` is a parquet file of a single-symbol strategy's candles, or a
    folder holding each symbol's file under the store's name for it.

    Raises
    ------
    DataError
        If a file is missing, unreadable, empty, or fails validation (NaN or
        non-positive prices, timestamps off the strategy's bar grid...).
    """
    interval = timeframe_ms(config.market.timeframe)
    if candles.is_dir():
        files = [candles / key.filename for key in series_keys(config)]
        missing = [path.name for path in files if not path.is_file()]
        if missing:
            raise DataError(
                f"replay folder {candles} has no {', '.join(missing)}; expected one candle "
                "file per symbol, named as the store names it"
            )
        return [read_valid_candles(path, interval) for path in files]
    if not candles.is_file():
        raise DataError(f"replay file {candles} does not exist; expected a parquet of candles")
    if len(config.market.symbols) > 1:
        raise DataError(
            f"replay file {candles}: a strategy of {len(config.market.symbols)} symbols replays "
            "a folder holding each symbol's candle file, named as the store names it"
        )
    return [read_valid_candles(candles, interval)]


def replay_source(
    config: StrategyConfig,
    candles: Path | list[pd.DataFrame],
    store: CandleStore,
    clock: ReplayClock,
) -> ReplaySource:
    """Return a replay of recorded candles with the store's funding rates.

    ``candles`` is a parquet file or folder (read by ``load_replay``) or the
    frames ``load_replay`` returned.

    Raises
    ------
    DataError
        If a file is missing or invalid, or funding is charged and the store
        has no funding rates of a symbol.
    """
    market = config.market
    recorded = load_replay(config, candles) if isinstance(candles, Path) else candles
    funding = []
    for symbol in market.symbols:
        rates = pd.DataFrame({"timestamp": np.array([], np.int64), "rate": np.array([])})
        if market.market == "linear" and config.costs.funding:
            key = FundingKey(market.exchange, market.market, symbol)
            if not store.exists(key):
                raise DataError(
                    f"costs.funding is on but the store {store.root} has no funding rates for "
                    f"{symbol} to replay. Fetch them with `engine data fetch --funding`, or set "
                    "costs.funding: false"
                )
            rates = store.load_funding(market.exchange, market.market, symbol)
        funding.append(rates)
    interval = timeframe_ms(market.timeframe)
    return ReplaySource(recorded, funding, interval, clock)
