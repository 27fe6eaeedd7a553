"""Synthetic histories for strategy tests."""

from __future__ import annotations

import numpy as np
import pytest

from engine.strategy.base import Costs, History


def make_history(n: int = 1500, dims: int = 8, seed: int = 0, predictive: bool = True) -> History:
    """Return a random-walk history whose representation z_t, when ``predictive``,
    carries the sign of the next five bars' drift (so a probe has something to learn)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, dims))
    drift = np.zeros(n)
    if predictive:
        for t in range(n):
            drift[t + 1 : t + 6] += 0.004 * np.sign(z[t, 0])
    log_ret = drift + rng.normal(scale=0.003, size=n)
    close = 100.0 * np.exp(np.cumsum(log_ret))
    open_ = np.concatenate(([100.0], close[:-1]))
    spread = np.abs(rng.normal(scale=0.002, size=n)) * close
    return History(
        timestamp=np.arange(n, dtype=np.int64) * 3_600_000,
        open=open_,
        high=np.maximum(open_, close) + spread,
        low=np.minimum(open_, close) - spread,
        close=close,
        volume=rng.uniform(1.0, 10.0, size=n),
        z=z,
    )


def with_future_changed(history: History, t: int, seed: int = 99) -> History:
    """Return ``history`` with every bar after ``t`` (candles and z) replaced by other values."""
    other = make_history(len(history), history.z.shape[1], seed=seed)
    fields = {}
    for name in History.__dataclass_fields__:
        values = getattr(history, name).copy()
        if name != "timestamp":
            values[t + 1 :] = getattr(other, name)[t + 1 :]
        fields[name] = values
    return History(**fields)


@pytest.fixture
def history() -> History:
    return make_history()


#: 0.03% per side, the strategies' default fees.
COSTS = Costs(maker_fee=0.0003, taker_fee=0.0003)
