"""Moving-block bootstrap intervals for means and paired differences over test bars.

Test bars of a market series are autocorrelated (overlapping label horizons,
volatility clusters), so resampling single bars understates the spread of a
mean. A moving-block bootstrap resamples runs of consecutive bars instead. All
representations are resampled with the same replicate rows, so a difference
between two of them is paired: its interval reflects the spread of the
difference, not of each mean separately.

The functions take arrays and return arrays, floats or ``PairedEstimate``; they
fit nothing and read nothing outside their arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Replicates per matrix product in resampled_means: bounds the count matrix to
# about 256 x n float64 values.
_CHUNK = 256


def block_bootstrap_indices(n: int, block: int, reps: int, seed: int) -> np.ndarray:
    """Return the row indices of a moving-block bootstrap.

    Each replicate draws ``ceil(n / block)`` block starts uniformly from
    ``0 .. n - block`` (non-circular: a block never wraps past the last row),
    lays out ``block`` consecutive row indices from each start, concatenates
    the blocks and keeps the first ``n`` indices.

    Parameters
    ----------
    n : int
        Number of rows (test bars) to resample.
    block : int
        Block length in rows; use at least the autocorrelation length of the
        resampled values (for example twice the label horizon).
    reps : int
        Number of replicates.
    seed : int
        Seed of the random generator; the same arguments give the same indices.

    Returns
    -------
    numpy.ndarray
        ``(reps, n)`` int64 row indices in ``0 .. n - 1``.

    Raises
    ------
    ValueError
        If ``block < 1``, ``n < block`` or ``reps < 1``.
    """
    if block < 1:
        raise ValueError(f"block must be at least 1 row, got {block}")
    if n < block:
        raise ValueError(f"need at least one block of rows: n={n} is less than block={block}")
    if reps < 1:
        raise ValueError(f"reps must be at least 1, got {reps}")
    blocks = -(-n // block)
    starts = np.random.default_rng(seed).integers(0, n - block + 1, size=(reps, blocks))
    rows = starts[:, :, None] + np.arange(block, dtype=np.int64)
    return rows.reshape(reps, blocks * block)[:, :n].astype(np.int64, copy=False)


def resampled_means(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Return the mean of ``values`` over each replicate's rows.

    Each replicate's rows are turned into a count per row (how often the row
    was drawn), and the means are matrix products of the counts with the
    values, one per chunk of 256 replicates. Memory stays near ``256 * n``
    float64 values instead of a gather of ``reps * n * k``; 10 series of
    15,000 rows over 2,000 replicates take about 0.1 s of CPU with BLAS on one
    thread (``benchmarks/research_speed.py``).

    Parameters
    ----------
    values : numpy.ndarray
        Finite values per row, shape ``(n,)`` or ``(k, n)`` for ``k`` series
        on the same rows (for example 0/1 correctness or per-bar losses).
    indices : numpy.ndarray
        ``(reps, m)`` integer row indices in ``0 .. n - 1``, as returned by
        ``block_bootstrap_indices``.

    Returns
    -------
    numpy.ndarray
        ``(reps,)`` means for one series, ``(k, reps)`` for ``k`` series.

    Raises
    ------
    ValueError
        If the shapes disagree, a value is not finite or an index is out of range.
    """
    values = np.asarray(values, dtype=np.float64)
    indices = np.asarray(indices)
    if values.ndim not in (1, 2):
        raise ValueError(f"values must have shape (n,) or (k, n), got {values.shape}")
    if indices.ndim != 2 or not np.issubdtype(indices.dtype, np.integer) or indices.size == 0:
        raise ValueError(
            f"indices must be a non-empty (reps, n) integer array, "
            f"got shape {indices.shape} of {indices.dtype}"
        )
    n = values.shape[-1]
    if indices.min() < 0 or indices.max() >= n:
        raise ValueError(
            f"indices must lie in 0..{n - 1} for {n} values, got {indices.min()}..{indices.max()}"
        )
    if not np.isfinite(values).all():
        raise ValueError("values must be finite; drop the rows with NaN or inf first")
    series = np.atleast_2d(values)
    reps, drawn = indices.shape
    means = np.empty((series.shape[0], reps))
    counts = np.empty((min(reps, _CHUNK), n))
    for start in range(0, reps, _CHUNK):
        chunk = indices[start : start + _CHUNK]
        for row, drawn_rows in enumerate(chunk):
            counts[row] = np.bincount(drawn_rows, minlength=n)
        means[:, start : start + len(chunk)] = series @ counts[: len(chunk)].T
    means /= drawn
    return means[0] if values.ndim == 1 else means


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Return the central ``level`` percentile interval of bootstrap samples.

    Parameters
    ----------
    samples : numpy.ndarray
        One-dimensional bootstrap replicates of a statistic.
    level : float
        Coverage of the interval, strictly between 0 and 1.

    Returns
    -------
    tuple of float
        The ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles (linear
        interpolation between order statistics).
    """
    samples = np.asarray(samples, dtype=np.float64)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    if samples.ndim != 1 or samples.size == 0:
        raise ValueError(f"samples must be a non-empty 1-D array, got shape {samples.shape}")
    low, high = np.quantile(samples, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(low), float(high)


@dataclass(frozen=True)
class PairedEstimate:
    """A point estimate over the test rows and its bootstrap percentile interval."""

    estimate: float
    ci_low: float
    ci_high: float


def mean_estimate(values: np.ndarray, indices: np.ndarray, level: float = 0.95) -> PairedEstimate:
    """Return the mean of one series with its block-bootstrap interval.

    Parameters
    ----------
    values : numpy.ndarray
        ``(n,)`` finite values per test row, such as 0/1 correctness.
    indices : numpy.ndarray
        ``(reps, n)`` replicate rows from ``block_bootstrap_indices``.
    level : float
        Coverage of the percentile interval.

    Returns
    -------
    PairedEstimate
        ``estimate`` is the mean over all ``n`` rows; the interval is the
        percentile interval of the replicate means.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {values.shape}")
    low, high = percentile_interval(resampled_means(values, indices), level)
    return PairedEstimate(float(values.mean()), low, high)


def paired_difference(
    a: np.ndarray, b: np.ndarray, indices: np.ndarray, level: float = 0.95
) -> PairedEstimate:
    """Return ``mean(a) - mean(b)`` with a paired block-bootstrap interval.

    Both series are scored on the same rows of every replicate, so the
    interval is that of the per-row difference ``a - b``: what two
    representations share (hard and easy stretches of the test period) cancels.

    Parameters
    ----------
    a, b : numpy.ndarray
        ``(n,)`` finite values on the same test rows (for example the 0/1
        correctness of two predictors).
    indices : numpy.ndarray
        ``(reps, n)`` replicate rows from ``block_bootstrap_indices``.
    level : float
        Coverage of the percentile interval.

    Returns
    -------
    PairedEstimate
        The difference of the means over all ``n`` rows and the percentile
        interval of the replicate differences.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be 1-D of the same length, got {a.shape} and {b.shape}")
    return mean_estimate(a - b, indices, level)
