"""Where a paper session's bars come from: the exchange through ccxt, or a parquet replay.

A source answers three questions for one symbol: the time on its clock, the
closed bars opening from a given time on, and the funding settlements in a
range, both as known at a given time. The session decides with the earlier of
its own clock and the source's, so a bar still open on either is never used.

- ``ExchangeSource``: the exchange's public REST endpoints through ccxt, with
  the feed's retries and backoff (``engine.data.feed``).
- ``ReplaySource``: recorded candles from a parquet file (and the store's
  funding rates), released as a ``ReplayClock`` passes each bar's close: a
  replay is a session on the exchange's past, with no network.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

import ccxt
import numpy as np
import pandas as pd

from engine.config import StrategyConfig
from engine.data.feed import RetryPolicy, fetch_funding, fetch_ohlcv
from engine.data.importers import read_valid_candles
from engine.data.store import CandleStore, FundingKey, SeriesKey
from engine.data.symbols import timeframe_ms
from engine.data.validate import CANDLE_COLUMNS
from engine.errors import DataError


def series_key(config: StrategyConfig) -> SeriesKey:
    """Return the series of a single-symbol strategy."""
    market = config.market
    return SeriesKey(market.exchange, market.market, market.symbols[0], market.timeframe)


class BarSource(Protocol):
    """What a paper session reads bars and funding from."""

    def time_ms(self) -> int:
        """Return the time on the source's clock."""

    def closed_bars(self, since_ms: int, now_ms: int) -> pd.DataFrame:
        """Return the bars opening at or after ``since_ms`` that closed by ``now_ms``."""

    def funding(self, since_ms: int, until_ms: int, now_ms: int) -> pd.DataFrame:
        """Return the settlements (``timestamp``, ``rate``) in ``[since_ms, until_ms)`` by now."""


class ExchangeSource:
    """An exchange's public endpoints through a ccxt client.

    Parameters
    ----------
    exchange : ccxt.Exchange
        A client from ``engine.data.feed.make_exchange`` (public endpoints only).
    key : SeriesKey
        The market and timeframe.
    retry : RetryPolicy
        Retries of each request.
    """

    def __init__(self, exchange: ccxt.Exchange, key: SeriesKey, retry: RetryPolicy) -> None:
        self.exchange, self.key, self.retry = exchange, key, retry

    def time_ms(self) -> int:
        """Return the exchange's time."""
        return int(self.exchange.fetch_time())

    def closed_bars(self, since_ms: int, now_ms: int) -> pd.DataFrame:
        """Return the closed bars from ``since_ms`` on (the kline endpoint, paged)."""
        return fetch_ohlcv(self.exchange, self.key, since_ms, retry=self.retry, now_ms=now_ms)

    def funding(self, since_ms: int, until_ms: int, now_ms: int) -> pd.DataFrame:
        """Return the funding settlements in ``[since_ms, until_ms)`` published by now."""
        key = FundingKey(self.key.exchange, self.key.market, self.key.symbol)
        return fetch_funding(
            self.exchange, key, since_ms, until_ms, retry=self.retry, now_ms=now_ms
        )


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
    candles : pandas.DataFrame
        Candles in the store schema, sorted by time.
    funding : pandas.DataFrame
        Funding settlements (``timestamp``, ``rate``); empty without funding.
    interval_ms : int
        The bar interval.
    clock : ReplayClock
        The replay's time: a bar exists once the clock has passed its close.
    """

    def __init__(
        self,
        candles: pd.DataFrame,
        funding: pd.DataFrame,
        interval_ms: int,
        clock: ReplayClock,
    ) -> None:
        self.candles = candles[list(CANDLE_COLUMNS)].reset_index(drop=True)
        self._stamps = self.candles["timestamp"].to_numpy()
        self.rates = funding[["timestamp", "rate"]].reset_index(drop=True)
        self._settled = self.rates["timestamp"].to_numpy()
        self.interval, self.clock = interval_ms, clock

    def time_ms(self) -> int:
        """Return the replay clock's time."""
        return self.clock.now_ms()

    def closed_bars(self, since_ms: int, now_ms: int) -> pd.DataFrame:
        """Return the recorded bars from ``since_ms`` on that closed by ``now_ms``."""
        first = int(np.searchsorted(self._stamps, since_ms))
        stop = int(np.searchsorted(self._stamps, now_ms - self.interval, side="right"))
        return self.candles.iloc[first:stop].reset_index(drop=True)

    def funding(self, since_ms: int, until_ms: int, now_ms: int) -> pd.DataFrame:
        """Return the recorded settlements in ``[since_ms, until_ms)`` at or before ``now_ms``."""
        first = int(np.searchsorted(self._settled, since_ms))
        stop = int(np.searchsorted(self._settled, min(until_ms - 1, now_ms), side="right"))
        return self.rates.iloc[first:stop].reset_index(drop=True)


def load_replay(config: StrategyConfig, candles: Path) -> pd.DataFrame:
    """Return the recorded candles of a replay file, validated as the store validates its files.

    Raises
    ------
    DataError
        If the file is missing, unreadable, empty, or fails validation (NaN or
        non-positive prices, timestamps off the strategy's bar grid...).
    """
    if not candles.is_file():
        raise DataError(f"replay file {candles} does not exist; expected a parquet of candles")
    return read_valid_candles(candles, timeframe_ms(config.market.timeframe))


def replay_source(
    config: StrategyConfig, candles: Path | pd.DataFrame, store: CandleStore, clock: ReplayClock
) -> ReplaySource:
    """Return a replay of recorded candles with the store's funding rates.

    ``candles`` is a parquet file (validated by ``load_replay``) or the frame
    ``load_replay`` returned.

    Raises
    ------
    DataError
        If the file is missing or invalid, or funding is charged and the store
        has no funding rates of the symbol.
    """
    market = config.market
    recorded = load_replay(config, candles) if isinstance(candles, Path) else candles
    symbol = market.symbols[0]
    funding = pd.DataFrame({"timestamp": np.array([], np.int64), "rate": np.array([])})
    if market.market == "linear" and config.costs.funding:
        key = FundingKey(market.exchange, market.market, symbol)
        if not store.exists(key):
            raise DataError(
                f"costs.funding is on but the store {store.root} has no funding rates for "
                f"{symbol} to replay. Fetch them with `engine data fetch --funding`, or set "
                "costs.funding: false"
            )
        funding = store.load_funding(market.exchange, market.market, symbol)
    return ReplaySource(recorded, funding, series_key(config).interval_ms, clock)
