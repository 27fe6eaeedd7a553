"""Moving-block bootstrap: shapes, a planted signal, a null, and interval coverage."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from engine.research.stats import (
    PairedEstimate,
    block_bootstrap_indices,
    mean_estimate,
    paired_difference,
    percentile_interval,
    resampled_means,
)


def _three_class_probe(shuffle: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fit a logistic probe on the first half of a synthetic set whose first
    feature sets the label; return test-half 0/1 correctness of the probe and of
    the training majority class."""
    rng = np.random.default_rng(seed)
    n, dims = 4000, 6
    x = rng.normal(size=(n, dims))
    latent = x[:, 0] + rng.normal(scale=0.7, size=n)
    y = np.digitize(latent, [-0.5, 0.5])  # 0 down, 1 flat, 2 up: about a third each
    if shuffle:
        y = rng.permutation(y)
    train, test = slice(0, n // 2), slice(n // 2, n)
    probe = LogisticRegression(max_iter=500).fit(x[train], y[train])
    majority = np.bincount(y[train]).argmax()
    correct = (probe.predict(x[test]) == y[test]).astype(float)
    return correct, (y[test] == majority).astype(float)


def test_planted_signal_gives_an_accuracy_interval_well_above_the_majority_rate():
    correct, majority = _three_class_probe(shuffle=False)
    indices = block_bootstrap_indices(len(correct), block=10, reps=1000, seed=1)
    accuracy = mean_estimate(correct, indices)
    assert accuracy.ci_low > majority.mean() + 0.10
    gain = paired_difference(correct, majority, indices)
    assert gain.ci_low > 0.10
    assert gain.estimate == pytest.approx(correct.mean() - majority.mean())


def test_shuffled_labels_give_difference_intervals_that_contain_zero():
    # A probe fitted to noise may do slightly worse than the majority class (it
    # predicts the other classes at times) but never reliably better.
    gains = []
    for seed in range(5):
        correct, majority = _three_class_probe(shuffle=True, seed=seed)
        indices = block_bootstrap_indices(len(correct), block=10, reps=1000, seed=1)
        gains.append(paired_difference(correct, majority, indices))
    assert all(gain.ci_low < 0.0 for gain in gains)
    assert sum(gain.ci_low < 0.0 < gain.ci_high for gain in gains) >= 4
    assert all(gain.ci_high - gain.ci_low > 0.01 for gain in gains)  # not a copy of the majority


def _thresholded_ar1(sims: int, n: int, phi: float, seed: int) -> np.ndarray:
    """Return (sims, n) 0/1 series: a stationary N(0, 1) AR(1) latent above 0,
    so every series has mean exactly 0.5 and positively autocorrelated rows."""
    rng = np.random.default_rng(seed)
    shocks = rng.normal(size=(sims, n)) * np.sqrt(1.0 - phi**2)
    latent = np.empty((sims, n))
    latent[:, 0] = rng.normal(size=sims)
    for t in range(1, n):
        latent[:, t] = phi * latent[:, t - 1] + shocks[:, t]
    return (latent > 0.0).astype(float)


def _coverage(series: np.ndarray, block: int, truth: float) -> float:
    # One set of replicate rows serves every simulated series: the series are
    # independent of it, and one matrix product does all of them.
    indices = block_bootstrap_indices(series.shape[1], block, reps=1000, seed=7)
    means = resampled_means(series, indices)
    covered = [low <= truth <= high for low, high in map(percentile_interval, means)]
    return float(np.mean(covered))


def test_block_intervals_cover_the_true_mean_about_95_percent_and_iid_ones_do_not():
    series = _thresholded_ar1(sims=400, n=2000, phi=0.6, seed=3)
    blocked = _coverage(series, block=25, truth=0.5)
    iid = _coverage(series, block=1, truth=0.5)
    print(f"coverage of nominal 95%: block 25 {blocked:.3f}, block 1 {iid:.3f}")
    assert 0.90 <= blocked <= 0.99
    assert iid < blocked - 0.08


def test_indices_have_the_layout_of_non_circular_blocks():
    indices = block_bootstrap_indices(103, block=10, reps=50, seed=0)
    assert indices.shape == (50, 103) and indices.dtype == np.int64
    assert indices.min() >= 0 and indices.max() <= 102
    steps = np.diff(indices, axis=1)
    inside = np.ones(102, dtype=bool)
    inside[9::10] = False  # the step from the last row of a block to the next start
    assert (steps[:, inside] == 1).all()
    assert (indices[:, ::10] <= 93).all()


def test_indices_are_determined_by_the_seed():
    first = block_bootstrap_indices(500, 20, 30, seed=5)
    np.testing.assert_array_equal(first, block_bootstrap_indices(500, 20, 30, seed=5))
    assert not np.array_equal(first, block_bootstrap_indices(500, 20, 30, seed=6))


def test_resampled_means_match_a_direct_gather_for_one_and_several_series():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 400))
    indices = block_bootstrap_indices(400, 7, reps=600, seed=2)
    several = resampled_means(values, indices)
    assert several.shape == (3, 600)
    np.testing.assert_allclose(several, values[:, indices].mean(axis=-1), atol=1e-12)
    one = resampled_means(values[1], indices)
    assert one.shape == (600,)
    np.testing.assert_allclose(one, several[1], atol=1e-12)


def test_percentile_interval_returns_the_tail_quantiles():
    low, high = percentile_interval(np.arange(101.0), level=0.9)
    assert (low, high) == pytest.approx((5.0, 95.0))


def test_estimates_are_frozen_and_centred_on_the_full_sample_mean():
    values = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    estimate = mean_estimate(values, block_bootstrap_indices(6, 2, 200, seed=0))
    assert isinstance(estimate, PairedEstimate) and estimate.estimate == pytest.approx(2 / 3)
    assert estimate.ci_low <= estimate.estimate <= estimate.ci_high
    with pytest.raises(AttributeError):
        estimate.estimate = 0.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("n", "block", "reps", "message"),
    [
        (100, 0, 10, "block must be at least 1 row, got 0"),
        (5, 10, 10, "n=5 is less than block=10"),
        (100, 10, 0, "reps must be at least 1, got 0"),
    ],
)
def test_bad_bootstrap_arguments_are_named(n, block, reps, message):
    with pytest.raises(ValueError, match=message):
        block_bootstrap_indices(n, block, reps, seed=0)


def test_bad_values_and_indices_are_named():
    indices = block_bootstrap_indices(10, 2, 5, seed=0)
    with pytest.raises(ValueError, match="values must be finite"):
        resampled_means(np.array([np.nan] * 10), indices)
    with pytest.raises(ValueError, match="indices must lie in 0..4 for 5 values"):
        resampled_means(np.zeros(5), indices)
    with pytest.raises(ValueError, match="a and b must be 1-D of the same length"):
        paired_difference(np.zeros(10), np.zeros(9), indices)
    with pytest.raises(ValueError, match="level must lie strictly between 0 and 1"):
        mean_estimate(np.zeros(10), indices, level=95)
