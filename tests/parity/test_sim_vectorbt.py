"""The kernel agrees with ``vectorbt.Portfolio.from_orders`` where vectorbt can express the book.

That book is one asset, market orders at the next open sized as a target
fraction of equity, 0.03% fees, no slippage. vectorbt limits a buy to the cash
balance (a full long entry buys ``equity / (price * (1 + fee))`` units),
never liquidates and skips orders below 1e-8 units (its default ``min_size``),
so the engine runs with ``sizing="cash"``, no maintenance margin and a minimum
quantity of 1e-8 for long/short, and as spot for long only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import vectorbt as vbt

from engine.sim import MarketSpec, SimConfig, simulate
from engine.sim.enums import Side

FEE = 0.0003
RTOL = 1e-9
LONG_SHORT = SimConfig(sizing="cash", maintenance_margin=0.0)
LONG_ONLY = SimConfig(sizing="cash", spot=True)
VECTORBT_MARKET = MarketSpec(min_qty=1e-8)


def assert_matches_vectorbt(candles: pd.DataFrame, target: np.ndarray, config: SimConfig) -> None:
    """Run both on the same candles and targets; compare equity at every bar and every fill."""
    open_ = candles["open"].to_numpy()
    close = candles["close"].to_numpy()
    result = simulate(
        candles["timestamp"].to_numpy(),
        open_,
        candles["high"].to_numpy(),
        candles["low"].to_numpy(),
        close,
        target,
        config=config,
        markets=VECTORBT_MARKET,
        cash=10_000.0,
    )
    portfolio = vbt.Portfolio.from_orders(
        close,
        size=np.concatenate([[np.nan], target[:-1]]),  # decided at t, filled at the open of t+1
        size_type="targetpercent",
        price=open_,
        fees=FEE,
        init_cash=10_000.0,
        direction="longonly" if config.spot else "both",
    )
    np.testing.assert_allclose(result.equity, portfolio.value().to_numpy(), rtol=RTOL)
    orders = portfolio.orders.values
    fills = result.fills
    assert fills.size == orders.size > 0
    np.testing.assert_array_equal(fills["bar"], orders["idx"])
    np.testing.assert_array_equal(fills["side"] == Side.SELL, orders["side"] == 1)
    for ours, theirs in (("quantity", "size"), ("price", "price"), ("fee", "fees")):
        np.testing.assert_allclose(fills[ours], orders[theirs], rtol=RTOL, err_msg=ours)


@pytest.fixture(scope="module")
def btc(shared_data) -> pd.DataFrame:
    return pd.read_parquet(shared_data / "bybit_linear_BTCUSDT_1h.parquet")


def trend(close: np.ndarray, window: int) -> np.ndarray:
    """Return close minus its trailing mean, NaN before the window fills."""
    mean = pd.Series(close).rolling(window).mean().to_numpy()
    return close - mean


def test_long_short_trend_on_bybit_btc_matches_vectorbt(btc: pd.DataFrame) -> None:
    target = np.sign(trend(btc["close"].to_numpy(), 48))
    assert_matches_vectorbt(btc, target, LONG_SHORT)


def test_long_only_trend_on_bybit_btc_matches_vectorbt(btc: pd.DataFrame) -> None:
    signal = trend(btc["close"].to_numpy(), 48)
    target = np.where(np.isnan(signal), np.nan, (signal > 0).astype(float))
    assert_matches_vectorbt(btc, target, LONG_ONLY)


def test_fractional_targets_on_bybit_btc_match_vectorbt(btc: pd.DataFrame) -> None:
    signal = trend(btc["close"].to_numpy(), 24)
    target = np.clip(signal / np.nanstd(signal), -1.0, 1.0)
    assert_matches_vectorbt(btc, target, LONG_SHORT)


def synthetic_candles(n_bars: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Return hourly random-walk candles and a target in {-1, 0, 1} changing on ~2% of bars."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.005, n_bars)))
    open_ = np.concatenate([[100.0], close[:-1]])
    candles = pd.DataFrame(
        {
            "timestamp": np.arange(n_bars, dtype=np.int64) * 3_600_000,
            "open": open_,
            "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999,
            "close": close,
        }
    )
    changes = rng.random(n_bars) < 0.02
    target = np.where(changes, rng.integers(-1, 2, n_bars).astype(float), np.nan)
    return candles, target


@pytest.mark.slow
def test_million_synthetic_bars_match_vectorbt_long_short() -> None:
    candles, target = synthetic_candles(1_000_000, seed=7)
    assert_matches_vectorbt(candles, target, LONG_SHORT)


@pytest.mark.slow
def test_million_synthetic_bars_match_vectorbt_long_only() -> None:
    candles, target = synthetic_candles(1_000_000, seed=8)
    assert_matches_vectorbt(candles, np.abs(target), LONG_ONLY)
