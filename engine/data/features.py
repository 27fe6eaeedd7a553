"""Causal per-bar features of candles, the input of the encoders.

Row t of every feature uses bars 0..t only. The seed features are always
present; extras are chosen by name.

Seed features
-------------
``return_1``
    One-bar return ``close_t / close_{t-1} - 1`` (0 at t = 0).
``log_volume``
    ``log(1 + volume_t)``.
``range``
    ``(high_t - low_t) / close_t``.
``body``
    ``(close_t - open_t) / open_t``.

Extras (N a whole number)
-------------------------
``log_return_N``
    ``log(close_t / close_{t-N})``, 0 for the first N bars.
``volatility_N``
    Population standard deviation of ``return_1`` over the last N bars
    (fewer at the start), N >= 2.
``rsi_N``
    Wilder's relative strength index over N bars, scaled to [0, 1]; 0.5
    while there has been no move at all, N >= 2.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from engine.errors import DataError

SEED_FEATURES = ("return_1", "log_volume", "range", "body")
_EXTRA_PATTERN = re.compile(r"^(?P<kind>log_return|volatility|rsi)_(?P<bars>[0-9]+)$")
_MIN_BARS = {"log_return": 1, "volatility": 2, "rsi": 2}
_REQUIRED = ("open", "high", "low", "close", "volume")


def _one_bar_return(close: pd.Series) -> pd.Series:
    return (close / close.shift(1) - 1.0).fillna(0.0)


def _log_return(close: pd.Series, bars: int) -> pd.Series:
    return np.log(close / close.shift(bars)).fillna(0.0)


def _volatility(close: pd.Series, bars: int) -> pd.Series:
    return _one_bar_return(close).rolling(bars, min_periods=1).std(ddof=0)


def _rsi(close: pd.Series, bars: int) -> pd.Series:
    change = close.diff().fillna(0.0)
    gain = change.clip(lower=0.0).ewm(alpha=1.0 / bars, adjust=False).mean()
    loss = (-change).clip(lower=0.0).ewm(alpha=1.0 / bars, adjust=False).mean()
    moved = (gain + loss).to_numpy()
    share = np.divide(gain.to_numpy(), moved, out=np.full(len(close), 0.5), where=moved > 0)
    return pd.Series(share, index=close.index)


_EXTRAS: dict[str, Callable[[pd.Series, int], pd.Series]] = {
    "log_return": _log_return,
    "volatility": _volatility,
    "rsi": _rsi,
}


def _parse_extra(name: str) -> tuple[str, int]:
    match = _EXTRA_PATTERN.match(name)
    if match is None or int(match["bars"]) < _MIN_BARS[match["kind"]]:
        raise DataError(
            f"feature {name!r} is unknown; expected one of log_return_N (N >= 1), "
            "volatility_N (N >= 2) or rsi_N (N >= 2), for example 'volatility_24'"
        )
    return match["kind"], int(match["bars"])


def compute_features(
    candles: pd.DataFrame, extras: Sequence[str] = ()
) -> tuple[np.ndarray, list[str]]:
    """Return the causal feature matrix of ``candles`` and the name of each column.

    Parameters
    ----------
    candles : pandas.DataFrame
        Validated candles with columns open, high, low, close and volume,
        one row per bar in time order.
    extras : sequence of str
        Names of optional features to append, such as ``"rsi_14"``.

    Returns
    -------
    features : numpy.ndarray
        float64 array of shape (bars, 4 + len(extras)).
    names : list of str
        The name of each column of ``features``.
    """
    missing = [column for column in _REQUIRED if column not in candles]
    if missing:
        raise DataError(
            f"candles lack column(s) {', '.join(missing)}; expected {', '.join(_REQUIRED)}"
        )
    parsed = [_parse_extra(name) for name in extras]
    close = candles["close"].astype(np.float64).reset_index(drop=True)
    open_, high, low, volume = (
        candles[column].astype(np.float64).reset_index(drop=True)
        for column in ("open", "high", "low", "volume")
    )
    columns = [
        _one_bar_return(close),
        np.log1p(volume),
        (high - low) / close,
        (close - open_) / open_,
        *(_EXTRAS[kind](close, bars) for kind, bars in parsed),
    ]
    features = np.column_stack([column.to_numpy(dtype=np.float64) for column in columns])
    return features.reshape(len(close), len(columns)), [*SEED_FEATURES, *extras]
