"""End to end: ``engine data check`` on the shared real candles matches their README."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

BINANCE_1H = [
    f"binance_spot_{s}USDT_1h"
    for s in ["ADA", "AVAX", "BNB", "BTC", "DOGE", "ETH", "LINK", "SOL", "XRP"]
]
BYBIT_5M = [
    f"bybit_linear_{s}USDT_5m" for s in ["AAVE", "ADA", "APE", "AVAX", "BNB", "BTC", "ETH", "SOL"]
]
# file: (rows, missing bars, zero-volume bars), as the shared data's README states them.
EXPECTED = {
    **dict.fromkeys(BINANCE_1H, (37_923, 1, 1)),
    "binance_spot_BTCUSDT_1m": (1_306_000, 80, 72),
    **dict.fromkeys(BYBIT_5M, (86_604, 0, 0)),
    "bybit_linear_APEUSDT_5m": (86_604, 0, 5),
    "bybit_linear_BTCUSDT_1h": (23_177, 0, 0),
    **{f"bybit_linear_{s}USDT_1h": (22_721, 0, 0) for s in ("ETH", "SOL", "BNB")},
    "bybit_linear_BTCUSDT_funding_8h": (2_406, 0, None),
    **{f"bybit_linear_{s}USDT_funding_8h": (2_349, 0, None) for s in ("ETH", "SOL", "BNB")},
}
ROW = re.compile(
    r"│ (?P<file>\S+)\.parquet\s+│\s+(?P<rows>[\d,]+) │ [\d: -]+│ [\d: -]+│\s+(?P<missing>[\d,]+) │"
    r" (?P<gap>[^│]+)│\s+(?P<zero>[\d,-]+) │ (?P<violations>[^│]+)│"
)


@pytest.mark.slow
def test_check_reports_every_shared_file_as_its_readme_does(shared_data, tmp_path):
    env = {**os.environ, "ENGINE_DATA_DIR": str(shared_data), "COLUMNS": "220", "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-c", "from engine.cli import main; main()", "data", "check"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = {m["file"]: m for m in map(ROW.search, done.stdout.splitlines()) if m}
    assert set(rows) == set(EXPECTED)
    for name, (count, missing, zero) in EXPECTED.items():
        row = rows[name]
        assert int(row["rows"].replace(",", "")) == count, name
        assert int(row["missing"].replace(",", "")) == missing, name
        assert row["zero"] == ("-" if zero is None else str(zero)), name
        assert row["violations"].strip() == "none", name
    assert rows["binance_spot_BTCUSDT_1m"]["gap"].strip() == "80 at 2023-03-24 12:40"
    assert rows["binance_spot_ETHUSDT_1h"]["gap"].strip() == "1 at 2023-03-24 13:00"
    assert f"{len(EXPECTED)} files, 0 with violations" in done.stdout
    assert list(tmp_path.iterdir()) == []
