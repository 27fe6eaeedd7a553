"""Side-by-side comparison of several backtests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from engine.atomic import write_text
from engine.report.metrics import HEADLINE
from engine.report.run import write_csv


def comparison_frame(results) -> pd.DataFrame:
    """Return one row per backtest: its headline metrics (as the console shows them) and range."""
    rows = []
    for result in results:
        row = {"strategy": result.config.name}
        row.update({name: result.metrics.get(name) for name in HEADLINE})
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
    write_csv(frame, csv_path)
    write_text(md_path, frame.to_markdown(index=False, floatfmt=".4f") + "\n")
    return [csv_path, md_path]
