"""Causal per-bar quantities and forward-looking training labels used by components.

Labels look ahead by construction; they are computed from a ``History`` that
ends at the last closed bar, so a row whose horizon runs past that bar has no
label (NaN) rather than a guessed one.
"""

from __future__ import annotations

import numpy as np

DOWN, FLAT, UP = 0, 1, 2


def forward_return(close: np.ndarray, horizon: int) -> np.ndarray:
    """Return close[t + horizon] / close[t] - 1, NaN where t + horizon is past the end."""
    out = np.full(len(close), np.nan)
    if horizon < len(close):
        out[: len(close) - horizon] = close[horizon:] / close[:-horizon] - 1.0
    return out


def direction_labels(close: np.ndarray, horizon: int, threshold: float) -> np.ndarray:
    """Return DOWN, FLAT or UP per bar by the forward return against +-threshold (-1: no label)."""
    ret = forward_return(close, horizon)
    labels = np.full(len(close), -1, dtype=np.int64)
    known = ~np.isnan(ret)
    labels[known] = FLAT
    labels[known & (ret > threshold)] = UP
    labels[known & (ret < -threshold)] = DOWN
    return labels


def realised_volatility(close: np.ndarray, window: int) -> np.ndarray:
    """Return the standard deviation of the last ``window`` one-bar log returns up to each bar.

    Bars with fewer than two returns behind them get NaN.
    """
    log_ret = np.zeros(len(close))
    log_ret[1:] = np.diff(np.log(close))
    csum = np.concatenate(([0.0], np.cumsum(log_ret)))
    csq = np.concatenate(([0.0], np.cumsum(log_ret * log_ret)))
    t = np.arange(len(close))
    start = np.maximum(1, t - window + 1)
    n = t - start + 1
    total = csum[t + 1] - csum[start]
    squares = csq[t + 1] - csq[start]
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (squares - total * total / n) / (n - 1)
    vol = np.sqrt(np.maximum(var, 0.0))
    vol[n < 2] = np.nan
    return vol


def cosine_to(z: np.ndarray, prototype: np.ndarray | None) -> np.ndarray:
    """Return the cosine similarity of each row of ``z`` to ``prototype`` (0 without one)."""
    if prototype is None:
        return np.zeros(len(z))
    norms = np.linalg.norm(z, axis=1) * np.linalg.norm(prototype)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = z @ prototype / norms
    return np.where(norms > 0, cos, 0.0)
