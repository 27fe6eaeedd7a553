"""The store as the runner's source of historical bars and funding rates.

``load_candles`` reads every symbol of a strategy from the parquet store (and
fetches a missing series through ccxt unless ``ENGINE_OFFLINE=1``), cut to the
bars all symbols share; ``check_candles`` tells at once, before anything slow,
when a series is missing and cannot be fetched; ``load_funding`` aligns each
symbol's funding rates to its bars; ``out_of_sample_rows`` finds the bars a
backtest acts on.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from engine.config import StrategyConfig
from engine.data.store import CandleStore, FundingKey, SeriesKey
from engine.data.times import day_range_ms
from engine.errors import DataError, EngineError
from engine.sim.run import align_funding

#: Set to 1 to never fetch missing candles from the exchange.
OFFLINE_ENV = "ENGINE_OFFLINE"
_POINT_AT_A_STORE = (
    "point --store DIR or ENGINE_DATA_DIR at a candle store that has it, "
    "or fetch it with `engine data fetch`"
)


def series_keys(config: StrategyConfig) -> list[SeriesKey]:
    """Return the candle series of every symbol of a strategy."""
    market = config.market
    return [SeriesKey(market.exchange, market.market, s, market.timeframe) for s in market.symbols]


def _missing(store: CandleStore, key: SeriesKey) -> str:
    if store.root.is_dir():
        return f"the store {store.root} has no {key.filename}"
    return f"there is no candle store at {store.root} (for {key.filename})"


def check_candles(config: StrategyConfig, store: CandleStore) -> None:
    """Raise a ``DataError`` at once if the store lacks a series that cannot be fetched.

    A missing series can be fetched unless ``ENGINE_OFFLINE=1`` and if the
    exchange answers one request, made without retries, so that a missing
    store without a network fails in seconds rather than after every retry.
    """
    missing = [key for key in series_keys(config) if not store.exists(key)]
    if not missing:
        return
    # ccxt takes a second to import; a store that holds every series never needs it.
    from engine.data.feed import check_reachable, make_exchange

    what = _missing(store, missing[0])
    if os.environ.get(OFFLINE_ENV) == "1":
        raise DataError(f"{what} and {OFFLINE_ENV}=1 forbids fetching it; {_POINT_AT_A_STORE}")
    try:
        check_reachable(make_exchange(missing[0].exchange))
    except EngineError as exc:
        raise DataError(
            f"{what}, and {missing[0].exchange} cannot be reached to fetch it ({exc}); "
            f"{_POINT_AT_A_STORE}"
        ) from None


def load_candles(
    config: StrategyConfig, store: CandleStore
) -> tuple[list[SeriesKey], list[pd.DataFrame]]:
    """Return the candles of every symbol, fetching missing ones, on their common bars.

    Several symbols are cut to the bars they all have; each series was
    validated on load, so the common bars are gap-free if the series are.
    """
    check_candles(config, store)
    keys = series_keys(config)
    frames = []
    for key in keys:
        if not store.exists(key):
            _fetch_missing(config, store, key)
        frames.append(store.load(key, config.store.gap_policy, config.store.max_gap_bars))
    return keys, common_bars(frames, config.market.symbols)


def common_bars(frames: list[pd.DataFrame], symbols: list[str]) -> list[pd.DataFrame]:
    """Return each symbol's candles cut to the bars all of them have.

    Raises
    ------
    DataError
        If the symbols have no bar in common.
    """
    common = frames[0]["timestamp"]
    for frame in frames[1:]:
        common = common[common.isin(frame["timestamp"])]
    if len(common) == 0:
        raise DataError(f"the symbols {', '.join(symbols)} have no bar in common")
    return [f[f["timestamp"].isin(common)].reset_index(drop=True) for f in frames]


def _fetch_missing(config: StrategyConfig, store: CandleStore, key: SeriesKey) -> None:
    # Fetch the series (and its funding rates when they are charged) from the
    # exchange: enough bars before the out-of-sample start for fitting.
    from engine.data.feed import make_exchange, update_candles, update_funding

    warmup = config.walk_forward.fit_bars + config.walk_forward.embargo_bars
    start, until = day_range_ms(config.out_of_sample.start, config.out_of_sample.end)
    since = start - 2 * warmup * key.interval_ms
    try:
        client = make_exchange(key.exchange)
        update_candles(store, client, key, since, until)
        if config.costs.funding and key.market == "linear":
            funding = FundingKey(key.exchange, key.market, key.symbol)
            update_funding(store, client, funding, since, until)
    except EngineError as exc:
        raise DataError(
            f"{_missing(store, key)} and fetching it failed: {exc}; {_POINT_AT_A_STORE}"
        ) from None


def load_funding(
    config: StrategyConfig, store: CandleStore, key: SeriesKey, timestamps: np.ndarray
) -> tuple[np.ndarray, str | None]:
    """Return the funding rate settling in each bar, and the last settlement known.

    Without funding (switched off, or a spot market) the rates are 0 and the
    last settlement is None.
    """
    if not config.costs.funding or key.market != "linear":
        return np.zeros(len(timestamps)), None
    try:
        rates = store.load_funding(key.exchange, key.market, key.symbol)
    except DataError as exc:
        raise DataError(
            f"costs.funding is on but funding rates for {key.symbol} are missing: {exc}. "
            "Fetch them with `engine data fetch --funding`, or set costs.funding: false"
        ) from None
    known_until = pd.Timestamp(int(rates["timestamp"].iloc[-1]), unit="ms", tz="UTC")
    per_bar = align_funding(timestamps, rates["timestamp"].to_numpy(), rates["rate"].to_numpy())
    return per_bar, known_until.isoformat()


def out_of_sample_rows(config: StrategyConfig, timestamps: np.ndarray) -> tuple[int, int]:
    """Return the rows ``[start, stop)`` of the bars in the out-of-sample range."""
    start_ms, stop_ms = day_range_ms(config.out_of_sample.start, config.out_of_sample.end)
    start = int(np.searchsorted(timestamps, start_ms))
    stop = len(timestamps) if stop_ms is None else int(np.searchsorted(timestamps, stop_ms))
    if stop - start < 2:
        first = pd.Timestamp(int(timestamps[0]), unit="ms").date()
        last = pd.Timestamp(int(timestamps[-1]), unit="ms").date()
        raise DataError(
            f"out_of_sample {config.out_of_sample.start} to {config.out_of_sample.end or 'end'} "
            f"holds {max(stop - start, 0)} bars; the data runs from {first} to {last}"
        )
    return start, stop
