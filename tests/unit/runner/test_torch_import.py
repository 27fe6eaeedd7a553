"""A strategy without an encoder runs without loading torch; loading a model loads it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]

PROBE = """
import json, sys
import engine.cli, engine.runner.backtest, engine.paper.session
from engine.models.registry import Registry
registry = Registry(sys.argv[1])
before = "torch" in sys.modules
registry.load("cost_bybit_1h")
print(json.dumps([before, "torch" in sys.modules]))
"""


def test_the_run_and_session_modules_load_torch_only_with_a_model():
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO_ROOT / "models")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(REPO_ROOT)},
    )
    before, after = json.loads(done.stdout.splitlines()[-1])
    assert not before, "importing the run and session modules loaded torch"
    assert after, "loading a model should load torch"
