"""A finished sweep's summary and files: trials.csv, summary.json and report.html.

``summarise`` picks the best trial by the objective on the validation range,
runs it once on the test range, and computes the Deflated Sharpe Ratio and
the PBO of the trials' daily validation returns. ``write_outputs`` writes the
table, the summary and the HTML page (parallel coordinates of the trials, a
heatmap when two values vary, and the distribution of the PBO's logits).
"""

from __future__ import annotations

import html
import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from engine.atomic import write_text
from engine.research.overfitting import deflated_sharpe, pbo
from engine.research.report import PAGE_STYLE, html_table, png_base64
from engine.research.sweep import (
    TrialResult,
    objective_value,
    returns_matrix,
    trial_rows,
)

if TYPE_CHECKING:
    from engine.research.sweep import Sweep

Finished = dict[int, tuple[dict, TrialResult]]


def summarise(sweep: Sweep, finished: Finished, workers: int) -> dict:
    """Return the summary of a sweep whose trials are all journaled, after its test run."""
    space = sweep.space
    values = {
        n: objective_value(result.metrics, space.objective) for n, (_, result) in finished.items()
    }
    ranked = sorted((n for n, v in values.items() if v is not None), key=lambda n: (-values[n], n))
    summary: dict[str, Any] = {
        "name": space.name,
        "strategy": str(sweep.strategy_path),
        "space": str(sweep.space_path),
        "search": space.search,
        "objective": space.objective,
        "validation": [space.validation.start.isoformat(), space.validation.end.isoformat()],
        "test": [space.test.start.isoformat(), _iso(space.test.end)],
        "trials": len(finished),
        "failed": sum(result.error is not None for _, result in finished.values()),
        "workers": workers,
        "trial_seconds": sum(result.seconds for _, result in finished.values()),
        "best": None,
        "dsr": None,
        "pbo": None,
    }
    if ranked:
        _judge_best(sweep, finished, ranked[0], summary)
    summary["models"] = sweep.models()
    return summary


def _judge_best(sweep: Sweep, finished: Finished, best: int, summary: dict) -> None:
    # Fill in the best trial, its test run, the DSR and the PBO.
    space = sweep.space
    params = finished[best][0]
    summary["best"] = {
        "number": best,
        "params": params,
        "validation": json.loads(finished[best][1].metrics),
        "test": sweep.test_run(params),
    }
    returns = returns_matrix(finished)
    column = list(returns.columns).index(best)
    if len(returns) >= 3:
        dsr = deflated_sharpe(returns.to_numpy(), column)
        summary["dsr"] = {
            "dsr": dsr.dsr,
            "daily_sharpe": dsr.sharpe,
            "expected_max_daily_sharpe": dsr.expected_max_sharpe,
            "daily_sharpe_variance": dsr.sharpe_variance,
            "trials": dsr.trials,
            "days": dsr.periods,
            "skewness": dsr.skewness,
            "kurtosis": dsr.kurtosis,
        }
    if returns.shape[1] >= 2 and len(returns) >= 2 * space.cscv_blocks:
        overfit = pbo(returns.to_numpy(), space.cscv_blocks)
        summary["pbo"] = {
            "pbo": overfit.pbo,
            "blocks": overfit.blocks,
            "splits": len(overfit.logits),
            "logits": overfit.logits.tolist(),
        }


def _iso(day) -> str | None:
    return None if day is None else day.isoformat()


def trials_table(sweep: Sweep, finished: Finished) -> pd.DataFrame:
    """Return the table of trials (one row per trial, in trial order)."""
    return pd.DataFrame(list(trial_rows(finished, list(sweep.space.parameters))))


def write_outputs(sweep: Sweep, finished: Finished, summary: dict) -> None:
    """Write trials.csv, report.html and, last (it marks the sweep finished), summary.json."""
    table = trials_table(sweep, finished)
    write_text(sweep.folder / "trials.csv", table.to_csv(index=False))
    write_text(sweep.folder / "report.html", _page(sweep, table, summary))
    write_text(sweep.folder / "summary.json", json.dumps(summary, indent=2) + "\n")


