from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from engine.data import store as store_module
from engine.data.store import (
    CandleStore,
    FundingKey,
    SeriesKey,
    default_store_root,
    merge_series,
    parse_filename,
)
from engine.errors import DataError

from .helpers import HOUR, KEY


def test_key_names_the_file_like_the_shared_data():
    assert KEY.filename == "bybit_linear_BTCUSDT_1h.parquet"
    assert KEY.ccxt_symbol == "BTC/USDT:USDT"
    assert (
        FundingKey("bybit", "linear", "BTCUSDT").filename
        == "bybit_linear_BTCUSDT_funding_8h.parquet"
    )
    assert parse_filename("binance_spot_BTCUSDT_1m.parquet") == SeriesKey(
        "binance", "spot", "BTCUSDT", "1m"
    )
    assert parse_filename("bybit_linear_ETHUSDT_funding_8h.parquet") == FundingKey(
        "bybit", "linear", "ETHUSDT"
    )


def test_bad_keys_and_names_are_refused_with_the_expected_form():
    with pytest.raises(DataError, match="lower-case ccxt id"):
        SeriesKey("Bybit", "linear", "BTCUSDT", "1h")
    with pytest.raises(DataError, match="exchange_market_SYMBOL_timeframe.parquet"):
        parse_filename("btc.parquet")
    with pytest.raises(DataError, match="perpetuals only"):
        FundingKey("bybit", "spot", "BTCUSDT")


def test_default_root_is_env_or_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("ENGINE_DATA_DIR", str(tmp_path))
    assert default_store_root() == tmp_path
    assert CandleStore().root == tmp_path
    monkeypatch.delenv("ENGINE_DATA_DIR")
    assert default_store_root() == store_module.Path("data")


def test_round_trip_keeps_values_and_writes_the_shared_schema(store, candles, shared_data):
    frame = candles(50)
    path = store.write(KEY, frame)
    pd.testing.assert_frame_equal(store.load(KEY), frame, check_exact=True)
    written, reference = pq.ParquetFile(path), pq.ParquetFile(shared_data / KEY.filename)
    assert written.schema_arrow.remove_metadata() == reference.schema_arrow.remove_metadata()
    assert written.metadata.row_group(0).column(1).compression == "ZSTD"
    assert [p.name for p in store.root.iterdir()] == [KEY.filename]


def test_shared_data_loads_as_a_store(shared_data):
    frame = CandleStore(shared_data).load(KEY)
    assert len(frame) == 23_177
    assert frame["timestamp"].iloc[0] == 1_701_216_000_000
    funding = CandleStore(shared_data).load_funding("bybit", "linear", "BTCUSDT")
    assert list(funding.columns) == ["timestamp", "rate"] and len(funding) == 2_406


def write_half_then_fail(table, where, **kwargs):
    # A parquet writer that dies halfway through its file, as on a full disk.
    with open(where, "wb") as handle:
        handle.write(b"PAR1 half a file")
    raise OSError("disk full")


