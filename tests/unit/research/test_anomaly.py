"""Anomaly scores are causal and exact; detection metrics reward warnings that come early."""

from __future__ import annotations

import numpy as np
import pytest

from engine.research.anomaly import (
    detection_metrics,
    large_move_events,
    large_moves,
    roc_points,
    trailing_max_abs_z,
    volatility_zscore,
)


def _reference_max_abs_z(z: np.ndarray, history: int, min_history: int) -> np.ndarray:
    out = np.full(len(z), np.nan)
    for t in range(len(z)):
        past = z[max(0, t - history) : t]
        if len(past) < min_history:
            continue
        spread = past.std(axis=0)
        live = spread > 0
        if live.any():
            out[t] = np.max(np.abs(z[t, live] - past[:, live].mean(axis=0)) / spread[live])
    return out


def test_trailing_max_abs_z_by_hand():
    z = np.array([[0.0, 5.0], [2.0, 5.0], [4.0, 5.0], [10.0, 7.0], [1.0, 1.0]])
    scores = trailing_max_abs_z(z, history=3, min_history=2)
    assert np.isnan(scores[:2]).all()  # fewer than two rows before
    assert scores[2] == pytest.approx(3.0)  # dim 0: |4 - 1| / 1; dim 1 constant, left out
    assert scores[3] == pytest.approx(8.0 / np.sqrt(8.0 / 3.0))  # dim 0 only
    # rows 1..3: dim 0 mean 16/3, std sqrt(104/9); dim 1 mean 17/3, std sqrt(8/9)
    dim0 = abs(1.0 - 16.0 / 3.0) / np.sqrt(104.0 / 9.0)
    dim1 = abs(1.0 - 17.0 / 3.0) / np.sqrt(8.0 / 9.0)
    assert scores[4] == pytest.approx(max(dim0, dim1))


def test_trailing_max_abs_z_matches_a_direct_loop_and_is_nan_when_all_dims_are_constant():
    rng = np.random.default_rng(0)
    z = rng.normal(loc=50.0, size=(300, 4))
    z[:, 2] = 7.0
    np.testing.assert_allclose(
        trailing_max_abs_z(z, history=40, min_history=10), _reference_max_abs_z(z, 40, 10)
    )
    assert np.isnan(trailing_max_abs_z(np.full((20, 3), 2.5), 10, 2)).all()


def test_trailing_max_abs_z_up_to_t_ignores_rows_after_t():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(5000, 16))
    changed = z.copy()
    changed[3001:] = rng.normal(scale=100.0, size=(1999, 16))
    before = trailing_max_abs_z(z, history=1000, min_history=200)
    after = trailing_max_abs_z(changed, history=1000, min_history=200)
    np.testing.assert_array_equal(before[:3001], after[:3001])
    assert not np.array_equal(before[3001:], after[3001:])


def test_volatility_zscore_by_hand():
    returns = np.array([0.01, -0.01, 0.02, 0.0, 0.03, -0.01])
    close = 100.0 * np.exp(np.concatenate(([0.0], np.cumsum(returns))))
    scores = volatility_zscore(close, window=2, history=3, min_history=2)
    # realised volatility at bars 2..6: sqrt of the mean of two squared returns
    vol = np.sqrt(np.array([2e-4, 5e-4, 4e-4, 9e-4, 10e-4]) / 2.0)
    assert np.isnan(scores[:4]).all()  # no volatility before bar 2, no baseline of 2 before bar 4
    assert scores[4] == pytest.approx((vol[2] - vol[:2].mean()) / vol[:2].std())
    assert scores[5] == pytest.approx((vol[3] - vol[:3].mean()) / vol[:3].std())
    assert scores[6] == pytest.approx((vol[4] - vol[1:4].mean()) / vol[1:4].std())


def test_volatility_zscore_up_to_t_ignores_bars_after_t():
    rng = np.random.default_rng(2)
    close = 100.0 * np.exp(np.cumsum(rng.normal(scale=0.01, size=3000)))
    changed = close.copy()
    changed[2001:] *= np.exp(np.cumsum(rng.normal(scale=0.05, size=999)))
    before = volatility_zscore(close, window=24, history=500, min_history=100)
    after = volatility_zscore(changed, window=24, history=500, min_history=100)
    np.testing.assert_array_equal(before[:2001], after[:2001])
    assert np.isfinite(before[124:]).all() and np.isnan(before[:124]).all()


def test_large_move_events_by_hand():
    close = np.array([100.0, 101.0, 104.0, 104.0, 100.0, 100.5])
    np.testing.assert_array_equal(large_moves(close, threshold=0.02), [0, 0, 1, 0, 1, 0])
    np.testing.assert_array_equal(
        large_move_events(close, threshold=0.02, within=1), [0, 1, 0, 1, 0, np.nan]
    )
    np.testing.assert_array_equal(
        large_move_events(close, threshold=0.02, within=2), [1, 1, 1, 1, np.nan, np.nan]
    )
    np.testing.assert_array_equal(
        large_move_events(close, threshold=0.05, within=2), [0, 0, 0, 0, np.nan, np.nan]
    )


