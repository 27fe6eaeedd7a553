"""kill -9 a replayed paper session at 20 random points; resumes end in one journal and store."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from paper_replays import CANDLES, _config, _ms, _replay, store, strategy_file

from engine.data.store import CandleStore, SeriesKey

pytestmark = pytest.mark.slow
__all__ = ["store"]  # the fixture

KILLS = 20
UNTIL = "2025-06-21"  # 480 bars from 2025-06-01


def _count(journal: Path) -> int:
    # Bars committed so far, read while the session writes (WAL allows it).
    if not journal.is_file():
        return 0
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=10) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM bars").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def test_kill_9_at_20_random_points_then_resume_equals_an_uninterrupted_run(
    store, shared_data, tmp_path
):
    config = _config("2025-06-01", "2025-06-30")
    clean, _ = _replay(config, store, shared_data, tmp_path / "clean", _ms(UNTIL))
    total = len(clean["bars"])
    strategy = strategy_file(config, store, tmp_path)
    journals = tmp_path / "crashed"
    journal = journals / "s.sqlite"
    command = [
        sys.executable, "-c", "from engine.cli import main; main()",
        "paper", "run", str(strategy), "--session", "s", "--replay", str(shared_data / CANDLES),
        "--since", "2025-06-01", "--until", UNTIL, "--journal-dir", str(journals),
        "--bar-store", str(tmp_path / "bars"),
    ]  # fmt: skip
    targets = sorted(random.Random(7).sample(range(1, total), KILLS))
    env = {**os.environ, "ENGINE_CACHE_DIR": str(tmp_path / "cache")}
    killed_at = []
    for target in targets:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while _count(journal) < target and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_at.append(_count(journal))
    assert killed_at[-1] < total, "every kill must interrupt the replay"
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    with sqlite3.connect(journal) as db:
        for name in ("bars", "balances", "fills", "rejects", "decisions", "outputs", "positions"):
            mine = pd.read_sql_query(f"SELECT * FROM {name} ORDER BY ts", db)  # noqa: S608
            if name == "bars":
                assert mine["ts"].is_unique and len(mine) == total
                assert (mine["ts"].diff().dropna() == 3_600_000).all()
                timing = ["received_ms", "latency_ms"]
                pd.testing.assert_frame_equal(
                    mine.drop(columns=timing), clean[name].drop(columns=timing), check_exact=True
                )
            else:
                pd.testing.assert_frame_equal(mine, clean[name], check_exact=True)
    # Every bar journaled is in the store, once, with its values; kills mid-write broke nothing.
    stored = CandleStore(tmp_path / "bars").load(SeriesKey("bybit", "linear", "BTCUSDT", "1h"))
    source = pd.read_parquet(shared_data / CANDLES)
    source = source[source.timestamp.isin(clean["bars"]["ts"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(stored, source, check_exact=True)
    # A write killed midway leaves its hidden temporary file, which the store ignores.
    visible = [p.name for p in (tmp_path / "bars").iterdir() if not p.name.startswith(".")]
    reports = CandleStore(tmp_path / "bars").check()
    assert visible == [CANDLES] and len(reports) == 1 and not reports[0].violations


@pytest.mark.parametrize(
    ("stop_signal", "feed"),
    [(signal.SIGTERM, "rest"), (signal.SIGINT, "rest"), (signal.SIGTERM, "ws")],
    ids=["term", "int", "term-ws"],
)
def test_a_signal_ends_the_session_cleanly_after_the_current_bar(
    store, shared_data, tmp_path, stop_signal, feed
):
    strategy = strategy_file(_config("2025-06-01", "2025-06-30"), store, tmp_path)
    journal = tmp_path / "j" / "s.sqlite"
    if feed == "ws":
        # A stream needs an exchange: the fake server's, as `engine paper run --feed ws` would
        # watch Bybit's.
        command = [
            sys.executable, str(Path(__file__).with_name("streamed_session.py")), str(strategy),
            str(shared_data / CANDLES), str(tmp_path / "j"), "7200",
        ]  # fmt: skip
    else:
        command = [
            sys.executable, "-c", "from engine.cli import main; main()",
            "paper", "run", str(strategy), "--session", "s", "--replay", str(shared_data / CANDLES),
            "--since", "2025-06-01", "--speed", "7200", "--journal-dir", str(tmp_path / "j"),
        ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while _count(journal) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(stop_signal)
    out, err = process.communicate(timeout=30)
    # Clean: no traceback, no unclosed connection of the stream's client.
    assert process.returncode == 0 and "Traceback" not in err and "Unclosed" not in err, err
    processed = int(out.split("processed ")[1].split()[0])
    with sqlite3.connect(journal) as db:
        bars = db.execute("SELECT COUNT(*) FROM bars").fetchone()[0]
        balances = db.execute("SELECT COUNT(*) FROM balances").fetchone()[0]
    assert 3 <= processed == bars == balances < 24
