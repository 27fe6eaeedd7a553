"""A backtest on features runs without torch; loading a model loads it."""

from __future__ import annotations

import json

PROBE = """
import json, sys
from pathlib import Path
import yaml
import engine.cli, engine.paper.session
from engine.config import StrategyConfig
from engine.data.store import CandleStore
from engine.models.registry import Registry
from engine.runner.backtest import run_backtest

spec = yaml.safe_load(Path("strategies/ssl_cost.yaml").read_text())
spec["encoder"] = None
spec["representation"] = {"kind": "features", "extras": ["volatility_24", "rsi_14"]}
spec["walk_forward"] = {"fit_bars": 2000, "refit_every": 240, "embargo_bars": 5}
spec["out_of_sample"] = {"start": "2025-03-01", "end": "2025-03-10"}
result = run_backtest(StrategyConfig(**spec), Path("models"), CandleStore(sys.argv[1]), None)
before = "torch" in sys.modules
Registry("models").load("cost_bybit_1h")
print(json.dumps([len(result.sim.equity), before, "torch" in sys.modules]))
"""


def test_a_backtest_on_features_runs_without_torch_and_a_model_loads_it(run_python, shared_data):
    bars, before, after = json.loads(run_python(PROBE, shared_data))
    assert bars == 10 * 24
    assert not before, "a backtest on the features representation loaded torch"
    assert after, "loading a model should load torch"
