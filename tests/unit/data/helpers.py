"""Synthetic candles and constants shared by the data tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.data.store import SeriesKey

HOUR = 3_600_000
START = 1_704_067_200_000  # 2024-01-01 00:00 UTC
KEY = SeriesKey("bybit", "linear", "BTCUSDT", "1h")


def make_candles(
    bars: int, start: int = START, interval: int = HOUR, seed: int = 7
) -> pd.DataFrame:
    """Return ``bars`` valid random-walk candles on the grid from ``start``."""
    rng = np.random.default_rng(seed)
    close = 40_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.004, bars)))
    open_ = np.concatenate([[40_000.0], close[:-1]])
    spread = np.abs(rng.normal(0.0, 0.002, bars)) * close
    return pd.DataFrame(
        {
            "timestamp": start + interval * np.arange(bars, dtype=np.int64),
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": rng.gamma(2.0, 50.0, bars),
        }
    )
