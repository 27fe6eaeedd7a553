"""torch loads only when something is encoded: not for features, nor for cached representations."""

from __future__ import annotations

import json

BACKTEST = """
import json, sys
from pathlib import Path
import yaml
import engine.cli, engine.paper.session
from engine.config import StrategyConfig
from engine.data.store import CandleStore
from engine.models.registry import Registry
from engine.runner.backtest import run_backtest

spec = yaml.safe_load(Path("strategies/ssl_cost.yaml").read_text())
if sys.argv[2] == "features":
    spec["encoder"] = None
    spec["representation"] = {"kind": "features", "extras": ["volatility_24", "rsi_14"]}
spec["walk_forward"] = {"fit_bars": 2000, "refit_every": 240, "embargo_bars": 5}
spec["out_of_sample"] = {"start": "2025-03-01", "end": "2025-03-10"}
cache = Path(sys.argv[3]) if len(sys.argv) > 3 else None
result = run_backtest(StrategyConfig(**spec), Path("models"), CandleStore(sys.argv[1]), cache)
print(json.dumps([result.sim.equity.tolist(), "torch" in sys.modules]))
"""


def test_a_backtest_on_features_runs_without_torch(run_python, shared_data):
    equity, torch_loaded = json.loads(run_python(BACKTEST, shared_data, "features"))
    assert len(equity) == 10 * 24
    assert not torch_loaded, "a backtest on the features representation loaded torch"


def test_an_encoder_loads_torch_only_when_its_representations_are_not_cached(
    run_python, shared_data, tmp_path
):
    cold, cold_torch = json.loads(run_python(BACKTEST, shared_data, "model", tmp_path))
    warm, warm_torch = json.loads(run_python(BACKTEST, shared_data, "model", tmp_path))
    assert cold_torch, "encoding with cost_bybit_1h should load torch"
    assert not warm_torch, "a backtest on cached representations loaded torch"
    assert len(warm) == 10 * 24 and warm == cold
