"""Truncated, garbage and malformed files of every format the engine reads.

Candle files (parquet, CSV, feather) are imported, replayed and loaded by a
run; each bad one is refused with exit code 2 and nothing is written to the
store. Store files that are damaged are listed as violations by
``engine data check`` (exit code 1). SQLite files that are not journals are
refused by the paper commands and skipped by ``paper status``, and never
written to.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from engine.paper.journal import Journal

REPO_ROOT = Path(__file__).resolve().parents[2]
CANDLES = "bybit_linear_BTCUSDT_1h.parquet"
IMPORT_FLAGS = ["--exchange", "bybit", "--market", "linear", "--symbol", "BTCUSDT"]


@pytest.fixture(scope="module")
def candles(shared_data) -> pd.DataFrame:
    """Return 300 real hourly bars."""
    return pd.read_parquet(shared_data / CANDLES).iloc[-300:].reset_index(drop=True)


def _with(column: str, row: int, value):
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame.loc[row, column] = value
        return frame

    return change


FRAME_CASES = {
    "nan_close": _with("close", 150, np.nan),
    "nan_open_in_the_first_row": _with("open", 0, np.nan),
    "infinite_high": _with("high", 10, np.inf),
    "negative_price": _with("low", 20, -1.0),
    "zero_price": _with("open", 30, 0.0),
    "negative_volume": _with("volume", 40, -5.0),
    "high_below_low": _with("high", 50, 1.0),
    "timestamp_off_the_grid": _with("timestamp", 60, 1_748_995_200_001),
    "duplicate_timestamp": lambda f: pd.concat([f, f.iloc[[5]]]).reset_index(drop=True),
    "timestamps_out_of_order": lambda f: f.iloc[::-1].reset_index(drop=True),
    "timestamps_in_seconds": lambda f: f.assign(timestamp=f["timestamp"] // 1000),
    "missing_close_column": lambda f: f.drop(columns="close"),
    "text_in_a_price_column": lambda f: f.assign(
        close=f["close"].astype(str).where(f.index != 70, "twelve")
    ),
    "float_timestamps": lambda f: f.assign(timestamp=f["timestamp"].astype(float)),
    "no_rows": lambda f: f.iloc[:0],
    "half_hour_bars_for_a_1h_series": lambda f: f.assign(
        timestamp=f["timestamp"].iloc[0] + 1_800_000 * np.arange(len(f))
    ),
}


def _bytes_cases(suffix: str) -> dict:
    return {
        f"truncated_{suffix}": lambda data: data[: len(data) // 2],
        f"{suffix}_cut_to_ten_bytes": lambda data: data[:10],
        f"empty_{suffix}": lambda data: b"",
        f"garbage_{suffix}": lambda data: b"\x89garbage\x00\xff" * 64,
        f"{suffix}_with_a_flipped_middle": lambda data: (
            data[: len(data) // 2]
            + bytes(b ^ 0xFF for b in data[len(data) // 2 : len(data) // 2 + 64])
            + data[len(data) // 2 + 64 :]
        ),
    }


def _write(frame: pd.DataFrame, path) -> None:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        dates = pd.to_datetime(frame["timestamp"], unit="ms", utc=True, errors="coerce")
        frame.drop(columns="timestamp").assign(date=dates).reset_index(drop=True).to_feather(path)


def _bad_file(folder, candles, suffix: str, case: str):
    name = "BTC_USDT_USDT-1h-futures.feather" if suffix == "feather" else f"bars.{suffix}"
    path = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    if case in FRAME_CASES:
        _write(FRAME_CASES[case](candles), path)
    else:
        _write(candles, path)
        path.write_bytes(_bytes_cases(suffix)[case](path.read_bytes()))
    return path


def _cases(suffix: str, frames=FRAME_CASES) -> list[str]:
    return sorted([*frames, *_bytes_cases(suffix)])


# Feather carries dates, not millisecond stamps: stamp-specific cases do not apply.
FEATHER_FRAMES = {
    k: v
    for k, v in FRAME_CASES.items()
    if k not in ("timestamps_in_seconds", "float_timestamps", "timestamp_off_the_grid")
}
IMPORT_CASES = [
    *(("parquet", c) for c in _cases("parquet")),
    *(("csv", c) for c in _cases("csv")),
    *(("feather", c) for c in _cases("feather", FEATHER_FRAMES)),
]


@pytest.mark.parametrize(("suffix", "case"), IMPORT_CASES)
def test_bad_candle_file_is_refused_by_import_and_the_store_is_untouched(
    suffix, case, candles, refused, tmp_path
):
    path = _bad_file(tmp_path / "in", candles, suffix, case)
    store = tmp_path / "store"
    store.mkdir()
    flags = [] if suffix == "feather" else [*IMPORT_FLAGS, "--timeframe", "1h"]
    refused("data", "import", path, *flags, "--store", store, stored=[path, store])
    assert not any(store.iterdir())


def test_csv_that_is_binary_data_is_refused(refused, tmp_path):
    path = tmp_path / "bars.csv"
    path.write_bytes(bytes(range(256)) * 16)
    refused("data", "import", path, *IMPORT_FLAGS, "--timeframe", "1h", "--store", tmp_path / "s")


def test_csv_with_only_a_header_is_refused(refused, tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text("timestamp,open,high,low,close,volume\n")
    refused("data", "import", path, *IMPORT_FLAGS, "--timeframe", "1h", "--store", tmp_path / "s")


def test_feather_with_dates_without_a_time_zone_is_refused(candles, refused, tmp_path):
    path = tmp_path / "BTC_USDT_USDT-1h-futures.feather"
    dates = pd.to_datetime(candles["timestamp"], unit="ms")
    candles.drop(columns="timestamp").assign(date=dates).to_feather(path)
    refused(
        "data", "import", path, "--exchange", "bybit", "--store", tmp_path / "s", says="time-zone"
    )


# --- replay files ------------------------------------------------------------


@pytest.fixture
def paper_strategy(tmp_path, shared_data):
    """Return a one-symbol features strategy whose store is a copy of the real BTC series."""
    store = tmp_path / "store"
    store.mkdir()
    for name in (CANDLES, "bybit_linear_BTCUSDT_funding_8h.parquet"):
        shutil.copy(shared_data / name, store / name)
    spec = yaml.safe_load((REPO_ROOT / "strategies" / "ssl_cost.yaml").read_text())
    spec["encoder"] = None
    spec["representation"] = {"kind": "features", "extras": ["volatility_24", "rsi_14"]}
    spec["store"] = {"path": str(store)}
    path = tmp_path / "strategies" / "paper.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(spec))
    return path


REPLAY_CASES = ["parquet_that_is_a_csv", *_cases("parquet")]


@pytest.mark.parametrize("case", REPLAY_CASES)
def test_bad_replay_file_is_refused_at_start(case, candles, paper_strategy, refused, tmp_path):
    if case == "parquet_that_is_a_csv":
        path = tmp_path / "in" / "bars.parquet"
        path.parent.mkdir()
        candles.to_csv(path, index=False)
    else:
        path = _bad_file(tmp_path / "in", candles, "parquet", case)
    journals = tmp_path / "journals"
    refused(
        "paper",
        "run",
        paper_strategy,
        "--session",
        "s",
        "--replay",
        path,
        "--journal-dir",
        journals,
        stored=[path, tmp_path / "store"],
    )
    assert not journals.exists()


def test_replay_file_that_does_not_exist_is_refused(paper_strategy, refused, tmp_path):
    refused(
        "paper",
        "run",
        paper_strategy,
        "--replay",
        tmp_path / "absent.parquet",
        "--journal-dir",
        tmp_path / "j",
        says="does not exist",
    )


# --- store files -------------------------------------------------------------


@pytest.fixture
def sma_store(tmp_path, candles, monkeypatch):
    """Return a store holding 300 BTC bars; strategies with no store path read it."""
    store = tmp_path / "store"
    store.mkdir()
    candles.to_parquet(store / CANDLES, index=False)
    monkeypatch.setenv("ENGINE_DATA_DIR", str(store))
    monkeypatch.setenv("ENGINE_OFFLINE", "1")
    return store


STORE_CASES = sorted(_bytes_cases("parquet"))


@pytest.mark.parametrize("case", STORE_CASES)
def test_run_on_a_damaged_store_file_is_refused(case, sma_store, refused, tmp_path):
    path = sma_store / CANDLES
    path.write_bytes(_bytes_cases("parquet")[case](path.read_bytes()))
    refused(
        "run",
        REPO_ROOT / "strategies" / "sma_cross.yaml",
        "--reports-dir",
        tmp_path / "reports",
        stored=[sma_store],
        says="not a readable parquet file",
    )
    assert not any((tmp_path / "reports").iterdir())


@pytest.mark.parametrize("case", ["nan_close", "high_below_low", "duplicate_timestamp"])
def test_run_on_a_store_file_that_fails_validation_is_refused(
    case, sma_store, candles, refused, tmp_path
):
    FRAME_CASES[case](candles).to_parquet(sma_store / CANDLES, index=False)
    refused(
        "run",
        REPO_ROOT / "strategies" / "sma_cross.yaml",
        "--reports-dir",
        tmp_path / "reports",
        stored=[sma_store],
    )


@pytest.mark.parametrize("case", ["no_rows_parquet", "zero_byte_file", *STORE_CASES])
def test_data_check_reports_an_empty_or_damaged_file_as_a_violation(
    case, sma_store, candles, run_cli, snapshot
):
    path = sma_store / CANDLES
    if case == "no_rows_parquet":
        candles.iloc[:0].to_parquet(path, index=False)
    elif case == "zero_byte_file":
        path.write_bytes(b"")
    else:
        path.write_bytes(_bytes_cases("parquet")[case](path.read_bytes()))
    before = snapshot([sma_store])
    result = run_cli("data", "check", "--store", sma_store)
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "1 files, 1 with violations" in result.stdout
    assert snapshot([sma_store]) == before


# --- SQLite files in the journal folder -----------------------------------------


def _foreign_sqlite(path):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (name TEXT)")
    db.execute("INSERT INTO users VALUES ('a')")
    db.commit()
    db.close()


def _journal_then(change):
    def make(path):
        journal = Journal(path, path.stem)
        journal.start({"config_sha256": "0" * 64, "symbols": '["BTCUSDT"]'}, False)
        journal.close()
        path.write_bytes(change(path.read_bytes()))

    return make


SQLITE_CASES = {
    "garbage_sqlite": lambda path: path.write_bytes(b"not a database at all" * 100),
    "foreign_sqlite": _foreign_sqlite,
    "empty_sqlite_file": lambda path: path.write_bytes(b""),
    "journal_cut_to_its_first_page": _journal_then(lambda data: data[:4096]),
    "journal_cut_to_its_header": _journal_then(lambda data: data[:100]),
    "journal_with_a_zeroed_header": _journal_then(lambda data: b"\x00" * 100 + data[100:]),
    "journal_with_a_garbled_second_page": _journal_then(
        lambda data: data[:4096] + b"\xff" * 4096 + data[8192:]
    ),
}


@pytest.fixture
def journals(tmp_path):
    """Return a journal folder holding one good (empty) journal, ``good``."""
    folder = tmp_path / "journals"
    folder.mkdir()
    journal = Journal(folder / "good.sqlite", "good")
    journal.start({"config_sha256": "0" * 64, "symbols": '["BTCUSDT"]'}, False)
    journal.close()
    return folder


@pytest.mark.parametrize("case", sorted(SQLITE_CASES))
def test_paper_status_of_a_file_that_is_not_a_journal_is_refused(case, journals, refused):
    SQLITE_CASES[case](journals / "bad.sqlite")
    refused("paper", "status", "bad", "--journal-dir", journals, stored=[journals])
    assert sorted(p.name for p in journals.iterdir()) == ["bad.sqlite", "good.sqlite"]


@pytest.mark.parametrize("case", sorted(SQLITE_CASES))
def test_paper_status_of_all_sessions_skips_and_reports_a_file_that_is_not_a_journal(
    case, journals, run_cli, snapshot
):
    SQLITE_CASES[case](journals / "bad.sqlite")
    before = snapshot([journals])
    result = run_cli("paper", "status", "--journal-dir", journals)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "good" in result.stdout
    assert f"skipped {journals / 'bad.sqlite'}: not a" in result.stdout
    assert snapshot([journals]) == before
    assert sorted(p.name for p in journals.iterdir()) == ["bad.sqlite", "good.sqlite"]


@pytest.mark.parametrize("case", ["garbage_sqlite", "foreign_sqlite", "empty_sqlite_file"])
def test_paper_report_of_a_file_that_is_not_a_journal_is_refused(case, journals, refused, tmp_path):
    SQLITE_CASES[case](journals / "bad.sqlite")
    refused(
        "paper",
        "report",
        "bad",
        "--journal-dir",
        journals,
        "--reports-dir",
        tmp_path / "reports",
        stored=[journals],
    )


@pytest.mark.parametrize("case", ["garbage_sqlite", "foreign_sqlite"])
def test_paper_run_on_a_file_that_is_not_a_journal_is_refused_and_leaves_it_alone(
    case, journals, paper_strategy, refused, shared_data
):
    SQLITE_CASES[case](journals / "bad.sqlite")
    refused(
        "paper",
        "run",
        paper_strategy,
        "--session",
        "bad",
        "--replay",
        shared_data / CANDLES,
        "--journal-dir",
        journals,
        stored=[journals / "bad.sqlite"],
        says="not a paper journal",
        bound=20.0,
    )
    assert not (journals / "bad.sqlite-wal").exists()
