"""The QuantStats HTML tearsheet of a run, against buy and hold of the same asset."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pandas as pd

from engine.atomic import atomic_path
from engine.report.metrics import PERIODS_PER_YEAR


def write_tearsheet(strategy: pd.Series, benchmark: pd.Series, path: Path, title: str) -> None:
    """Write the tearsheet of daily ``strategy`` returns against ``benchmark`` to ``path``.

    Both series are daily returns on a tz-naive UTC index (QuantStats mixes
    tz-aware and naive indexes badly). The file is written to a temporary
    name and renamed, so a crash never leaves half a report.
    """
    import matplotlib

    matplotlib.use("Agg")
    import quantstats as qs

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qs.reports.html(
            strategy.rename("Strategy"),
            benchmark=benchmark.rename("Buy and hold"),
            output=str(tmp),
            title=title,
            periods_per_year=PERIODS_PER_YEAR,
        )