def _figures(sweep: Sweep, table: pd.DataFrame, summary: dict) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    objective = sweep.space.objective
    paths = list(sweep.space.parameters)
    ok = table[table["status"] == "ok"]
    figures = []
    if len(ok):
        fig, ax = plt.subplots(figsize=(9, 4.5))
        axes = [*paths, objective]
        scaled = np.column_stack([_unit(ok[name]) for name in axes])
        colour = plt.cm.viridis(_unit(ok[objective]))
        for row, c in zip(scaled, colour, strict=True):
            ax.plot(range(len(axes)), row, color=c, alpha=0.7)
        ax.set_xticks(range(len(axes)), [a.rsplit(".", 1)[-1] for a in axes])
        ax.set_yticks([0, 1], ["low", "high"])
        ax.set_title(f"Trials on the validation range, coloured by {objective}")
        figures.append(("Parallel coordinates", png_base64(fig)))
        plt.close(fig)
    if len(paths) == 2 and len(ok):
        grid = ok.pivot_table(index=paths[0], columns=paths[1], values=objective, aggfunc="mean")
        fig, ax = plt.subplots(figsize=(7, 5))
        image = ax.imshow(grid.to_numpy(dtype=float), cmap="viridis", aspect="auto")
        ax.set_xticks(range(grid.shape[1]), [str(v) for v in grid.columns])
        ax.set_yticks(range(grid.shape[0]), [str(v) for v in grid.index])
        ax.set_xlabel(paths[1])
        ax.set_ylabel(paths[0])
        fig.colorbar(image, label=objective)
        figures.append((f"{objective} by {paths[0]} and {paths[1]}", png_base64(fig)))
        plt.close(fig)
    if summary["pbo"] is not None:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.hist(summary["pbo"]["logits"], bins=30, color="#4472c4")
        ax.axvline(0.0, color="#a00")
        ax.set_xlabel("logit of the in-sample best trial's out-of-sample relative rank")
        ax.set_ylabel("splits")
        ax.set_title(f"PBO = {summary['pbo']['pbo']:.3f} (share of splits at or left of 0)")
        figures.append(("Distribution of the PBO logits", png_base64(fig)))
        plt.close(fig)
    return figures


def _unit(column: pd.Series) -> np.ndarray:
    # Values scaled to [0, 1]; non-numeric values by their sorted order.
    numeric = pd.to_numeric(column, errors="coerce")
    if numeric.isna().any():
        order = {v: i for i, v in enumerate(sorted(column.astype(str).unique()))}
        numeric = column.astype(str).map(order).astype(float)
    low, high = numeric.min(), numeric.max()
    return ((numeric - low) / (high - low) if high > low else numeric * 0 + 0.5).to_numpy()


def summary_rows(summary: dict) -> list[tuple[str, str]]:
    """Return the summary as (label, value) rows, for the console and the HTML page."""
    best = summary["best"]
    rows = [
        ("trials (failed)", f"{summary['trials']} ({summary['failed']})"),
        ("validation range", " to ".join(summary["validation"])),
        ("test range", f"{summary['test'][0]} to {summary['test'][1] or 'last bar'}"),
    ]
    if best is None:
        return [*rows, ("best trial", "none succeeded")]
    rows.append(("best trial", f"{best['number']}: {best['params']}"))
    for name in ("sharpe", "total_return", "max_drawdown", "trades"):
        rows.append(
            (
                f"{name}: validation / test",
                f"{_fmt(best['validation'].get(name))} / {_fmt(best['test'].get(name))}",
            )
        )
    dsr, overfit = summary["dsr"], summary["pbo"]
    rows.append(("Deflated Sharpe Ratio", "n/a" if dsr is None else f"{dsr['dsr']:.3f}"))
    if dsr is not None:
        rows.append(
            (
                "daily Sharpe: best / expected max of noise",
                f"{dsr['daily_sharpe']:.4f} / {dsr['expected_max_daily_sharpe']:.4f}",
            )
        )
    rows.append(
        (
            "PBO (CSCV)",
            "n/a" if overfit is None else f"{overfit['pbo']:.3f} over {overfit['splits']} splits",
        )
    )
    return rows


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:,}" if isinstance(value, int) else f"{value:.4f}"


def _page(sweep: Sweep, table: pd.DataFrame, summary: dict) -> str:
    parts = [
        f"<h1>Sweep {html.escape(summary['name'])}</h1>",
        f"<p>{html.escape(summary['strategy'])} over {html.escape(summary['space'])} "
        f"({summary['search']}); trials ranked by {summary['objective']} on the validation "
        "range; the best run once on the test range.</p>",
        html_table(["", "value"], [list(row) for row in summary_rows(summary)]),
    ]
    for title, png in _figures(sweep, table, summary):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(f'<img alt="{html.escape(title)}" src="data:image/png;base64,{png}">')
    parts.append("<h2>Trials</h2>")
    cells = table.astype(object).where(table.notna(), "").astype(str)
    parts.append(html_table(list(table.columns), cells.to_numpy().tolist()))
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>Sweep '
        f"{html.escape(summary['name'])}</title><style>{PAGE_STYLE}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>\n"
    )
