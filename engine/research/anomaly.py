"""Causal anomaly scores, large-move events, and how well a score warns of them.

A score at bar t uses bars 0..t only: its baseline (mean and standard deviation)
comes from the bars strictly before t, so a bar is never compared with itself
or with anything later. Events look forward by construction (they are what a
score tries to anticipate) and are NaN where the future is not yet known.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from engine.research.volatility import log_returns, realised_variance

# Rows per chunk of the trailing z-score: bounds the temporaries to about
# 2,048 x D float64 values.
_CHUNK = 2048
# A window's variance below this share of its mean square (after the causal
# shift) is round-off of the cumulative sums: the dimension is constant there.
_RELATIVE_VARIANCE_FLOOR = 1e-12


def _trailing_z(
    x: np.ndarray,
    history: int,
    min_history: int,
    reduce: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    # Signed z of each row of x (T, D) against the rows max(0, t-history)..t-1,
    # reduced over dimensions chunk by chunk. Rows are shifted by the first row
    # (known before every later row) so cumulative sums stay small; prefix sums
    # accumulate in row order, so row t's output depends on rows 0..t only.
    if history < 1 or not 1 <= min_history <= history:
        raise ValueError(
            f"need history >= 1 and 1 <= min_history <= history, "
            f"got history={history}, min_history={min_history}"
        )
    rows = len(x)
    out = np.full(rows, np.nan)
    if rows == 0:
        return out
    shifted = x - x[0]
    first = np.zeros((rows + 1, x.shape[1]))
    second = np.zeros((rows + 1, x.shape[1]))
    np.cumsum(shifted, axis=0, out=first[1:])
    np.cumsum(shifted**2, axis=0, out=second[1:])
    t = np.arange(rows)
    low = np.maximum(t - history, 0)
    count = (t - low)[:, None].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        for start in range(0, rows, _CHUNK):
            block = slice(start, min(start + _CHUNK, rows))
            n = count[block]
            mean = (first[block] - first[low[block]]) / n
            mean_square = (second[block] - second[low[block]]) / n
            variance = mean_square - mean**2
            defined = (n >= min_history) & (variance > _RELATIVE_VARIANCE_FLOOR * mean_square)
            z = np.where(defined, (shifted[block] - mean) / np.sqrt(variance), np.nan)
            out[block] = reduce(z)
    return out


def trailing_max_abs_z(z: np.ndarray, history: int, min_history: int) -> np.ndarray:
    """Return each row's largest absolute z-score against the rows before it.

    For row t of ``z``, each dimension d is standardised by the mean ``m`` and
    population standard deviation ``s`` of ``z[max(0, t - history) : t, d]``
    (the bars strictly before t), and the row's score is
    ``max_d |z[t, d] - m| / s``. This is the article's anomaly rule on a
    representation (history 4,320 hourly bars, about six months; flag above 3).

    Causal: the score at t reads rows 0..t only, and the running sums behind
    ``m`` and ``s`` accumulate in row order, so changing rows after t leaves the
    scores up to t bit-identical.

    Parameters
    ----------
    z : numpy.ndarray
        ``(T, D)`` finite representations, one row per bar.
    history : int
        Number of preceding rows in the baseline.
    min_history : int
        Fewest preceding rows for a score; earlier rows are NaN.

    Returns
    -------
    numpy.ndarray
        ``(T,)`` float64 scores. Dimensions with ``s == 0`` (constant over the
        baseline, up to the round-off of the running sums) are left out of the
        maximum; a row where every dimension is left out is NaN.

    Notes
    -----
    ``m`` and ``s`` come from float64 cumulative sums of the rows minus the
    first row, so the cost is ``O(T * D)``: 25,000 x 320 takes about 0.4 s of
    CPU (``benchmarks/research_speed.py``).
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"z must be a (T, D) array, got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError("z must be finite; drop the rows without a representation first")
    return _trailing_z(z, history, min_history, lambda scores: np.fmax.reduce(np.abs(scores), 1))


def volatility_zscore(
    close: np.ndarray, window: int = 24, history: int = 4320, min_history: int = 720
) -> np.ndarray:
    """Return the z-score of recent realised volatility against its own past.

    The realised volatility at bar t is ``sqrt(mean(r_s ** 2))`` over the
    ``window`` one-bar log returns ``r_s = log(close_s / close_{s-1})``,
    ``s = t - window + 1 .. t``; it is defined from ``t = window``. Its z-score
    at t is ``(v_t - m) / s`` with ``m`` and ``s`` the mean and population
    standard deviation of the volatility at the ``history`` bars before t where
    it is defined. This is the trivial detector an anomaly score must beat.

    Causal: bar t reads closes 0..t only.

    Parameters
    ----------
    close : numpy.ndarray
        ``(T,)`` positive closing prices.
    window : int
        Returns per realised volatility.
    history : int
        Preceding volatility values in the baseline.
    min_history : int
        Fewest preceding volatility values for a score.

    Returns
    -------
    numpy.ndarray
        ``(T,)`` signed z-scores, NaN where the volatility or its baseline is
        undefined or the baseline is constant.
    """
    volatility = np.sqrt(realised_variance(close, window))
    out = np.full(len(volatility), np.nan)
    if len(volatility) > window:
        out[window:] = _trailing_z(
            volatility[window:, None], history, min_history, lambda z: z[:, 0]
        )
    return out


