"""Rule-based baseline signals: buy and hold, SMA crossover, RSI mean reversion.

They read candles only, fit nothing, and plug into the same walk-forward,
event loop and report as the self-supervised strategies, so a comparison
differs in the signal alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.data.features import compute_features
from engine.strategy.base import FitContext, History, Signal


class _RuleSignal(Signal):
    def fit(self, context: FitContext) -> None:
        """Nothing to fit: a rule."""


class BuyAndHold(_RuleSignal):
    """Hold a long position of full size from the first out-of-sample bar."""

    def transform(self, history: History, rows: slice) -> dict[str, np.ndarray]:
        """Return a score of 1 for every row."""
        return {"score": np.ones(rows.stop - rows.start)}


class SmaCross(_RuleSignal):
    """Long while the fast simple moving average of closes is above the slow one.

    Short while it is below (flat instead when ``allow_short`` is false). A
    bar's averages include its own close.
    """

    def __init__(self, fast: int = 20, slow: int = 50, allow_short: bool = True) -> None:
        if not 1 <= fast < slow:
            raise ValueError(f"need 1 <= fast < slow, got fast={fast}, slow={slow}")
        self.fast, self.slow, self.allow_short = fast, slow, allow_short

    def transform(self, history: History, rows: slice) -> dict[str, np.ndarray]:
        """Return +1 where the fast average is above the slow one, -1 below, 0 equal."""
        close = pd.Series(history.close[: rows.stop])
        fast = close.rolling(self.fast).mean().to_numpy()[rows]
        slow = close.rolling(self.slow).mean().to_numpy()[rows]
        return {"score": np.nan_to_num(np.sign(fast - slow))}


class RsiReversion(_RuleSignal):
    """Buy an oversold market and sell an overbought one, by Wilder's RSI.

    Long when the RSI falls below ``lower`` and short when it rises above
    ``upper``; flat again once it is back within ``band`` of 50. The score is
    (50 - RSI) / 50.
    """

    def __init__(
        self,
        period: int = 14,
        lower: float = 30.0,
        upper: float = 70.0,
        band: float = 2.5,
        allow_short: bool = True,
    ) -> None:
        if not 0 < band < lower < 50 < upper < 100:
            raise ValueError(
                f"need 0 < band < lower < 50 < upper < 100, got {band}, {lower}, {upper}"
            )
        if 50 - lower != upper - 50:
            raise ValueError(f"lower and upper must be symmetric around 50, got {lower}, {upper}")
        self.period, self.allow_short = period, allow_short
        self.entry = (50.0 - lower) / 50.0
        self.exit = band / 50.0

    def transform(self, history: History, rows: slice) -> dict[str, np.ndarray]:
        """Return (50 - RSI) / 50 for each row."""
        candles = pd.DataFrame(
            {
                name: getattr(history, name)[: rows.stop]
                for name in ("open", "high", "low", "close", "volume")
            }
        )
        values, names = compute_features(candles, [f"rsi_{self.period}"])
        rsi = values[rows, names.index(f"rsi_{self.period}")]
        return {"score": (0.5 - rsi) / 0.5}
