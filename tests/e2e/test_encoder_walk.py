"""The encoder re-tuned walk-forward: causal, audited, the same in a replayed paper session,
and safe against kill -9 during a re-tuning."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from paper_replays import CANDLES, _ms, _replay, store
from tiny_encoder import tiny_model, tiny_strategy

from engine.audit import audit
from engine.config import EncoderRefitConfig
from engine.data.store import CandleStore
from engine.paper.journal import Journal
from engine.runner.backtest import run_backtest
from engine.runner.encoders import encoder_due

__all__ = ["store"]  # the fixture


def test_the_encoder_is_due_every_k_bars_or_after_a_block_drift_ended():
    spec = EncoderRefitConfig(every=240)
    assert not encoder_due(spec, 1239, 1000, False)
    assert encoder_due(spec, 1240, 1000, False)
    assert encoder_due(spec, 1001, 1000, True)
    assert not encoder_due(EncoderRefitConfig(), 10_000, 1000, False)


@pytest.fixture
def models(tmp_path):
    return tiny_model(tmp_path / "models")


@pytest.mark.slow
def test_drift_triggered_encoder_refits_use_no_later_bar_and_the_audit_passes(models, shared_data):
    config = tiny_strategy("2025-06-01", "2025-06-08", None, "retrain_encoder")
    store = CandleStore(shared_data)
    decisions = run_backtest(config, models, store, cache_dir=None).fitted.decisions[0]
    triggers = {t for t, r in decisions.drift.items() if r.triggered}
    assert len(decisions.encoders) >= 2
    # Each version is tuned for the bar after a trigger, on the bars before that bar.
    assert all(v.bar - 1 in triggers for v in decisions.encoders)
    findings = audit(config, models, store, samples=2)
    assert all(f.changed == 0 for f in findings)
    assert any(f.output == "BTCUSDT encoder refits" for f in findings)


@pytest.mark.slow
def test_replayed_session_re_tunes_the_encoder_as_the_backtest_does(
    models, store, shared_data, tmp_path, monkeypatch
):
    monkeypatch.setenv("ENGINE_CACHE_DIR", str(tmp_path / "cache"))
    config = tiny_strategy("2025-06-01", "2025-06-08", 72, "retrain_encoder")
    tables, _ = _replay(
        config,
        store,
        shared_data,
        tmp_path / "j",
        _ms("2025-06-09"),
        through="file",
        models_dir=models,
    )
    backtest = run_backtest(config, models, CandleStore(shared_data), cache_dir=None)
    decisions = backtest.fitted.decisions[0]
    versions = tables["encoders"]
    assert len(versions) == len(decisions.encoders) >= 3
    np.testing.assert_array_equal(
        versions["ts"], backtest.timestamps[[v.bar - decisions.start for v in decisions.encoders]]
    )
    assert versions["version"].tolist() == [v.version for v in decisions.encoders]
    history = backtest.fitted.histories[0]
    rows = np.searchsorted(history.timestamp, tables["bars"]["ts"])
    z = np.stack([np.frombuffer(blob, history.z.dtype) for blob in tables["bars"]["z"]])
    np.testing.assert_array_equal(z, history.z[rows])
    np.testing.assert_array_equal(tables["balances"]["equity"], backtest.sim.equity)
    events = tables["events"]["message"]
    # One re-tuning per version, and one for the bar after the last, which never came.
    assert events.str.contains("re-tuning the encoder").sum() in (len(versions), len(versions) + 1)


@pytest.mark.slow
def test_kill_9_during_an_encoder_refit_then_resume_loses_and_repeats_no_version(
    models, store, shared_data, tmp_path, monkeypatch
):
    config = tiny_strategy("2025-06-01", "2025-06-08", 72, "retrain_encoder")
    until = _ms("2025-06-05")
    monkeypatch.setenv("ENGINE_CACHE_DIR", str(tmp_path / "cache_a"))
    clean, _ = _replay(
        config, store, shared_data, tmp_path / "a", until, through="file", models_dir=models
    )
    strategy = tmp_path / "tiny.yaml"
    strategy.write_text(yaml.safe_dump(config.model_dump(mode="json", by_alias=True)))
    journal = tmp_path / "b"
    env = os.environ | {"ENGINE_DATA_DIR": str(store.root), "ENGINE_CACHE_DIR": str(tmp_path / "c")}
    command = [sys.executable, "-c", "from engine.cli import app; app()", "paper", "run"]
    command += [str(strategy), "--session", "s", "--replay", str(shared_data / CANDLES)]
    command += ["--journal-dir", str(journal), "--models-dir", str(models)]
    command += ["--since", "2025-06-01", "--until", "2025-06-05"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    tuning = "SELECT COUNT(*) FROM events WHERE message LIKE 're-tuning the encoder%'"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with sqlite3.connect(journal / "s.sqlite") as db:
                if db.execute(tuning).fetchone()[0] >= 1:
                    break
        except sqlite3.OperationalError:
            pass  # not created yet
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    with sqlite3.connect(journal / "s.sqlite") as db:
        last = db.execute("SELECT message FROM events ORDER BY id DESC LIMIT 1").fetchone()[0]
        killed_at = db.execute("SELECT COUNT(*) FROM encoders").fetchone()[0]
    assert last.startswith("re-tuning the encoder"), "the kill did not land during a re-tuning"
    assert killed_at == 0
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)
    resumed = Journal(journal / "s.sqlite", "s")
    resumed = {name: resumed.table(name) for name in ("decisions", "balances", "drift", "encoders")}
    for name in ("decisions", "balances", "drift"):
        pd.testing.assert_frame_equal(clean[name], resumed[name], check_exact=True)
    columns = ["ts", "version"]
    pd.testing.assert_frame_equal(clean["encoders"][columns], resumed["encoders"][columns])
    assert len(resumed["encoders"]) >= 1 and resumed["encoders"]["ts"].is_unique
