"""The QuantStats HTML tearsheet of a run, against buy and hold of the same asset.

QuantStats works on daily returns; the run's headline metrics work on bars.
The page is made to agree with ``metrics.json`` where the two can agree and
says where they cannot:

- both series cover the same days from the first (QuantStats would otherwise
  cut them to "matched dates", from the strategy's first non-zero day), so
  QuantStats' cumulative returns, its end-of-year table and its end-of-year
  chart are the run's total and buy-and-hold returns compounded day by day;
- a table of the run's own figures (from ``metrics.json``) heads the metrics,
  and QuantStats' max drawdown and time in market are labelled as the
  daily-close and per-day figures they are;
- the monthly heatmap leaves months without bars blank instead of 0.00, and
  rolling panels longer than the report are replaced by a note.

A run whose daily return never varies (no trades, or a single day) has no
curve to draw, and QuantStats cannot regress it on buy and hold: its page
says so and shows the run's figures instead.
"""

from __future__ import annotations

import html
import io
import logging
import math
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from engine.atomic import atomic_path, write_text
from engine.report.metrics import HEADLINE, PERIODS_PER_YEAR, format_metric

_SAVE_ON_LOAD = re.compile(r'<body\s+onload="save\(\)">')
_REMOTE_ICON = re.compile(r'<link rel="shortcut icon" href="https?://[^"]*"[^>]*>\s*')
# Rows of the run's own figures, in this order.
RUN_FIGURES = ("total_return", "benchmark_return", "max_drawdown", "time_in_market")
# QuantStats' row labels that mean something else than the run's figures of the same name.
_RELABELLED = {
    "Max Drawdown": "Max Drawdown (daily closes)",
    "Time in Market": "Time in Market (days)",
    # A small percent sign that common fonts lack, so it renders as a box.
    "CAGR\ufe6a": "CAGR",
}
_ROLLING = ("rolling_beta", "rolling_vol", "rolling_sharpe", "rolling_sortino")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def rolling_window_days() -> int:
    """Return the window, in days, of QuantStats' rolling panels (half a year)."""
    return math.ceil(PERIODS_PER_YEAR / 2)


def monthly_returns(daily: pd.Series) -> pd.DataFrame:
    """Return compounded returns by year (rows) and month (columns 1-12), NaN where no day is."""
    grouped = (1.0 + daily).groupby([daily.index.year, daily.index.month]).prod() - 1.0
    table = grouped.unstack()
    return table.reindex(columns=range(1, 13))


def _heatmap_svg(daily: pd.Series) -> str:
    # The monthly returns in percent, coloured around zero; a month without bars is blank.
    import matplotlib.pyplot as plt

    table = monthly_returns(daily) * 100.0
    values = table.to_numpy()
    limit = float(np.nanmax(np.abs(values))) or 1.0
    fig, ax = plt.subplots(figsize=(8, max(len(table) / 2.5, 2.0)))
    try:
        ax.imshow(
            np.ma.masked_invalid(values), cmap="RdYlGn", vmin=-limit, vmax=limit, aspect="auto"
        )
        for (row, column), value in np.ndenumerate(values):
            if np.isfinite(value):
                # Rounded first, so that a tiny loss prints 0.00 rather than -0.00.
                shown = f"{round(value, 2) + 0.0:.2f}"
                colour = "white" if abs(value) > 0.6 * limit else "black"
                ax.text(column, row, shown, ha="center", va="center", fontsize=10, color=colour)
        ax.set_xticks(range(12), _MONTHS)
        ax.set_yticks(range(len(table)), [str(year) for year in table.index])
        ax.tick_params(length=0)
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title("Strategy - Monthly Returns (%)", fontsize=12, fontweight="bold")
        buffer = io.StringIO()
        # The page pulls the heatmap up by 1.5 rem; the padding keeps the title in view.
        fig.savefig(buffer, format="svg", bbox_inches="tight", pad_inches=0.4)
    finally:
        plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]


def _run_figures_html(metrics: dict, bar: str, note: str) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(HEADLINE[name][0])}</td>"
        f"<td>{html.escape(format_metric(metrics, name))}</td></tr>"
        for name in RUN_FIGURES
    )
    return (
        f'<div id="run_figures"><h3>Run figures (per {html.escape(bar)} bar)</h3>'
        f"<p>As in metrics.json and the console.{note}</p>"
        f"<table><tbody>{rows}</tbody></table></div>"
    )