def large_moves(close: np.ndarray, threshold: float) -> np.ndarray:
    """Return 1.0 at the bars where a large one-bar move happened, else 0.0.

    Bar s is a large move when ``|close_s / close_{s-1} - 1| > threshold``
    (computed as ``expm1`` of the log return); bar 0 has no previous close and
    is 0.0. Pass the result as ``moves`` to ``detection_metrics`` to score the
    lead time of every move.

    Parameters
    ----------
    close : numpy.ndarray
        ``(T,)`` positive closing prices.
    threshold : float
        Absolute simple return that counts as large, such as 0.02.

    Returns
    -------
    numpy.ndarray
        ``(T,)`` float64 zeros and ones.
    """
    if threshold <= 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    return (np.abs(np.expm1(log_returns(close))) > threshold).astype(np.float64)


def large_move_events(close: np.ndarray, threshold: float, within: int) -> np.ndarray:
    """Return 1.0 where a large one-bar move happens within the next bars.

    A large move at bar s is one ``large_moves`` marks. Row t
    is 1.0 when a large move happens at some s in ``t + 1 .. t + within``, 0.0
    when none does, and NaN for the last ``within`` rows, whose window is not
    yet complete.

    Parameters
    ----------
    close : numpy.ndarray
        ``(T,)`` positive closing prices.
    threshold : float
        Absolute simple return that counts as large, such as 0.02.
    within : int
        Bars ahead in which the move must happen.

    Returns
    -------
    numpy.ndarray
        ``(T,)`` float64 events.
    """
    if within < 1:
        raise ValueError(f"within must be at least 1 bar, got {within}")
    moves = large_moves(close, threshold)
    seen = np.concatenate(([0.0], np.cumsum(moves)))  # seen[i] = moves at bars 0..i-1
    out = np.full(len(moves), np.nan)
    known = max(len(moves) - within, 0)
    t = np.arange(known)
    out[:known] = seen[t + within + 1] - seen[t + 1] > 0
    return out


