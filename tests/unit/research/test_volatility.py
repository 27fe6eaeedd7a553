"""Volatility targets and features are exact and causal; HAR and ridge forecast out of sample."""

from __future__ import annotations

import numpy as np
import pytest

from engine.research.volatility import (
    fit_har,
    fit_ridge,
    future_log_variance,
    har_features,
    qlike,
    r2,
    realised_variance,
)


def _close(returns: np.ndarray) -> np.ndarray:
    return 100.0 * np.exp(np.concatenate(([0.0], np.cumsum(returns))))


def _garch_close(rows: int, seed: int) -> np.ndarray:
    # GARCH(1, 1) returns: variance clusters, so past variance predicts future variance.
    rng = np.random.default_rng(seed)
    omega, alpha, beta = 1e-6, 0.05, 0.94
    variance = omega / (1.0 - alpha - beta)
    returns = np.empty(rows)
    for t in range(rows):
        returns[t] = np.sqrt(variance) * rng.normal()
        variance = omega + alpha * returns[t] ** 2 + beta * variance
    return _close(returns)


def test_variance_target_and_features_by_hand():
    close = _close(np.array([0.01, -0.02, 0.0, 0.03]))  # returns at bars 1..4
    np.testing.assert_allclose(
        realised_variance(close, 2), [np.nan, np.nan, 2.5e-4, 2e-4, 4.5e-4], atol=1e-15
    )
    np.testing.assert_allclose(
        future_log_variance(close, horizon=2),
        np.log([2.5e-4, 2e-4, 4.5e-4, np.nan, np.nan]),
        rtol=1e-12,
    )
    features = har_features(close, windows=(1, 3))
    np.testing.assert_allclose(features[:, 0], np.log([np.nan, 1e-4, 4e-4, 1e-12, 9e-4]))
    np.testing.assert_allclose(features[:, 1], np.log([np.nan] * 3 + [5e-4 / 3, 13e-4 / 3]))


def test_har_features_up_to_t_ignore_bars_after_t():
    close = _garch_close(3000, seed=0)
    changed = close.copy()
    changed[2001:] *= np.exp(np.random.default_rng(1).normal(scale=0.05, size=1000))
    before, after = har_features(close), har_features(changed)
    np.testing.assert_array_equal(before[:2001], after[:2001])
    assert not np.array_equal(before[2001:], after[2001:])
    assert np.isnan(before[:720, 2]).all() and np.isfinite(before[720:]).all()


def test_har_forecasts_garch_variance_out_of_sample():
    close = _garch_close(8000, seed=2)
    x, y = har_features(close), future_log_variance(close, horizon=24)
    train, test = slice(720, 5000), slice(5024, 8000)  # a horizon's embargo between them
    model = fit_har(x[train], y[train])
    forecast = model.predict(x[test])
    assert model.alpha is None
    assert r2(y[test], forecast) > 0.2
    assert qlike(y[test], forecast) < qlike(y[test], np.full(2976, y[train].mean()))
    ridge = fit_ridge(x[train], y[train], gap=24)
    assert r2(y[test], ridge.predict(x[test])) > 0.2


def test_qlike_is_zero_for_perfect_forecasts_and_positive_otherwise():
    y = np.log(np.array([1e-4, 4e-4, 2e-5]))
    assert qlike(y, y) == 0.0
    assert qlike(y, y + 0.3) > 0.0 and qlike(y, y - 0.3) > 0.0
    assert qlike(y, y - 0.3) > qlike(y, y + 0.3)  # under-forecasting costs more
    assert qlike([0.0, np.nan], [np.log(2.0), 5.0]) == pytest.approx(0.5 + np.log(2.0) - 1.0)


def test_r2_by_hand_on_finite_rows():
    assert r2(np.array([1.0, 2.0, 3.0, np.nan]), np.array([1.0, 2.0, 4.0, 0.0])) == 0.5
    assert np.isnan(r2(np.ones(5), np.zeros(5)))


def _linear_rows(rows: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 5))
    return x, x @ np.array([1.0, -2.0, 0.5, 0.0, 3.0]) + rng.normal(scale=noise, size=rows)


def test_ridge_reads_nothing_after_the_training_rows():
    x, y = _linear_rows(2000, noise=1.0, seed=3)
    later = x[1500:].copy()
    first = fit_ridge(x[:1000], y[:1000]).predict(later)
    x[1000:], y[1000:] = 1e6, np.nan
    np.testing.assert_array_equal(fit_ridge(x[:1000], y[:1000]).predict(later), first)


def test_ridge_chooses_alpha_on_the_validation_rows_and_not_the_gap():
    x, y = _linear_rows(1000, noise=0.1, seed=4)
    assert fit_ridge(x, y).alpha == 0.1  # a clean linear relation: the least penalty
    rng = np.random.default_rng(5)
    many, noise = rng.normal(size=(150, 40)), rng.normal(size=150)
    assert fit_ridge(many, noise).alpha == 1000.0  # nothing to learn: the most penalty
    # rows 750..799 are the gap before the last 200 validation rows
    scrambled = y.copy()
    scrambled[750:800] = np.random.default_rng(6).normal(scale=100.0, size=50)
    assert fit_ridge(x, scrambled, gap=50).alpha == fit_ridge(x, y, gap=50).alpha


def test_har_recovers_exact_linear_coefficients():
    x, _ = _linear_rows(200, noise=0.0, seed=7)
    model = fit_har(x[:, :3], 0.5 + x[:, :3] @ np.array([0.2, 0.3, 0.4]))
    np.testing.assert_allclose(model.predict(np.eye(3)), 0.5 + np.array([0.2, 0.3, 0.4]))


def test_bad_forecast_inputs_are_named():
    x, y = _linear_rows(20, noise=1.0, seed=8)
    with pytest.raises(ValueError, match="training rows must be finite"):
        fit_har(x, np.full(20, np.nan))
    with pytest.raises(ValueError, match=r"need x of shape \(n, p\) and y of shape \(n,\)"):
        fit_ridge(x, y[:10])
    with pytest.raises(ValueError, match="leave 1 to fit after 4 validation and 15 gap rows"):
        fit_ridge(x, y, gap=15)
    with pytest.raises(ValueError, match="window must be at least 1 bar"):
        har_features(_close(np.zeros(5)), windows=(0,))