def _nothing_to_chart(daily: pd.Series, metrics: dict, bar: str, title: str) -> str:
    # The page of a run whose daily return never varies, in place of QuantStats' charts.
    days = len(daily)
    first, last = daily.index[0], daily.index[-1]
    span = f"{days} day{'s' if days > 1 else ''}, {first:%Y-%m-%d} to {last:%Y-%m-%d}"
    statement = (
        f"Nothing to chart: the strategy's daily return was {daily.iloc[0]:+.2%} on every day "
        f"of the run ({span}; {format_metric(metrics, 'trades')} trades), so there is no curve "
        "to draw, and QuantStats' statistics against buy and hold (beta, R², correlation) "
        "are undefined."
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f'<p id="nothing_to_chart">{html.escape(statement, quote=False)}</p>'
        f"{_run_figures_html(metrics, bar, '')}</body></html>\n"
    )


def _template(daily: pd.Series, metrics: dict, bar: str) -> str:
    # QuantStats' own page with the run's figures added, its monthly heatmap replaced, its
    # rolling panels replaced by a note when the report is shorter than their window,
    # and its download-on-load and remote favicon (which fail offline) removed.
    from importlib.resources import files

    page = files("quantstats").joinpath("report.html").read_text(encoding="utf-8")
    page = _REMOTE_ICON.sub("", _SAVE_ON_LOAD.sub("<body>", page))
    heading = "<h3>Key Performance Metrics</h3>"
    note = (
        " The QuantStats metrics below are computed from daily closes: their max drawdown "
        "misses falls within a day, and their time in market counts the days with a "
        "non-zero return."
    )
    page = page.replace(heading, _run_figures_html(metrics, bar, note) + heading, 1)
    page = page.replace("{{monthly_heatmap}}", _heatmap_svg(daily))
    window = rolling_window_days()
    if len(daily) <= window:
        note = (
            f"<p>Rolling panels need more than {window} days; this report covers {len(daily)}.</p>"
        )
        page = page.replace("{{rolling_beta}}", note)
        for name in _ROLLING[1:]:
            page = page.replace("{{" + name + "}}", "")
    return page


def _relabelled(page: str) -> str:
    for label, clear in _RELABELLED.items():
        page = page.replace(f"<td>{label}</td>", f"<td>{clear}</td>")
    return page


def write_tearsheet(
    strategy: pd.Series,
    benchmark: pd.Series,
    path: Path,
    title: str,
    metrics: dict,
    bar: str,
) -> None:
    """Write the tearsheet of daily ``strategy`` returns against ``benchmark`` to ``path``.

    Both series are daily returns on the same tz-naive UTC index (QuantStats
    mixes tz-aware and naive indexes badly). ``metrics`` are the run's
    headline metrics, shown at the top of the metrics column; ``bar`` is the
    bar length they were computed on (e.g. ``1h``). When the strategy's daily
    return never varies, the page states that there is nothing to chart and
    shows the run's figures. The file is written to a temporary name and
    renamed, so a crash never leaves half a report.
    """
    if not strategy.index.equals(benchmark.index):
        raise ValueError("the strategy and benchmark returns must share one daily index")
    if strategy.nunique() < 2:
        write_text(path, _nothing_to_chart(strategy, metrics, bar, title))
        return
    import matplotlib

    matplotlib.use("Agg")
    import quantstats as qs

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    # Every chart's text stays text in its SVG: the page can be read and
    # searched like the tables, and saving does not trace each glyph as a
    # path, which took a third of the page's time and half its size.
    with (
        tempfile.TemporaryDirectory() as work,
        atomic_path(path) as tmp,
        warnings.catch_warnings(),
        matplotlib.rc_context({"svg.fonttype": "none"}),
    ):
        warnings.simplefilter("ignore")
        template = Path(work) / "report.html"
        template.write_text(_template(strategy, metrics, bar), encoding="utf-8")
        qs.reports.html(
            strategy.rename("Strategy"),
            benchmark=benchmark.rename("Buy and hold"),
            output=str(tmp),
            title=title,
            periods_per_year=PERIODS_PER_YEAR,
            match_dates=False,
            template_path=str(template),
        )
        tmp.write_text(_relabelled(tmp.read_text(encoding="utf-8")), encoding="utf-8")
