"""engine pretrain killed with SIGKILL resumes to the same model as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from engine.data.store import CandleStore, SeriesKey
from engine.models.registry import Registry

SPEC = {
    "name": "killed",
    "seed": 1,
    "data": {
        "exchange": "bybit",
        "market": "linear",
        "symbols": ["BTCUSDT"],
        "timeframe": "1h",
        "start": "2024-01-01",
        "end": "2024-01-20",
    },
    "encoder": {"kind": "ts2vec", "params": {"output_dims": 16, "hidden_dims": 16, "depth": 3}},
    "training": {"iters": 300, "batch_size": 4, "max_train_length": 64, "checkpoint_every": 10},
}


def _engine(*args: str, env: dict) -> subprocess.Popen:
    command = [sys.executable, "-c", "from engine.cli import main; main()", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_weights(tmp_path, shared_data):
    store = tmp_path / "store"
    candles = pd.read_parquet(shared_data / "bybit_linear_BTCUSDT_1h.parquet")
    start = pd.Timestamp("2024-01-01", tz="UTC").value // 10**6
    candles = candles[(candles["timestamp"] >= start)].head(24 * 25)
    CandleStore(store).write(SeriesKey("bybit", "linear", "BTCUSDT", "1h"), candles)
    config = tmp_path / "killed.yaml"
    config.write_text(yaml.safe_dump(SPEC))
    env = os.environ | {"ENGINE_DATA_DIR": str(store), "OMP_NUM_THREADS": "1"}

    whole = _engine("pretrain", str(config), "--models-dir", str(tmp_path / "a"), env=env)
    assert whole.wait(timeout=900) == 0, whole.stderr.read().decode()

    killed = _engine("pretrain", str(config), "--models-dir", str(tmp_path / "b"), env=env)
    checkpoint = tmp_path / "b" / "killed" / "checkpoints" / "checkpoint.safetensors"
    deadline = time.monotonic() + 600
    while not checkpoint.exists() and time.monotonic() < deadline and killed.poll() is None:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL, "the run ended before it could be killed"

    resumed = _engine("pretrain", str(config), "--models-dir", str(tmp_path / "b"), env=env)
    out, err = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, err.decode()
    folder_a = Registry(tmp_path / "a").resolve("killed").path
    folder_b = Registry(tmp_path / "b").resolve("killed").path
    card = json.loads((folder_b / "card.json").read_text())
    assert 0 < card["training"]["resumed_from"] < 300
    a = load_file(folder_a / "weights.safetensors")
    b = load_file(folder_b / "weights.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[key], b[key]) for key in a)
