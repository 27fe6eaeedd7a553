"""Validation of candles and funding rates, gap policies and file reports.

Every load goes through here. A problem is reported with the file, the column,
the row, the bar's open time in UTC and what was expected. A gap (bars missing
from the regular grid) is never filled silently: the caller chooses a policy.

Gap policies
------------
``error``
    Raise a ``DataError`` for any gap longer than ``max_gap_bars`` (default
    0, so any gap). Gaps within the limit are kept as they are.
``drop``
    Keep the bars as they are, with the gaps, and report every gap with a
    ``GapWarning``.
``flat``
    Insert flat bars (open = high = low = close = the previous close, volume 0)
    for every missing bar and flag them in a boolean ``filled`` column.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from engine.data.times import iso_utc
from engine.errors import DataError

CANDLE_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
FUNDING_COLUMNS = ("timestamp", "rate")
FUNDING_INTERVAL_MS = 8 * 3_600_000
GAP_POLICIES = ("error", "drop", "flat")
DEFAULT_MAX_GAP_BARS = 0
# Timestamps outside these bounds are seconds or microseconds, not milliseconds.
_MIN_MS = 1_230_768_000_000  # 2009-01-01
_MAX_MS = 4_102_444_800_000  # 2100-01-01
_MAX_LISTED_GAPS = 3

GapPolicy = Literal["error", "drop", "flat"]


class GapWarning(UserWarning):
    """Bars are missing from the grid and were kept as they are (gap policy ``drop``)."""


@dataclass(frozen=True)
class Violation:
    """One kind of problem in a table: where it first occurs and how often.

    Attributes
    ----------
    column : str
        The column at fault (``timestamp`` for ordering and grid problems).
    problem : str
        What is wrong and what was expected.
    row : int or None
        The first row at fault (0-based), if the problem is in a row.
    timestamp_ms : int or None
        The open time of that row, if it is known.
    count : int
        How many rows have this problem.
    """

    column: str
    problem: str
    row: int | None = None
    timestamp_ms: int | None = None
    count: int = 1

    def describe(self) -> str:
        """Return the violation as one line for a person."""
        where = f"column {self.column!r}"
        if self.row is not None:
            where += f", row {self.row}"
            if self.timestamp_ms is not None:
                where += f" ({iso_utc(self.timestamp_ms)})"
        more = f" [{self.count} rows]" if self.count > 1 else ""
        return f"{where}: {self.problem}{more}"


@dataclass(frozen=True)
class Gap:
    """A run of bars missing from the grid: the first missing open time and how many."""

    start_ms: int
    bars: int
    interval_ms: int

    @property
    def end_ms(self) -> int:
        """Return the open time of the last missing bar."""
        return self.start_ms + (self.bars - 1) * self.interval_ms

    def describe(self) -> str:
        """Return the gap as a phrase for a person."""
        if self.bars == 1:
            return f"1 missing bar at {iso_utc(self.start_ms)}"
        return f"{self.bars} missing bars from {iso_utc(self.start_ms)} to {iso_utc(self.end_ms)}"


@dataclass(frozen=True)
class Report:
    """What ``check`` found in one file.

    Attributes
    ----------
    name : str
        The file name.
    rows : int
        Number of rows.
    first_ms, last_ms : int or None
        Open time of the first and the last row (None when empty or unreadable).
    missing : int
        Rows missing from the regular grid between the first and the last.
    largest_gap : Gap or None
        The longest run of missing rows.
    violations : list of Violation
        Every kind of problem found, with its first occurrence.
    zero_volume : int or None
        Number of zero-volume bars (None for funding rates).
    """

    name: str
    rows: int
    first_ms: int | None
    last_ms: int | None
    missing: int
    largest_gap: Gap | None
    violations: list[Violation] = field(default_factory=list)
    zero_volume: int | None = None

    @property
    def ok(self) -> bool:
        """Return True when the file has no violations (gaps are not violations)."""
        return not self.violations


def find_violations(
    frame: pd.DataFrame, columns: Sequence[str], interval_ms: int
) -> list[Violation]:
    """Return every kind of problem in a candle or funding table.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table as read from a file.
    columns : sequence of str
        The required columns: ``CANDLE_COLUMNS`` or ``FUNDING_COLUMNS``.
    interval_ms : int
        The grid every timestamp must lie on.

    Returns
    -------
    list of Violation
        Empty when the table is valid. Gaps are not violations.
    """
    schema = _schema_violations(frame, columns)
    if schema:
        return schema
    timestamps = frame["timestamp"].to_numpy()
    found = _timestamp_violations(timestamps, interval_ms)
    if tuple(columns) == CANDLE_COLUMNS:
        found += _candle_violations(frame, timestamps)
    else:
        found += _finite_violations(frame, timestamps, ("rate",))
    return found


def raise_on_violations(violations: list[Violation], source: str) -> None:
    """Raise a ``DataError`` naming ``source`` and every violation, if there are any."""
    if violations:
        lines = "\n  ".join(v.describe() for v in violations)
        raise DataError(f"{source}: {len(violations)} validation problem(s):\n  {lines}")


def find_gaps(timestamps: np.ndarray, interval_ms: int) -> list[Gap]:
    """Return the runs of missing bars in sorted, unique, on-grid ``timestamps``."""
    steps = np.diff(timestamps)
    at = np.flatnonzero(steps > interval_ms)
    return [
        Gap(int(timestamps[i]) + interval_ms, int(steps[i] // interval_ms) - 1, interval_ms)
        for i in at
    ]


def apply_gap_policy(
    candles: pd.DataFrame,
    interval_ms: int,
    source: str,
    gap_policy: GapPolicy = "error",
    max_gap_bars: int = DEFAULT_MAX_GAP_BARS,
) -> pd.DataFrame:
    """Return valid candles with their gaps handled by ``gap_policy``.

    Parameters
    ----------
    candles : pandas.DataFrame
        Candles that passed ``find_violations``.
    interval_ms : int
        Length of one bar.
    source : str
        Name of the file or feed, used in messages.
    gap_policy : {"error", "drop", "flat"}
        See the module documentation.
    max_gap_bars : int
        The longest gap accepted by policy ``error``.

    Returns
    -------
    pandas.DataFrame
        The candles; with policy ``flat`` also a boolean ``filled`` column.
    """
    if gap_policy not in GAP_POLICIES:
        raise DataError(f"gap policy {gap_policy!r} is unknown; expected one of {GAP_POLICIES}")
    gaps = find_gaps(candles["timestamp"].to_numpy(), interval_ms)
    if gap_policy == "flat":
        return fill_flat(candles, interval_ms)
    if gap_policy == "drop":
        if gaps:
            warnings.warn(f"{source}: {_list_gaps(gaps)}; kept as they are", GapWarning, 2)
        return candles
    too_long = [gap for gap in gaps if gap.bars > max_gap_bars]
    if too_long:
        raise DataError(
            f"{source}: {_list_gaps(too_long)}, longer than max_gap_bars={max_gap_bars}; "
            "expected no gap longer than that. Load with gap_policy='drop' to keep the bars "
            "as they are, gap_policy='flat' to insert flagged flat bars, or raise max_gap_bars"
        )
    return candles


def fill_flat(candles: pd.DataFrame, interval_ms: int) -> pd.DataFrame:
    """Return candles with a flat zero-volume bar for every missing bar.

    An inserted bar opens, closes and trades at the previous close, has volume
    0 and is flagged ``True`` in the added ``filled`` column.
    """
    timestamps = candles["timestamp"].to_numpy()
    if len(timestamps) == 0:
        return candles.assign(filled=np.zeros(0, dtype=bool))
    grid = np.arange(timestamps[0], timestamps[-1] + interval_ms, interval_ms, dtype=np.int64)
    full = candles.set_index("timestamp").reindex(grid)
    filled = full["close"].isna().to_numpy()
    close = full["close"].ffill()
    for column in ("open", "high", "low"):
        full[column] = full[column].fillna(close)
    full["close"] = close
    full["volume"] = full["volume"].fillna(0.0)
    full["filled"] = filled
    return full.rename_axis("timestamp").reset_index()


def check_frame(frame: pd.DataFrame, columns: Sequence[str], interval_ms: int, name: str) -> Report:
    """Return the report of one table: size, range, gaps, violations, zero-volume bars."""
    violations = find_violations(frame, columns, interval_ms)
    rows = len(frame)
    if rows == 0:
        violations.append(Violation("file", "holds no rows; expected at least one"))
    zero_volume = None
    if tuple(columns) == CANDLE_COLUMNS and "volume" in frame:
        zero_volume = int((frame["volume"] == 0).sum())
    if "timestamp" not in frame or rows == 0 or frame["timestamp"].dtype != np.int64:
        return Report(name, rows, None, None, 0, None, violations, zero_volume)
    timestamps = np.unique(frame["timestamp"].to_numpy())
    on_grid = timestamps[timestamps % interval_ms == 0]
    gaps = find_gaps(on_grid, interval_ms)
    largest = max(gaps, key=lambda gap: gap.bars, default=None)
    missing = sum(gap.bars for gap in gaps)
    return Report(
        name,
        rows,
        int(timestamps[0]),
        int(timestamps[-1]),
        missing,
        largest,
        violations,
        zero_volume,
    )


def _list_gaps(gaps: list[Gap]) -> str:
    shown = ", ".join(gap.describe() for gap in gaps[:_MAX_LISTED_GAPS])
    rest = len(gaps) - _MAX_LISTED_GAPS
    total = sum(gap.bars for gap in gaps)
    summary = f"{len(gaps)} gap(s), {total} missing bar(s): {shown}"
    return summary + (f" and {rest} more gap(s)" if rest > 0 else "")


def _schema_violations(frame: pd.DataFrame, columns: Sequence[str]) -> list[Violation]:
    found = []
    for column in columns:
        expected = np.int64 if column == "timestamp" else np.float64
        if column not in frame.columns:
            found.append(Violation(column, f"missing; expected columns {', '.join(columns)}"))
        elif frame[column].dtype != expected:
            found.append(
                Violation(column, f"has dtype {frame[column].dtype}; expected {np.dtype(expected)}")
            )
    return found


def _first(mask: np.ndarray, timestamps: np.ndarray) -> tuple[int, int, int]:
    # Row, timestamp and count of the rows flagged in ``mask``.
    rows = np.flatnonzero(mask)
    return int(rows[0]), int(timestamps[rows[0]]), len(rows)


def _timestamp_violations(timestamps: np.ndarray, interval_ms: int) -> list[Violation]:
    found = []
    out_of_range = (timestamps < _MIN_MS) | (timestamps >= _MAX_MS)
    if out_of_range.any():
        row, value, count = _first(out_of_range, timestamps)
        found.append(
            Violation(
                "timestamp",
                f"value {value} is not a time in milliseconds; expected milliseconds since "
                "the epoch between 2009 and 2100",
                row,
                None,
                count,
            )
        )
        return found
    off_grid = timestamps % interval_ms != 0
    if off_grid.any():
        row, value, count = _first(off_grid, timestamps)
        found.append(
            Violation(
                "timestamp",
                f"is off the grid; expected a multiple of the {interval_ms} ms interval",
                row,
                value,
                count,
            )
        )
    unsorted = np.diff(timestamps) < 0
    if unsorted.any():
        row, _, count = _first(unsorted, timestamps[1:])
        found.append(
            Violation(
                "timestamp",
                "is earlier than the row before; expected timestamps sorted ascending",
                row + 1,
                int(timestamps[row + 1]),
                count,
            )
        )
    duplicated = pd.Series(timestamps).duplicated().to_numpy()
    if duplicated.any():
        row, value, count = _first(duplicated, timestamps)
        found.append(
            Violation(
                "timestamp", "repeats an earlier row; expected unique timestamps", row, value, count
            )
        )
    return found


def _finite_violations(
    frame: pd.DataFrame, timestamps: np.ndarray, columns: Sequence[str]
) -> list[Violation]:
    found = []
    for column in columns:
        bad = ~np.isfinite(frame[column].to_numpy())
        if bad.any():
            row, value, count = _first(bad, timestamps)
            found.append(
                Violation(
                    column,
                    f"is {frame[column].iloc[row]}; expected a finite number",
                    row,
                    value,
                    count,
                )
            )
    return found


def _candle_violations(frame: pd.DataFrame, timestamps: np.ndarray) -> list[Violation]:
    found = _finite_violations(frame, timestamps, CANDLE_COLUMNS[1:])
    values = {column: frame[column].to_numpy() for column in CANDLE_COLUMNS[1:]}
    body_high = np.maximum(values["open"], values["close"])
    body_low = np.minimum(values["open"], values["close"])
    checks = [
        *(
            (column, values[column] <= 0, "is {value}; expected a price > 0")
            for column in PRICE_COLUMNS
        ),
        ("volume", values["volume"] < 0, "is {value}; expected a volume >= 0"),
        (
            "high",
            values["high"] < body_high,
            "is {value}, below max(open, close) = {bound}; expected high >= max(open, close)",
        ),
        (
            "low",
            values["low"] > body_low,
            "is {value}, above min(open, close) = {bound}; expected low <= min(open, close)",
        ),
    ]
    bounds = {"high": body_high, "low": body_low}
    for column, mask, template in checks:
        if mask.any():
            row, value, count = _first(mask, timestamps)
            bound = bounds.get(column, values[column])[row]
            problem = template.format(value=values[column][row], bound=bound)
            found.append(Violation(column, problem, row, value, count))
    return found
