"""Headline metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from engine.report.metrics import daily_returns, direction_accuracy, summarise
from engine.sim.enums import fill_dt, ledger_dt

HOUR = 3_600_000
DAY = 24 * HOUR


def test_daily_returns_compound_each_utc_day_from_the_last_close():
    # Day 1 closes at 102 (from 100 before the first bar), day 2 at 100.98, day 3 has no
    # bar (flat), day 4 closes at 111.078.
    stamps = np.array([0, 12 * HOUR, DAY + 5 * HOUR, DAY + 23 * HOUR, 3 * DAY])
    equity = np.array([101.0, 102.0, 99.0, 100.98, 111.078])
    returns = daily_returns(stamps, equity, initial=100.0)
    assert list(returns.index) == list(pd.date_range("1970-01-01", periods=4, freq="D"))
    np.testing.assert_allclose(returns.to_numpy(), [0.02, -0.01, 0.0, 0.1], rtol=1e-12)


def test_direction_accuracy_counts_bars_with_a_score_and_a_known_non_zero_move():
    score = np.array([0.5, -0.2, 0.0, 0.3, -0.1, 0.4])
    forward = np.array([0.01, 0.02, 0.05, np.nan, -0.03, 0.0])
    # Counted: bars 0 (right), 1 (wrong), 4 (right); 2 has no score, 3 no move yet, 5 no move.
    assert direction_accuracy(score, forward) == pytest.approx(2 / 3)
    assert direction_accuracy(np.zeros(3), np.ones(3)) is None


def _fills(quantity: list[float], price: list[float]) -> np.ndarray:
    fills = np.zeros(len(quantity), fill_dt)
    fills["quantity"], fills["price"] = quantity, price
    return fills


def _ledger(**columns: list[float]) -> np.ndarray:
    ledger = np.zeros(len(next(iter(columns.values()))), ledger_dt)
    for name, values in columns.items():
        ledger[name] = values
    return ledger


def test_summary_of_a_four_day_run():
    daily = pd.Series([0.01, -0.02, 0.03, 0.0], index=pd.date_range("2025-01-01", periods=4))
    equity = np.array([110.0, 88.0, 121.0, 108.9])
    ledger = _ledger(
        maker_fee=[0.01, 0.0, 0.02, 0.0],
        taker_fee=[0.03, 0.0, 0.0, 0.04],
        slippage=[0.005, 0.0, 0.0, 0.005],
        funding=[0.0, -0.2, 0.0, 0.5],
        liquidation_fee=[0.0, 0.0, 0.0, 0.0],
    )
    position = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, -0.5], [0.0, 0.0]])
    fills = _fills([1.0, 0.5], [100.0, 120.0])
    metrics = summarise(daily, equity, position, 100.0, fills, ledger, 0.6)
    # Mean 0.005; sample variance (0.005^2 + 0.025^2 + 0.025^2 + 0.005^2) / 3 = 0.0013 / 3.
    sharpe = 0.005 / math.sqrt(0.0013 / 3) * math.sqrt(365)
    # Downside deviation: sqrt(0.02^2 / 4 days) = 0.01.
    sortino = 0.005 / 0.01 * math.sqrt(365)
    assert metrics["sharpe"] == pytest.approx(sharpe, rel=1e-12)
    assert metrics["sortino"] == pytest.approx(sortino, rel=1e-12)
    assert metrics["total_return"] == pytest.approx(0.089, rel=1e-12)
    assert metrics["final_equity"] == 108.9
    # Peaks 100, 110, 110, 121, 121: the deepest fall is 88 from 110.
    assert metrics["max_drawdown"] == pytest.approx(-0.2, rel=1e-12)
    # Traded notional 1 * 100 + 0.5 * 120 = 160 on a capital of 100.
    assert metrics["turnover"] == pytest.approx(1.6, rel=1e-12)
    # Bars 1 and 3 end holding a position (in one asset or the other).
    assert metrics["time_in_market"] == 0.5
    assert metrics["trades"] == 2
    assert metrics["direction_accuracy"] == 0.6
    assert metrics["maker_fee"] == pytest.approx(0.03, rel=1e-12)
    assert metrics["taker_fee"] == pytest.approx(0.07, rel=1e-12)
    assert metrics["fees"] == pytest.approx(0.1, rel=1e-12)
    assert metrics["slippage"] == pytest.approx(0.01, rel=1e-12)
    assert metrics["funding"] == pytest.approx(0.3, rel=1e-12)


def test_flat_returns_have_no_sharpe_or_sortino_and_no_drawdown():
    daily = pd.Series(np.zeros(5), index=pd.date_range("2025-01-01", periods=5))
    ledger = _ledger(maker_fee=np.zeros(5).tolist())
    flat = np.zeros((5, 1))
    metrics = summarise(daily, np.full(5, 100.0), flat, 100.0, _fills([], []), ledger, None)
    assert metrics["sharpe"] is None and metrics["sortino"] is None
    assert metrics["max_drawdown"] == 0.0 and metrics["total_return"] == 0.0
    assert metrics["turnover"] == 0.0 and metrics["trades"] == 0
    assert metrics["time_in_market"] == 0.0
