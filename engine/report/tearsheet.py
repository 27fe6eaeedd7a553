"""The QuantStats HTML tearsheet of a run, against buy and hold of the same asset."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import pandas as pd

from engine.atomic import atomic_path
from engine.report.metrics import PERIODS_PER_YEAR

_SAVE_ON_LOAD = re.compile(r'<body\s+onload="save\(\)">')
_REMOTE_ICON = re.compile(r'<link rel="shortcut icon" href="https?://[^"]*"[^>]*>\s*')


def _self_contained(html: str) -> str:
    # QuantStats' template calls save() on load, a function it defines only when
    # it serves the report as a download, and it links a remote favicon; both
    # fail in a browser opening the file offline.
    return _REMOTE_ICON.sub("", _SAVE_ON_LOAD.sub("<body>", html))


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
        html = tmp.read_text(encoding="utf-8")
        tmp.write_text(_self_contained(html), encoding="utf-8")