def test_failed_write_leaves_the_old_file_intact_and_no_temporary(store, candles, monkeypatch):
    store.write(KEY, candles(20))
    before = store.path(KEY).read_bytes()

    monkeypatch.setattr(store_module.pq, "write_table", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        store.write(KEY, candles(40))
    assert store.path(KEY).read_bytes() == before
    assert os.listdir(store.root) == [KEY.filename]


def test_invalid_candles_are_never_written(store, candles):
    frame = candles(10)
    frame.loc[3, "high"] = frame.loc[3, "low"] - 1.0
    with pytest.raises(DataError, match="not written"):
        store.write(KEY, frame)
    assert not store.exists(KEY)


def test_filled_bars_are_refused(store, candles):
    frame = candles(5).assign(filled=[False, True, False, False, False])
    with pytest.raises(DataError, match="refusing to store 1 filled bars"):
        store.write(KEY, frame)


def test_missing_series_names_the_file_and_how_to_get_it(store):
    with pytest.raises(DataError, match=r"bybit_linear_BTCUSDT_1h.parquet.*engine data fetch"):
        store.load(KEY)


def test_series_lists_files_with_rows_and_range(store, candles):
    store.write(KEY, candles(30))
    funding = pd.DataFrame(
        {
            "timestamp": np.arange(3, dtype=np.int64) * 8 * HOUR + 1_704_067_200_000,
            "rate": [1e-4, -2e-4, 5e-5],
        }
    )
    store.write_funding("bybit", "linear", "BTCUSDT", funding)
    (store.root / "notes.parquet").write_bytes(b"not ours")
    infos = {info.key: info for info in store.series()}
    assert infos[KEY].rows == 30 and infos[KEY].last_ms - infos[KEY].first_ms == 29 * HOUR
    assert infos[FundingKey("bybit", "linear", "BTCUSDT")].rows == 3
    assert len(infos) == 2


def test_merge_keeps_identical_overlap_and_refuses_conflicts(candles):
    frame = candles(10)
    merged = merge_series(frame.iloc[:6], frame.iloc[4:], "test")
    pd.testing.assert_frame_equal(merged, frame)
    changed = frame.iloc[4:].copy()
    changed.loc[5, "close"] += 1.0
    with pytest.raises(DataError, match=r"row at 2024-01-01T05:00:00Z differs"):
        merge_series(frame.iloc[:6], changed, "test")


def test_check_reports_unknown_names_and_unreadable_files(store, candles):
    store.write(KEY, candles(12).drop(index=[4]))
    (store.root / "candles.parquet").write_bytes(b"whatever")
    (store.root / "bybit_linear_ETHUSDT_1h.parquet").write_bytes(b"PAR1 torn")
    reports = {report.name: report for report in store.check()}
    assert reports[KEY.filename].ok and reports[KEY.filename].missing == 1
    assert "not of the form" in reports["candles.parquet"].violations[0].problem
    assert not reports["bybit_linear_ETHUSDT_1h.parquet"].ok
    with pytest.raises(DataError, match="not a readable parquet file"):
        store.load(SeriesKey("bybit", "linear", "ETHUSDT", "1h"))


def test_real_binance_gap_follows_the_gap_policy(shared_data):
    shared = CandleStore(shared_data)
    key = SeriesKey("binance", "spot", "BTCUSDT", "1h")
    with pytest.raises(DataError, match="1 missing bar at 2023-03-24T13:00:00Z"):
        shared.load(key)
    assert len(shared.load(key, max_gap_bars=1)) == 37_923
    filled = shared.load(key, gap_policy="flat")
    assert len(filled) == 37_924 and filled["filled"].sum() == 1
    bar = filled[filled["filled"]].iloc[0]
    halted = filled[filled["timestamp"] == bar["timestamp"] - HOUR].iloc[0]
    assert bar["timestamp"] == 1_679_662_800_000 and bar["close"] == halted["close"]
    assert bar["volume"] == 0.0


def test_append_creates_the_file_then_merges_new_bars_after_the_stored_ones(store, candles):
    frame = candles(30)
    store.append(KEY, frame.iloc[:10])
    store.append(KEY, frame.iloc[6:20])  # an overlap with the same values is kept once
    store.append(KEY, frame.iloc[20:])
    pd.testing.assert_frame_equal(store.load(KEY), frame, check_exact=True)


def test_an_append_that_conflicts_leaves_a_gap_or_fails_midway_leaves_the_file_intact(
    store, candles, monkeypatch
):
    frame = candles(30)
    store.write(KEY, frame.iloc[:20])
    before = store.path(KEY).read_bytes()
    revised = frame.iloc[19:22].copy()
    revised.loc[19, "volume"] += 1.0
    with pytest.raises(DataError, match="differs between the store"):
        store.append(KEY, revised)
    with pytest.raises(DataError, match="longer than max_gap_bars=0"):
        store.append(KEY, frame.iloc[22:])

    monkeypatch.setattr(store_module.pq, "write_table", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        store.append(KEY, frame.iloc[20:])
    assert store.path(KEY).read_bytes() == before
    assert os.listdir(store.root) == [KEY.filename]
    pd.testing.assert_frame_equal(store.load(KEY), frame.iloc[:20], check_exact=True)
