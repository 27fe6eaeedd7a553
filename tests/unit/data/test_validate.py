from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from engine.data.validate import (
    CANDLE_COLUMNS,
    FUNDING_COLUMNS,
    GapWarning,
    apply_gap_policy,
    check_frame,
    find_violations,
    raise_on_violations,
)
from engine.errors import DataError

from .helpers import HOUR, KEY, START


def violations_of(frame):
    return find_violations(frame, CANDLE_COLUMNS, HOUR)


def only_problem(frame):
    found = violations_of(frame)
    assert len(found) == 1, [v.describe() for v in found]
    return found[0]


def test_valid_candles_have_no_violations(candles):
    assert violations_of(candles(100)) == []


def test_duplicate_timestamp_names_row_and_time(candles):
    frame = candles(10)
    frame.loc[6, "timestamp"] = frame.loc[5, "timestamp"]
    found = {v.problem for v in violations_of(frame)}
    assert "repeats an earlier row; expected unique timestamps" in found
    described = [v.describe() for v in violations_of(frame) if "repeats" in v.problem][0]
    assert described.startswith("column 'timestamp', row 6 (2024-01-01T05:00:00Z)")


def test_unsorted_timestamps_are_reported(candles):
    frame = candles(10)
    frame = frame.iloc[[0, 1, 2, 4, 3, 5, 6, 7, 8, 9]].reset_index(drop=True)
    violation = only_problem(frame)
    assert violation.row == 4 and "expected timestamps sorted ascending" in violation.problem


def test_off_grid_timestamp(candles):
    frame = candles(10)
    frame.loc[2, "timestamp"] += 60_000
    found = violations_of(frame)
    assert found[0].problem.startswith("is off the grid; expected a multiple of the 3600000 ms")
    assert found[0].describe().startswith("column 'timestamp', row 2 (2024-01-01T02:01:00Z)")


def test_seconds_instead_of_milliseconds(candles):
    frame = candles(3)
    frame["timestamp"] //= 1000
    assert "not a time in milliseconds" in only_problem(frame).problem


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("high", "below", "expected high >= max(open, close)"),
        ("low", "above", "expected low <= min(open, close)"),
        ("open", -1.0, "expected a price > 0"),
        ("close", 0.0, "expected a price > 0"),
        ("volume", -3.0, "expected a volume >= 0"),
        ("volume", np.nan, "expected a finite number"),
    ],
)
def test_value_violations_name_column_row_and_expectation(candles, column, value, expected):
    frame = candles(10)
    if value == "below":
        frame.loc[7, "high"] = max(frame.loc[7, "open"], frame.loc[7, "close"]) - 1.0
    elif value == "above":
        frame.loc[7, "low"] = min(frame.loc[7, "open"], frame.loc[7, "close"]) + 1.0
    else:
        frame.loc[7, column] = value
    found = [v for v in violations_of(frame) if v.column == column]
    assert found, [v.describe() for v in violations_of(frame)]
    assert found[0].row == 7 and found[0].timestamp_ms == START + 7 * HOUR
    assert expected in found[0].problem


def test_missing_column_and_wrong_dtype(candles):
    frame = candles(5).drop(columns="volume")
    frame["timestamp"] = frame["timestamp"].astype(np.float64)
    problems = {v.column: v.problem for v in violations_of(frame)}
    assert problems["volume"].startswith("missing; expected columns timestamp, open")
    assert problems["timestamp"] == "has dtype float64; expected int64"


def test_error_message_names_file_and_counts_rows(candles):
    frame = candles(10)
    frame.loc[[2, 5], "volume"] = -1.0
    with pytest.raises(DataError) as error:
        raise_on_violations(violations_of(frame), "some_file.parquet")
    assert str(error.value).startswith("some_file.parquet: 1 validation problem(s):")
    assert "row 2 (2024-01-01T02:00:00Z)" in str(error.value) and "[2 rows]" in str(error.value)


def test_funding_rates_must_be_finite_and_on_the_8h_grid():
    rates = pd.DataFrame(
        {"timestamp": START + 8 * HOUR * np.arange(4, dtype=np.int64), "rate": [1e-4, np.inf, 0, 0]}
    )
    assert [v.column for v in find_violations(rates, FUNDING_COLUMNS, 8 * HOUR)] == ["rate"]
    rates.loc[1, "rate"] = 0.0
    rates.loc[2, "timestamp"] += HOUR
    assert "off the grid" in find_violations(rates, FUNDING_COLUMNS, 8 * HOUR)[0].problem


def with_gap(candles, start_row=5, bars=3):
    frame = candles(20)
    return frame.drop(index=range(start_row, start_row + bars)).reset_index(drop=True)


def test_gap_policy_error_names_the_gap_and_the_ways_out(candles):
    frame = with_gap(candles)
    with pytest.raises(DataError) as error:
        apply_gap_policy(frame, HOUR, KEY.filename)
    message = str(error.value)
    assert "3 missing bars from 2024-01-01T05:00:00Z to 2024-01-01T07:00:00Z" in message
    assert "max_gap_bars=0" in message and "gap_policy='drop'" in message


def test_gap_policy_error_accepts_gaps_up_to_max_gap_bars(candles):
    frame = with_gap(candles)
    pd.testing.assert_frame_equal(apply_gap_policy(frame, HOUR, "f", "error", 3), frame)
    with pytest.raises(DataError):
        apply_gap_policy(frame, HOUR, "f", "error", 2)


def test_gap_policy_drop_keeps_bars_and_warns(candles):
    frame = with_gap(candles)
    with pytest.warns(GapWarning, match="1 gap\\(s\\), 3 missing bar\\(s\\)"):
        kept = apply_gap_policy(frame, HOUR, "f", "drop")
    pd.testing.assert_frame_equal(kept, frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        apply_gap_policy(candles(20), HOUR, "f", "drop")


def test_gap_policy_flat_inserts_flagged_flat_bars_at_previous_close(candles):
    original = candles(20)
    filled = apply_gap_policy(with_gap(candles), HOUR, "f", "flat")
    assert len(filled) == 20
    assert filled["filled"].tolist() == [False] * 5 + [True] * 3 + [False] * 12
    assert (filled["timestamp"].to_numpy() == original["timestamp"].to_numpy()).all()
    inserted = filled[filled["filled"]]
    previous_close = original.loc[4, "close"]
    assert (inserted[["open", "high", "low", "close"]].to_numpy() == previous_close).all()
    assert (inserted["volume"] == 0.0).all()
    real = filled[~filled["filled"]].drop(columns="filled").reset_index(drop=True)
    pd.testing.assert_frame_equal(real, with_gap(candles))


def test_unknown_gap_policy(candles):
    with pytest.raises(DataError, match="gap policy 'fill' is unknown"):
        apply_gap_policy(candles(3), HOUR, "f", "fill")


def test_check_reports_rows_range_gaps_zero_volume_and_violations(candles):
    frame = with_gap(candles)
    frame.loc[0, "volume"] = 0.0
    frame.loc[10, "low"] = frame.loc[10, "high"] + 1.0
    report = check_frame(frame, CANDLE_COLUMNS, HOUR, "x.parquet")
    assert (report.rows, report.missing, report.zero_volume) == (17, 3, 1)
    assert report.first_ms == START and report.last_ms == START + 19 * HOUR
    assert report.largest_gap.bars == 3 and report.largest_gap.start_ms == START + 5 * HOUR
    assert [v.column for v in report.violations] == ["low"] and not report.ok
