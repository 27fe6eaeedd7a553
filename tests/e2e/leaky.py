"""A deliberately leaky signal, for the lookahead audit's tests."""

from __future__ import annotations

import numpy as np

from engine.strategy.base import History
from engine.strategy.baselines import BuyAndHold


class PeekingSignal(BuyAndHold):
    """Score bar t by the return from its close to the next bar's close: lookahead."""

    def transform(self, history: History, rows: slice) -> dict[str, np.ndarray]:
        """Return the sign of the next bar's return (known only one bar later)."""
        close = history.close
        ahead = np.append(close[1:], close[-1])
        return {"score": np.sign(ahead[rows] / close[rows] - 1.0)}
