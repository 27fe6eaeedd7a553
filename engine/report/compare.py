"""Side-by-side comparison of several backtests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from engine.atomic import atomic_path, write_text

COLUMNS = (
    "direction_accuracy",
    "total_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "turnover",
    "fees",
    "funding",
    "trades",
)


def comparison_frame(results) -> pd.DataFrame:
    """Return one row per backtest with the comparison columns and its range."""
    rows = []
    for result in results:
        row = {"strategy": result.config.name}
        row.update({column: result.metrics.get(column) for column in COLUMNS})
        row["first_bar"] = result.inputs["first_bar"]
        row["last_bar"] = result.inputs["last_bar"]
        rows.append(row)
    return pd.DataFrame(rows)


def write_comparison(results, reports_dir: Path) -> list[Path]:
    """Write ``compare-<UTC time>.csv`` and ``.md`` under ``reports_dir``; return their paths."""
    frame = comparison_frame(results)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    csv_path = reports_dir / f"compare-{stamp}.csv"
    md_path = reports_dir / f"compare-{stamp}.md"
    with atomic_path(csv_path) as tmp:
        frame.to_csv(tmp, index=False)
    write_text(md_path, frame.to_markdown(index=False, floatfmt=".4f") + "\n")
    return [csv_path, md_path]