def _score_and_events(score: np.ndarray, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Both as float64, checked to be 1-D of one length.
    score = np.asarray(score, dtype=np.float64)
    events = np.asarray(events, dtype=np.float64)
    if score.ndim != 1 or score.shape != events.shape:
        raise ValueError(
            f"score and events must be 1-D of the same length, got {score.shape} and {events.shape}"
        )
    return score, events


def detection_metrics(
    score: np.ndarray,
    events: np.ndarray,
    flag_above: float,
    within: int,
    moves: np.ndarray | None = None,
) -> dict:
    """Return how well flags ``score > flag_above`` anticipate events.

    Rows where both ``score`` and ``events`` are finite are scored:

    - ``rows``: their number; ``events``: how many of them are events (1.0);
    - ``flag_rate``: share of rows flagged;
    - ``base_rate``: share of rows that are events;
    - ``precision``: share of flagged rows that are events (NaN if none flagged);
    - ``recall``: share of event rows that are flagged (NaN if no events);
    - ``lift``: ``precision / base_rate``;
    - ``roc_auc``: ROC AUC of the raw score against the events (NaN when the
      rows hold one class only);
    - ``lead_time_bars``: over the large moves at bars s with at least one
      flagged row (finite score above ``flag_above``) in ``s - within .. s - 1``,
      the mean of ``s`` minus the earliest such row; NaN if no move was flagged.

    Without ``moves``, the large moves are those that ``events`` pins down: a
    run of event rows starting at t0 (row t0 - 1 is a known non-event) opens
    with a move at exactly ``s = t0 + within``, the first move after at least
    ``within`` quiet bars. Later moves inside a run cannot be read from
    ``events`` alone; pass ``moves`` to score every move.

    Parameters
    ----------
    score : numpy.ndarray
        ``(T,)`` anomaly scores, NaN where undefined.
    events : numpy.ndarray
        ``(T,)`` events from ``large_move_events``, NaN where unknown.
    flag_above : float
        A row is flagged when its score exceeds this value.
    within : int
        The ``within`` the events were built with.
    moves : numpy.ndarray, optional
        ``(T,)`` 1 at the bars where a large move happened, 0 elsewhere.

    Returns
    -------
    dict
        The metrics above, as Python floats (``rows`` and ``events`` as ints).
    """
    score, events = _score_and_events(score, events)
    if within < 1:
        raise ValueError(f"within must be at least 1 bar, got {within}")
    flagged_all = score > flag_above  # NaN compares False: never flagged
    scored = np.isfinite(score) & np.isfinite(events)
    flagged, hit = flagged_all[scored], events[scored] == 1.0
    nan = float("nan")
    precision = float(hit[flagged].mean()) if flagged.any() else nan
    base_rate = float(hit.mean()) if hit.size else nan
    both_classes = hit.any() and not hit.all()
    if moves is None:
        known = np.isfinite(events)
        opens = np.flatnonzero(known[1:] & known[:-1] & (events[1:] == 1.0) & (events[:-1] == 0.0))
        move_bars = opens + 1 + within
    else:
        moves = np.asarray(moves)
        if moves.shape != score.shape:
            raise ValueError(f"moves must have the shape of score {score.shape}, got {moves.shape}")
        move_bars = np.flatnonzero(moves)
    return {
        "rows": int(scored.sum()),
        "events": int(hit.sum()),
        "flag_rate": float(flagged.mean()) if flagged.size else nan,
        "base_rate": base_rate,
        "precision": precision,
        "recall": float(flagged[hit].mean()) if hit.any() else nan,
        "lift": precision / base_rate if base_rate > 0 else nan,
        "roc_auc": float(roc_auc_score(hit, score[scored])) if both_classes else nan,
        "lead_time_bars": _mean_lead_time(np.flatnonzero(flagged_all), move_bars, within),
    }


def _mean_lead_time(flag_rows: np.ndarray, move_bars: np.ndarray, within: int) -> float:
    # For each move bar s, the earliest flagged row at or after s - within; it
    # counts when it lies before s.
    if flag_rows.size == 0 or move_bars.size == 0:
        return float("nan")
    position = np.searchsorted(flag_rows, move_bars - within)
    found = position < flag_rows.size
    earliest = flag_rows[np.minimum(position, flag_rows.size - 1)]
    warned = found & (earliest < move_bars)
    if not warned.any():
        return float("nan")
    return float((move_bars[warned] - earliest[warned]).mean())


def resampled_auc(score: np.ndarray, events: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Return the ROC AUC of ``score`` against ``events`` in each bootstrap replicate.

    A replicate weighs each row by how often its ``indices`` row drew it;
    rows whose score or event is not finite weigh nothing. The AUC is the
    Mann-Whitney statistic of the weighted rows: the share of (event,
    non-event) pairs in which the event scores higher, ties counting half.
    The rows are sorted once, so a replicate costs O(n). NaN for a replicate
    holding one class only.

    Parameters
    ----------
    score, events : numpy.ndarray
        ``(n,)`` scores and 0/1 events (NaN where unknown).
    indices : numpy.ndarray
        ``(reps, m)`` row indices from ``engine.research.stats.block_bootstrap_indices``.

    Returns
    -------
    numpy.ndarray
        ``(reps,)`` AUCs.
    """
    score, events = _score_and_events(score, events)
    usable = np.isfinite(score) & np.isfinite(events)
    # Tie groups of the scores, in increasing order.
    _, group = np.unique(np.where(usable, score, 0.0), return_inverse=True)
    positive = usable & (events == 1.0)
    negative = usable & (events == 0.0)
    groups = int(group.max()) + 1 if group.size else 0
    out = np.full(len(indices), np.nan)
    for rep, rows in enumerate(np.asarray(indices)):
        weight = np.bincount(rows, minlength=len(score)).astype(np.float64)
        pos = np.bincount(group, weights=weight * positive, minlength=groups)
        neg = np.bincount(group, weights=weight * negative, minlength=groups)
        pairs = pos.sum() * neg.sum()
        if pairs > 0:
            below = np.cumsum(neg) - neg
            out[rep] = float((pos * (below + 0.5 * neg)).sum() / pairs)
    return out


def roc_points(
    score: np.ndarray, events: np.ndarray, max_points: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """Return the ROC curve of a score against events, thinned for plotting.

    Parameters
    ----------
    score, events : numpy.ndarray
        ``(T,)`` scores and 0/1 events; rows where either is NaN are dropped.
    max_points : int
        Most points returned; the first and last points of the curve are kept
        and the rest are taken evenly along it.

    Returns
    -------
    tuple of numpy.ndarray
        False-positive rates and true-positive rates, both empty when the rows
        hold one class only.
    """
    score, events = _score_and_events(score, events)
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    scored = np.isfinite(score) & np.isfinite(events)
    hit = events[scored] == 1.0
    if hit.all() or not hit.any():
        return np.empty(0), np.empty(0)
    false_positive, true_positive, _ = roc_curve(hit, score[scored])
    keep = np.unique(np.linspace(0, len(false_positive) - 1, max_points).round().astype(np.int64))
    return false_positive[keep], true_positive[keep]
