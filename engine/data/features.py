"""Causal per-bar features of candles, the input of the encoders.

Row t of every feature uses bars 0..t only. A feature set names the seed
features, which are always present; extras are chosen by name.

Feature sets
------------
``raw``
    The candles' own levels, as they are (``return_1``, ``log_volume``,
    ``range``, ``body``). Volume is in units of the base asset, so its level
    differs by orders of magnitude between assets.
``relative``
    The same four measured against the series' own recent past, so that
    every asset, exchange and market lands on one scale
    (``return_z``, ``relative_volume``, ``range_z``, ``body_z``; below).

Seed features of ``raw``
------------------------
``return_1``
    One-bar return ``close_t / close_{t-1} - 1`` (0 at t = 0).
``log_volume``
    ``log(1 + volume_t)``.
``range``
    ``(high_t - low_t) / close_t``.
``body``
    ``(close_t - open_t) / open_t``.

Seed features of ``relative`` (S = ``SCALE_BARS`` = 168 bars)
--------------------------------------------------------------
``return_z``
    ``return_1`` divided by the standard deviation of ``return_1`` over the
    last S bars (``volatility_S``); 0 where that is 0.
``relative_volume``
    ``log(1 + volume_t / mean volume over the last S bars)``: volume over its
    trailing level, whatever the unit of volume; 0 while there has been no
    volume at all.
``range_z``
    ``range`` divided by ``volatility_S``; 0 where that is 0.
``body_z``
    ``body`` divided by ``volatility_S``; 0 where that is 0.

Extras (N a whole number; in either set)
----------------------------------------
``log_return_N``
    ``log(close_t / close_{t-N})``, 0 for the first N bars.
``volatility_N``
    Population standard deviation of ``return_1`` over the last N bars
    (fewer at the start), N >= 2.
``rsi_N``
    Wilder's relative strength index over N bars, scaled to [0, 1]; 0.5
    while there has been no move at all, N >= 2.
``volatility_ratio_N``
    ``log(volatility_N / volatility_S)``, the volatility regime; 0 where
    either is 0, N >= 2.

Where a series starts changes the first rows only: from
``settle_bars(extras, feature_set)`` bars after its first bar on, a row is bit-identical to the same bar's row in
any longer series, so a paper session computes features over a short tail of
its history and gets exactly the backtest's values. Window statistics are
therefore summed explicitly over each window (a running sum's rounding would
depend on the start). Wilder's averages are recursions that forget their start
by a factor 1 - 1/N a bar; they become bit-identical, not merely close, about
40 N bars after the start (at most 41 N measured from 2,100 random starts in
Bybit and Binance hourly and 5-minute candles).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from engine.errors import DataError

SEED_FEATURES = ("return_1", "log_volume", "range", "body")
RELATIVE_FEATURES = ("return_z", "relative_volume", "range_z", "body_z")
FEATURE_SETS = {"raw": SEED_FEATURES, "relative": RELATIVE_FEATURES}
#: Bars of the trailing window the relative features are measured against (a week of hours).
SCALE_BARS = 168
_EXTRA_PATTERN = re.compile(
    r"^(?P<kind>log_return|volatility_ratio|volatility|rsi)_(?P<bars>[0-9]+)$"
)
_MIN_BARS = {"log_return": 1, "volatility": 2, "rsi": 2, "volatility_ratio": 2}
_REQUIRED = ("open", "high", "low", "close", "volume")
#: Bars per unit of N after which rsi_N no longer depends on the series' start (about 40 measured).
_RSI_SETTLE = 80


def _one_bar_return(close: pd.Series) -> pd.Series:
    return (close / close.shift(1) - 1.0).fillna(0.0)


def _log_return(close: pd.Series, bars: int) -> pd.Series:
    return np.log(close / close.shift(bars)).fillna(0.0)


def _window_mean(values: np.ndarray, bars: int) -> np.ndarray:
    # Explicit window sums, summed oldest bar first: a bar's value does not depend on
    # where the series starts, as a running (add/remove) sum's would.
    length = len(values)
    padded = np.concatenate([np.zeros(bars - 1), values])
    total = np.zeros(length)
    for lag in range(bars):
        total += padded[lag : lag + length]
    return total / np.minimum(np.arange(1, length + 1), bars)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros(len(numerator)), where=denominator > 0)


def _volatility(close: pd.Series, bars: int) -> pd.Series:
    # A second pass of explicit sums for the squared deviations, for the same reason.
    returns = _one_bar_return(close).to_numpy()
    length = len(returns)
    padded = np.concatenate([np.zeros(bars - 1), returns])
    count = np.minimum(np.arange(1, length + 1), bars)
    mean = _window_mean(returns, bars)
    squares = np.zeros(length)
    for lag in range(bars):
        inside = np.arange(length) + lag >= bars - 1
        squares += np.where(inside, padded[lag : lag + length] - mean, 0.0) ** 2
    return pd.Series(np.sqrt(squares / count), index=close.index)


def _rsi(close: pd.Series, bars: int) -> pd.Series:
    change = close.diff().fillna(0.0)
    gain = change.clip(lower=0.0).ewm(alpha=1.0 / bars, adjust=False).mean()
    loss = (-change).clip(lower=0.0).ewm(alpha=1.0 / bars, adjust=False).mean()
    moved = (gain + loss).to_numpy()
    share = np.divide(gain.to_numpy(), moved, out=np.full(len(close), 0.5), where=moved > 0)
    return pd.Series(share, index=close.index)


def _volatility_ratio(close: pd.Series, bars: int) -> pd.Series:
    short, scale = _volatility(close, bars).to_numpy(), _volatility(close, SCALE_BARS).to_numpy()
    ratio = _ratio(short, scale)
    return pd.Series(np.log(ratio, out=np.zeros(len(ratio)), where=ratio > 0), index=close.index)


_EXTRAS: dict[str, Callable[[pd.Series, int], pd.Series]] = {
    "log_return": _log_return,
    "volatility": _volatility,
    "rsi": _rsi,
    "volatility_ratio": _volatility_ratio,
}


def _parse_extra(name: str) -> tuple[str, int]:
    match = _EXTRA_PATTERN.match(name)
    if match is None or int(match["bars"]) < _MIN_BARS[match["kind"]]:
        raise DataError(
            f"feature {name!r} is unknown; expected one of log_return_N (N >= 1), "
            "volatility_N, rsi_N or volatility_ratio_N (N >= 2), for example 'volatility_24'"
        )
    return match["kind"], int(match["bars"])


def _check_set(feature_set: str) -> tuple[str, ...]:
    if feature_set not in FEATURE_SETS:
        raise DataError(
            f"feature set {feature_set!r} is unknown; expected one of {', '.join(FEATURE_SETS)}"
        )
    return FEATURE_SETS[feature_set]


def settle_bars(extras: Sequence[str] = (), feature_set: str = "raw") -> int:
    """Return how many earlier bars make a bar's features independent of the series' start.

    A series that starts this many bars before bar t or earlier gives bar t
    the same features, bit for bit (see the module docstring).
    """
    _check_set(feature_set)
    parsed = [_parse_extra(name) for name in extras]
    settle = {"log_return": 1, "volatility": 1, "rsi": _RSI_SETTLE, "volatility_ratio": 1}
    lookbacks = [settle[kind] * bars for kind, bars in parsed]
    if feature_set == "relative" or any(kind == "volatility_ratio" for kind, _ in parsed):
        lookbacks.append(SCALE_BARS)
    return max([1, *lookbacks])


def compute_features(
    candles: pd.DataFrame, extras: Sequence[str] = (), feature_set: str = "raw"
) -> tuple[np.ndarray, list[str]]:
    """Return the causal feature matrix of ``candles`` and the name of each column.

    Parameters
    ----------
    candles : pandas.DataFrame
        Validated candles with columns open, high, low, close and volume,
        one row per bar in time order.
    extras : sequence of str
        Names of optional features to append, such as ``"rsi_14"``.
    feature_set : str
        ``"raw"`` or ``"relative"``: which seed features come first.

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
    seed = _check_set(feature_set)
    parsed = [_parse_extra(name) for name in extras]
    close = candles["close"].astype(np.float64).reset_index(drop=True)
    open_, high, low, volume = (
        candles[column].astype(np.float64).reset_index(drop=True)
        for column in ("open", "high", "low", "volume")
    )
    returns, log_volume = _one_bar_return(close).to_numpy(), np.log1p(volume.to_numpy())
    range_, body = ((high - low) / close).to_numpy(), ((close - open_) / open_).to_numpy()
    if feature_set == "raw":
        columns = [returns, log_volume, range_, body]
    else:
        scale = _volatility(close, SCALE_BARS).to_numpy()
        relative_volume = np.log1p(_ratio(volume.to_numpy(), _window_mean(volume.to_numpy(), SCALE_BARS)))
        columns = [
            _ratio(returns, scale),
            relative_volume,
            _ratio(range_, scale),
            _ratio(body, scale),
        ]
    columns += [_EXTRAS[kind](close, bars).to_numpy() for kind, bars in parsed]
    features = np.column_stack([np.asarray(column, dtype=np.float64) for column in columns])
    return features.reshape(len(close), len(columns)), [*seed, *extras]
