from __future__ import annotations

import pandas as pd
import pytest

from engine.data.importers import import_file, infer_key, read_candle_file
from engine.data.store import SeriesKey
from engine.errors import DataError

from .helpers import KEY


def to_freqtrade(frame: pd.DataFrame, unit: str = "ms") -> pd.DataFrame:
    dates = pd.to_datetime(frame["timestamp"], unit="ms", utc=True).astype(
        f"datetime64[{unit}, UTC]"
    )
    return frame.drop(columns="timestamp").assign(date=dates)[
        ["date", "open", "high", "low", "close", "volume"]
    ]


def test_parquet_in_store_schema_is_imported_under_its_name(store, candles, tmp_path):
    frame = candles(40)
    source = tmp_path / KEY.filename
    frame.to_parquet(source)
    result = import_file(store, source)
    assert result.key == KEY and result.imported == result.rows == 40
    pd.testing.assert_frame_equal(store.load(KEY), frame, check_exact=True)


def test_csv_with_integer_volume_is_converted_to_float(store, candles, tmp_path):
    frame = candles(30).assign(volume=lambda f: f["volume"].round().astype("int64"))
    source = tmp_path / "bybit_spot_ETHUSDT_1h.csv"
    frame.to_csv(source, index=False)
    result = import_file(store, source)
    assert result.key == SeriesKey("bybit", "spot", "ETHUSDT", "1h")
    loaded = store.load(result.key)
    assert loaded["volume"].dtype == "float64"
    assert (loaded["volume"].to_numpy() == frame["volume"].to_numpy()).all()
    assert (loaded["close"].to_numpy() == frame["close"].to_numpy()).all()


@pytest.mark.parametrize("unit", ["ms", "ns"])
def test_freqtrade_feather_in_its_folder_layout(store, candles, tmp_path, unit):
    frame = candles(25)
    folder = tmp_path / "user_data" / "data" / "bybit" / "futures"
    folder.mkdir(parents=True)
    source = folder / "BTC_USDT_USDT-1h-futures.feather"
    to_freqtrade(frame, unit).to_feather(source)
    result = import_file(store, source)
    assert result.key == KEY
    pd.testing.assert_frame_equal(store.load(KEY), frame, check_exact=True)


def test_freqtrade_spot_name_needs_the_exchange_outside_its_layout(tmp_path):
    source = tmp_path / "ETH_USDT-5m.feather"
    with pytest.raises(DataError, match="does not say its exchange; pass --exchange"):
        infer_key(source)
    assert infer_key(source, exchange="binance") == SeriesKey("binance", "spot", "ETHUSDT", "5m")


def test_explicit_fields_name_an_unnamed_file_and_win_over_the_name(store, candles, tmp_path):
    source = tmp_path / "export.csv"
    candles(10).to_csv(source, index=False)
    with pytest.raises(DataError, match="exchange, market, symbol, timeframe"):
        import_file(store, source)
    result = import_file(store, source, "bybit", "linear", "SOLUSDT", "1h")
    assert result.key == SeriesKey("bybit", "linear", "SOLUSDT", "1h")
    assert infer_key(tmp_path / KEY.filename, symbol="ETHUSDT").symbol == "ETHUSDT"


def test_import_extends_the_stored_series(store, candles, tmp_path):
    frame = candles(60)
    store.write(KEY, frame.iloc[:40])
    source = tmp_path / KEY.filename
    frame.iloc[30:].to_parquet(source)
    result = import_file(store, source)
    assert (result.imported, result.rows) == (30, 60)
    pd.testing.assert_frame_equal(store.load(KEY), frame, check_exact=True)


def test_invalid_file_is_refused_and_the_store_is_unchanged(store, candles, tmp_path):
    store.write(KEY, candles(10))
    before = store.path(KEY).read_bytes()
    bad = candles(20)
    bad.loc[12, "close"] = -5.0
    source = tmp_path / KEY.filename
    bad.to_parquet(source)
    with pytest.raises(DataError, match=r"column 'close', row 12 \(2024-01-01T12:00:00Z\)"):
        import_file(store, source)
    assert store.path(KEY).read_bytes() == before


def test_gap_needs_max_gap_bars(store, candles, tmp_path):
    source = tmp_path / KEY.filename
    candles(20).drop(index=[7, 8]).to_parquet(source)
    with pytest.raises(DataError, match="2 missing bars"):
        import_file(store, source)
    assert not store.exists(KEY)
    assert import_file(store, source, max_gap_bars=2).rows == 18


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.json", "{}", "unsupported file type '.json'"),
        ("b.csv", "timestamp,open\n1,2\n", "missing column\\(s\\) high, low, close, volume"),
        (
            "c.csv",
            "timestamp,open,high,low,close,volume\n2024-01-01,1,1,1,1,1\n",
            "whole milliseconds",
        ),
    ],
)
def test_unreadable_files_say_what_was_expected(tmp_path, name, content, message):
    source = tmp_path / name
    source.write_text(content)
    with pytest.raises(DataError, match=message):
        read_candle_file(source)


def test_feather_without_timezone_is_refused(tmp_path, candles):
    frame = to_freqtrade(candles(5))
    frame["date"] = frame["date"].dt.tz_localize(None)
    source = tmp_path / "BTC_USDT-1h.feather"
    frame.to_feather(source)
    with pytest.raises(DataError, match="expected time-zone-aware datetimes"):
        read_candle_file(source)


def test_funding_file_is_not_taken_for_candles(tmp_path):
    with pytest.raises(DataError, match="holds funding rates; expected a candle file"):
        infer_key(tmp_path / "bybit_linear_BTCUSDT_funding_8h.parquet")