def test_detection_metrics_by_hand():
    nan = np.nan
    events = np.array([0, 0, 1, 1, 0, 0, 1, 1, 0, nan, nan])  # moves open at bars 4 and 8
    score = np.array([0, 0, 0, 5, 0, 0, 5, 0, 0, 0, 0], dtype=float)
    metrics = detection_metrics(score, events, flag_above=3.0, within=2)
    assert metrics["rows"] == 9 and metrics["events"] == 4
    assert metrics["flag_rate"] == pytest.approx(2 / 9)
    assert metrics["base_rate"] == pytest.approx(4 / 9)
    assert metrics["precision"] == 1.0 and metrics["recall"] == 0.5
    assert metrics["lift"] == pytest.approx(9 / 4)
    assert metrics["roc_auc"] == pytest.approx(
        0.75
    )  # 2 of 4 events outscore all 5 others; ties half
    assert metrics["lead_time_bars"] == pytest.approx(1.5)  # bar 4 warned at 3, bar 8 at 6
    moves = np.zeros(11)
    moves[[4, 5, 8]] = 1
    every_move = detection_metrics(score, events, 3.0, 2, moves=moves)
    assert every_move["lead_time_bars"] == pytest.approx(5 / 3)  # bar 5 warned at 3


def test_detection_metrics_are_nan_where_undefined():
    metrics = detection_metrics(np.zeros(6), np.zeros(6), flag_above=1.0, within=2)
    assert metrics["events"] == 0 and metrics["flag_rate"] == 0.0
    for key in ("precision", "recall", "lift", "roc_auc", "lead_time_bars"):
        assert np.isnan(metrics[key]), key


def _planted_moves(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Quiet returns with 4% jumps at random bars, and a score that rises in the
    # four bars before each jump.
    rng = np.random.default_rng(seed)
    returns = rng.normal(scale=0.002, size=rows)
    jumps = np.sort(rng.choice(np.arange(10, rows), size=rows // 100, replace=False))
    returns[jumps] = 0.04 * rng.choice([-1.0, 1.0], size=jumps.size)
    close = 100.0 * np.exp(np.cumsum(returns))
    score = rng.normal(size=rows)
    for lead in range(1, 5):
        score[jumps - lead] += 4.0
    return close, score, jumps


def test_a_score_that_rises_before_large_moves_has_high_auc_and_positive_lead_time():
    close, score, jumps = _planted_moves(rows=20_000, seed=3)
    events = large_move_events(close, threshold=0.02, within=5)
    metrics = detection_metrics(score, events, flag_above=3.0, within=5)
    assert metrics["roc_auc"] > 0.75
    assert metrics["lift"] > 3.0
    assert 2.0 < metrics["lead_time_bars"] <= 4.0
    moves = large_moves(close, threshold=0.02)
    np.testing.assert_array_equal(np.flatnonzero(moves), jumps)
    every_move = detection_metrics(score, events, 3.0, 5, moves=moves)
    assert 2.0 < every_move["lead_time_bars"] <= 4.0


def test_a_random_score_has_auc_near_one_half():
    close, _, _ = _planted_moves(rows=20_000, seed=4)
    events = large_move_events(close, threshold=0.02, within=5)
    score = np.random.default_rng(5).normal(size=len(close))
    metrics = detection_metrics(score, events, flag_above=2.0, within=5)
    assert abs(metrics["roc_auc"] - 0.5) < 0.03
    assert abs(metrics["lift"] - 1.0) < 0.3


def test_roc_points_are_thinned_and_span_the_curve():
    close, score, _ = _planted_moves(rows=5000, seed=6)
    events = large_move_events(close, threshold=0.02, within=5)
    fpr, tpr = roc_points(score, events, max_points=50)
    assert 2 <= len(fpr) == len(tpr) <= 50
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()
    empty = roc_points(np.ones(10), np.zeros(10))
    assert empty[0].size == 0 and empty[1].size == 0


def test_bad_anomaly_inputs_are_named():
    with pytest.raises(ValueError, match=r"z must be a \(T, D\) array"):
        trailing_max_abs_z(np.zeros(5), 3, 2)
    with pytest.raises(ValueError, match="z must be finite"):
        trailing_max_abs_z(np.full((5, 2), np.nan), 3, 2)
    with pytest.raises(ValueError, match="1 <= min_history <= history"):
        trailing_max_abs_z(np.zeros((5, 2)), 3, 4)
    with pytest.raises(ValueError, match="close must hold positive finite prices"):
        large_move_events(np.array([1.0, 0.0, 2.0]), 0.01, 1)
    with pytest.raises(ValueError, match="score and events must be 1-D of the same length"):
        detection_metrics(np.zeros(4), np.zeros(5), 1.0, 1)


def test_resampled_auc_equals_sklearn_on_each_replicate_with_ties_and_missing_rows():
    from sklearn.metrics import roc_auc_score

    from engine.research.anomaly import resampled_auc
    from engine.research.stats import block_bootstrap_indices

    rng = np.random.default_rng(7)
    n = 3000
    events = (rng.random(n) < 0.08).astype(float)
    score = np.round(rng.normal(size=n) + 0.7 * events, 1)
    score[:40] = np.nan
    events[-5:] = np.nan
    indices = block_bootstrap_indices(n, 24, 20, seed=1)
    aucs = resampled_auc(score, events, indices)
    known = np.isfinite(score) & np.isfinite(events)
    for rep, rows in enumerate(indices):
        kept = rows[known[rows]]
        assert aucs[rep] == pytest.approx(roc_auc_score(events[kept], score[kept]), abs=1e-12)
    whole = resampled_auc(score, events, np.arange(n)[None, :])[0]
    assert whole == pytest.approx(roc_auc_score(events[known], score[known]), abs=1e-12)


def test_resampled_auc_is_nan_for_a_replicate_with_one_class():
    from engine.research.anomaly import resampled_auc

    score = np.arange(10.0)
    events = np.array([0.0] * 9 + [1.0])
    aucs = resampled_auc(score, events, np.array([[0, 1, 2, 3], [0, 1, 8, 9]]))
    assert np.isnan(aucs[0]) and aucs[1] == 1.0
