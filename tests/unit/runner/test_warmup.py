"""The event loop compiled ahead in another process, on a fresh numba cache."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from engine.config import StrategyConfig
from engine.data.store import CandleStore
from engine.runner import warmup
from engine.runner.backtest import run_backtest

REPO_ROOT = Path(__file__).resolve().parents[3]

BACKTEST = """
import json, sys
from pathlib import Path
from engine.config import StrategyConfig
from engine.data.store import CandleStore
from engine.runner.backtest import run_backtest
from engine.sim.nb import checked_run_nb
from engine.sim.compiled import is_compiled

compiled_before = is_compiled()
config = StrategyConfig(**json.loads(sys.argv[2]))
result = run_backtest(config, Path("models"), CandleStore(sys.argv[1]), None)
stats = checked_run_nb.stats
print(json.dumps({
    "compiled_before": compiled_before,
    "compiled_after": is_compiled(),
    "loaded": sum(stats.cache_hits.values()),
    "compiled_here": sum(stats.cache_misses.values()),
    "equity": result.sim.equity.tolist(),
}))
"""


def _backtest(spec: dict, shared_data: Path, numba_cache: Path) -> dict:
    env = {"PYTHONPATH": str(REPO_ROOT), "NUMBA_CACHE_DIR": str(numba_cache)}
    done = subprocess.run(
        [sys.executable, "-c", BACKTEST, str(shared_data), json.dumps(spec)],
        cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.slow
def test_on_a_fresh_cache_the_loop_is_compiled_in_another_process_and_loaded(shared_data, tmp_path):
    # The backtest's own process loads the loop that the other process compiled.
    spec = yaml.safe_load((REPO_ROOT / "strategies" / "sma_cross.yaml").read_text())
    spec["out_of_sample"] = {"start": "2025-03-01", "end": "2025-03-10"}
    first = _backtest(spec, shared_data, tmp_path)
    assert not first["compiled_before"] and first["compiled_after"]
    assert (first["loaded"], first["compiled_here"]) == (1, 0)
    here = run_backtest(StrategyConfig(**spec), REPO_ROOT / "models", CandleStore(shared_data))
    assert first["equity"] == here.sim.equity.tolist() and len(first["equity"]) == 10 * 24


def test_a_compiled_loop_starts_no_process():
    import numpy as np

    from engine.sim import simulate

    price = np.full((3, 1), 100.0)
    simulate(np.arange(3) * 3_600_000, price, price, price, price, 0.5)  # compiled or loaded
    assert warmup.is_compiled()
    with warmup.compile_ahead() as ahead:
        assert ahead.process is None


def test_one_process_is_shared_and_leaving_before_waiting_stops_it(monkeypatch):
    # `engine run` starts it and run_backtest waits for the same one.
    monkeypatch.setattr(warmup, "is_compiled", lambda: False)
    with pytest.raises(RuntimeError), warmup.compile_ahead() as ahead:
        process = ahead.process
        assert process is not None and process.poll() is None
        assert warmup.compile_ahead() is ahead
        raise RuntimeError("the backtest failed before its loop")
    assert process.returncode is not None and ahead.process is None
