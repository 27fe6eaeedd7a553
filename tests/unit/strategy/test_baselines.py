"""Rule-based baseline signals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.runner.decisions import Pipeline
from engine.runner.schedule import RefitSchedule
from engine.runner.walkforward import walk_forward
from engine.strategy.baselines import BuyAndHold, RsiReversion, SmaCross

from .conftest import COSTS, make_history, with_future_changed


def test_buy_and_hold_is_long_on_every_out_of_sample_bar(history):
    decisions = walk_forward(
        history, Pipeline(BuyAndHold()), RefitSchedule(1000, 500, 100, 0), 1200, COSTS
    )
    assert (decisions.target == 1.0).all()
    assert decisions.mode[0] == 0 and (decisions.mode[1:] == 2).all()  # market once, then wait


def test_sma_cross_follows_the_sign_of_fast_minus_slow(history):
    rows = slice(1000, 1200)
    score = SmaCross(fast=5, slow=20).transform(history, rows)["score"]
    close = pd.Series(history.close)
    expected = np.sign(close.rolling(5).mean() - close.rolling(20).mean()).to_numpy()[rows]
    np.testing.assert_array_equal(score, expected)
    direction = SmaCross(fast=5, slow=20).direction(score)
    np.testing.assert_array_equal(direction, expected)
    long_only = SmaCross(fast=5, slow=20, allow_short=False)
    assert set(long_only.direction(score)) <= {0, 1}


def test_rsi_reversion_buys_oversold_and_exits_near_the_middle():
    signal = RsiReversion(period=14, lower=30, upper=70, band=2.5)
    score = (50 - np.array([50.0, 29.0, 40.0, 49.0, 71.0, 60.0, 51.0])) / 50
    assert signal.direction(score).tolist() == [0, 1, 1, 0, -1, -1, 0]


def test_rsi_reversion_score_is_bounded(history):
    score = RsiReversion().transform(history, slice(0, 1500))["score"]
    assert (np.abs(score) <= 1).all() and score.std() > 0


@pytest.mark.parametrize("signal", [SmaCross(5, 20), RsiReversion()], ids=["sma", "rsi"])
def test_baseline_scores_ignore_the_future(signal, history):
    t = 1100
    rows = slice(1000, 1300)
    before = signal.transform(history, rows)["score"]
    after = signal.transform(with_future_changed(history, t), rows)["score"]
    np.testing.assert_array_equal(before[: t - 1000 + 1], after[: t - 1000 + 1])
    assert not np.array_equal(before, after)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="fast < slow"):
        SmaCross(fast=50, slow=20)
    with pytest.raises(ValueError, match="symmetric"):
        RsiReversion(lower=20, upper=70)


def test_history_without_information_still_runs(history):
    flat = make_history(predictive=False)
    decisions = walk_forward(
        flat, Pipeline(SmaCross(5, 20)), RefitSchedule(1000, 500, 50, 0), 1100, COSTS
    )
    assert set(np.unique(decisions.target)) <= {-1.0, 0.0, 1.0}
