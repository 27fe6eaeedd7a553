"""UTC timestamps in milliseconds: parsing, formatting and the bar clock."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

from engine.errors import DataError


DAY_MS = 86_400_000


def day_start_ms(day: date) -> int:
    """Return the first millisecond (00:00 UTC) of ``day``."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000


def day_range_ms(start: date, end: date | None) -> tuple[int, int | None]:
    """Return ``[start_ms, stop_ms)`` of the UTC days ``start`` to ``end`` inclusive.

    ``stop_ms`` is None when ``end`` is None (an open range).
    """
    return day_start_ms(start), None if end is None else day_start_ms(end) + DAY_MS


def now_ms() -> int:
    """Return the current time in milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def iso_utc(ms: int) -> str:
    """Return ``ms`` as an ISO 8601 UTC string such as ``2024-01-01T00:00:00Z``."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc_ms(text: str) -> int:
    """Return the milliseconds since the epoch of an ISO date or date-time.

    A value without a time zone is taken as UTC: ``2024-01-01``,
    ``2024-01-01T12:00`` and ``2024-01-01 12:00:00+00:00`` are all accepted.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise DataError(
            f"time {text!r} is not an ISO date or date-time; expected for example "
            "'2024-01-01' or '2024-01-01T12:00'"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def last_closed_open_ms(now: int, interval_ms: int) -> int:
    """Return the open time of the newest bar that has closed at ``now``.

    A bar is closed once ``open_time + interval <= now``; the bar that
    contains ``now`` is still open and is never stored.
    """
    return (now // interval_ms) * interval_ms - interval_ms
