"""Hostile names that would become file names: refused before any file is opened or made."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
STRATEGY = REPO_ROOT / "strategies" / "ssl_cost.yaml"
NAMES = {
    "parent_escape": "../escaped",
    "nested_parent_escape": "a/../../escaped",
    "separator": "a/b",
    "backslash": "a\\b",
    "dot_dot": "..",
    "dot": ".",
    "absolute_path": "/tmp/escaped",
    "hidden_file": ".hidden",
    "empty": "",
    "too_long": "s" * 101,
    "newline": "line\nbreak",
    "space": "two words",
    "home": "~root",
}


@pytest.mark.parametrize("case", sorted(NAMES))
def test_hostile_session_name_is_refused_by_paper_run(case, refused, tmp_path):
    journals = tmp_path / "sub" / "journals"
    refused(
        "paper",
        "run",
        STRATEGY,
        "--session",
        NAMES[case],
        "--journal-dir",
        journals,
        "--models-dir",
        REPO_ROOT / "models",
        says="--session",
    )
    assert not (tmp_path / "sub").exists()
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/escaped.sqlite").exists()


@pytest.mark.parametrize("case", sorted(NAMES))
def test_hostile_session_name_is_refused_by_paper_status(case, refused, tmp_path):
    refused("paper", "status", NAMES[case], "--journal-dir", tmp_path / "j", says="session")


@pytest.mark.parametrize("case", sorted(NAMES))
def test_hostile_session_name_is_refused_by_paper_report(case, refused, tmp_path):
    refused(
        "paper",
        "report",
        NAMES[case],
        "--journal-dir",
        tmp_path / "j",
        "--reports-dir",
        tmp_path / "reports",
        says="session",
    )
    assert not (tmp_path / "reports").exists()


SERIES_FLAGS = {
    "symbol_with_a_parent_escape": ("--symbol", "../BTCUSDT"),
    "symbol_with_a_separator": ("--symbol", "BTC/USDT"),
    "exchange_with_a_parent_escape": ("--exchange", "../../bybit"),
    "market_with_a_separator": ("--market", "linear/x"),
    "timeframe_with_a_parent_escape": ("--timeframe", "../1h"),
}


@pytest.mark.parametrize("case", sorted(SERIES_FLAGS))
def test_hostile_series_name_is_refused_by_data_import(case, refused, tmp_path):
    flags = {"--exchange": "bybit", "--market": "linear", "--symbol": "BTCUSDT"}
    flags["--timeframe"] = "1h"
    flag, value = SERIES_FLAGS[case]
    flags[flag] = value
    path = tmp_path / "bars.csv"
    path.write_text("timestamp,open,high,low,close,volume\n1735689600000,1,1,1,1,1\n")
    args = [item for pair in flags.items() for item in pair]
    refused("data", "import", path, *args, "--store", tmp_path / "store")
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").iterdir())
