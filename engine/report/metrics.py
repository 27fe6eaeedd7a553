"""Headline metrics of a run, from its equity curve, fills, costs and signal.

Returns are compounded per UTC day before Sharpe and Sortino, with 365
periods a year (crypto trades every day), as the tearsheet computes them.
Total return, max drawdown and time in market are taken per bar. ``HEADLINE``
names and formats the figures every report shows (the console table,
``compare``, the tearsheet), so they print the same everywhere.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import quantstats as qs

PERIODS_PER_YEAR = 365

#: The headline figures in the order reports show them: label and format of each.
HEADLINE: dict[str, tuple[str, str]] = {
    "direction_accuracy": ("direction accuracy", "{:.3f}"),
    "total_return": ("total return", "{:+.2%}"),
    "benchmark_return": ("buy and hold", "{:+.2%}"),
    "sharpe": ("Sharpe (daily, 365)", "{:.2f}"),
    "sortino": ("Sortino (daily, 365)", "{:.2f}"),
    "max_drawdown": ("max drawdown", "{:.2%}"),
    "time_in_market": ("time in market (bars)", "{:.1%}"),
    "turnover": ("turnover (x capital)", "{:.1f}"),
    "fees": ("fees (USDT)", "{:,.0f}"),
    "slippage": ("slippage (USDT)", "{:,.0f}"),
    "funding": ("funding paid (USDT)", "{:,.0f}"),
    "trades": ("trades (fills)", "{:d}"),
}


def format_metric(metrics: dict, name: str) -> str:
    """Return headline figure ``name`` of ``metrics`` as reports print it; ``n/a`` if missing."""
    value = metrics.get(name)
    return "n/a" if value is None else HEADLINE[name][1].format(value)


def daily_returns(timestamps: np.ndarray, equity: np.ndarray, initial: float) -> pd.Series:
    """Return the compounded return of each UTC day, on a tz-naive daily index.

    ``equity[i]`` is the equity at the close of the bar opening at
    ``timestamps[i]``; the day before the first bar starts at ``initial``.
    """
    index = pd.to_datetime(timestamps, unit="ms")
    closing = pd.Series(equity, index=index).resample("1D").last().ffill()
    previous = closing.shift(1)
    previous.iloc[0] = initial
    return (closing / previous - 1.0).rename("strategy")


def direction_accuracy(score: np.ndarray, forward: np.ndarray) -> float | None:
    """Return how often the score's sign matched the forward return's sign.

    Only bars where the score is not zero and the forward return is known and
    not zero count; ``None`` when there are none.
    """
    counted = (score != 0) & np.isfinite(forward) & (forward != 0)
    if not counted.any():
        return None
    return float(np.mean(np.sign(score[counted]) == np.sign(forward[counted])))


def summarise(
    daily: pd.Series,
    equity: np.ndarray,
    position: np.ndarray,
    initial: float,
    fills: np.ndarray,
    ledger: np.ndarray,
    accuracy: float | None,
) -> dict[str, float | int | None]:
    """Return the headline metrics of a run as plain numbers.

    ``equity`` holds one value per bar and ``position`` one row per bar (a
    column per asset); time in market is the share of bars that end holding
    a position in any asset.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sharpe = float(qs.stats.sharpe(daily, periods=PERIODS_PER_YEAR))
        sortino = float(qs.stats.sortino(daily, periods=PERIODS_PER_YEAR))
    peak = np.maximum.accumulate(np.concatenate(([initial], equity)))
    drawdown = float(np.min(np.concatenate(([initial], equity)) / peak - 1.0))
    traded = float(np.sum(fills["quantity"] * fills["price"]))
    metrics: dict[str, float | int | None] = {
        "direction_accuracy": accuracy,
        "total_return": float(equity[-1] / initial - 1.0),
        "sharpe": _finite(sharpe),
        "sortino": _finite(sortino),
        "max_drawdown": drawdown,
        "time_in_market": float(np.mean(np.any(position != 0, axis=1))),
        "turnover": traded / initial,
        "trades": int(fills.size),
        "final_equity": float(equity[-1]),
    }
    for column in ledger.dtype.names:
        metrics[column] = float(np.sum(ledger[column]))
    metrics["fees"] = metrics["maker_fee"] + metrics["taker_fee"]
    return metrics


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None
