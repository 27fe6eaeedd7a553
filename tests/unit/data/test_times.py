from __future__ import annotations

import pytest

from engine.data.times import iso_utc, last_closed_open_ms, parse_utc_ms
from engine.errors import DataError

JAN_1 = 1_704_067_200_000  # 2024-01-01 00:00 UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-01", JAN_1),
        ("2024-01-01T12:30", JAN_1 + 45_000_000),
        ("2024-01-01 02:00:00+02:00", JAN_1),
        ("2024-01-01T00:00:00Z", JAN_1),
    ],
)
def test_parse_utc_takes_dates_and_times_as_utc(text, expected):
    assert parse_utc_ms(text) == expected


def test_bad_time_says_what_is_expected():
    with pytest.raises(DataError, match="'last week' is not an ISO date"):
        parse_utc_ms("last week")


def test_iso_utc_formats_milliseconds():
    assert iso_utc(JAN_1 + 3_600_000) == "2024-01-01T01:00:00Z"


def test_last_closed_bar_excludes_the_bar_still_open():
    hour = 3_600_000
    assert last_closed_open_ms(JAN_1 + 5 * hour + 1, hour) == JAN_1 + 4 * hour
    assert last_closed_open_ms(JAN_1 + 5 * hour, hour) == JAN_1 + 4 * hour
    assert last_closed_open_ms(JAN_1 + 5 * hour - 1, hour) == JAN_1 + 3 * hour
