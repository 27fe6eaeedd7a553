"""One kernel for backtest and paper: bar-by-bar ``step_nb`` equals ``run_nb``, jitted or not."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from sim_scenarios import Scenario, example_scenario, scenarios

from engine.sim import Mode, simulate
from engine.sim.enums import fill_dt, reject_dt
from engine.sim.nb import MAX_EVENTS_PER_ASSET, step_nb
from engine.sim.run import SimResult, market_records, new_state

TESTS = Path(__file__).resolve().parents[1]


def step_by_step(scenario: Scenario) -> dict:
    """Feed the scenario to ``step_nb`` one bar at a time, as the paper session does."""
    n_bars, n_assets = scenario.close.shape
    account, assets = new_state(n_assets, scenario.cash)
    config = scenario.config.to_record()
    markets = market_records(scenario.markets, n_assets)
    names = ("funding", "target", "mode", "risk", "limit_offset", "stop_loss", "take_profit")
    full = {}
    for name in names:
        values = np.asarray(scenario.inputs[name])
        values = values.reshape(-1, 1) if values.ndim < 2 else values
        full[name] = np.broadcast_to(values, (n_bars, n_assets))
    capacity = MAX_EVENTS_PER_ASSET * n_assets
    equity, cash, funding = np.empty(1), np.empty(1), np.empty(1)
    position = np.empty((1, n_assets))
    out = {"equity": [], "cash": [], "funding": [], "position": [], "fills": [], "rejects": []}
    for t in range(n_bars):
        row = {name: np.ascontiguousarray(values[t : t + 1]) for name, values in full.items()}
        prices = [
            np.ascontiguousarray(p[t : t + 1])
            for p in (scenario.open, scenario.high, scenario.low, scenario.close)
        ]
        fills, rejects = np.empty(capacity, fill_dt), np.empty(capacity, reject_dt)
        n_fills, n_rejects = step_nb(
            account,
            assets,
            config,
            markets,
            *prices,
            *(row[name] for name in names),
            0,
            equity,
            cash,
            funding,
            position,
            fills,
            0,
            rejects,
            0,
        )
        out["equity"].append(equity[0])
        out["cash"].append(cash[0])
        out["funding"].append(funding[0])
        out["position"].append(position[0].copy())
        out["fills"].append(fills[:n_fills])
        out["rejects"].append(rejects[:n_rejects])
    out["fills"] = np.concatenate(out["fills"])
    out["rejects"] = np.concatenate(out["rejects"])
    out["account"], out["assets"] = account, assets
    return out


def assert_same_outputs(result: SimResult, other: dict) -> None:
    """Assert bit-identical outputs and final state, record arrays field by field."""
    for name in ("equity", "cash", "funding", "position"):
        np.testing.assert_array_equal(getattr(result, name), other[name], err_msg=name)
    for name in ("fills", "rejects", "assets", "account"):
        ours, theirs = getattr(result, name), other[name]
        assert ours.shape == theirs.shape, name
        for field in ours.dtype.names:
            np.testing.assert_array_equal(ours[field], theirs[field], err_msg=f"{name}.{field}")


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_step_bar_by_bar_equals_run(scenario: Scenario) -> None:
    assert_same_outputs(scenario.run(), step_by_step(scenario))


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_wait_with_a_target_equals_a_nan_target(scenario: Scenario) -> None:
    # the two encodings of "no decision": a NaN target, or any target with Mode.WAIT
    target = scenario.inputs["target"]
    if np.ndim(target) == 0:
        target = np.full(scenario.close.shape, target)
    undecided = np.isnan(target)
    waiting = dict(scenario.inputs)
    waiting["target"] = np.where(undecided, 0.75, target)
    waiting["mode"] = np.where(undecided, int(Mode.WAIT), scenario.inputs["mode"]).astype(np.int8)
    assert_same_outputs(scenario.run(), vars(replace(scenario, inputs=waiting).run()))


def test_run_continues_from_a_saved_state() -> None:
    scenario = example_scenario(seed=3)
    whole = scenario.run()
    half = scenario.close.shape[0] // 2
    first = Scenario(
        scenario.timestamps[:half],
        scenario.open[:half],
        scenario.high[:half],
        scenario.low[:half],
        scenario.close[:half],
        {k: v[:half] if np.ndim(v) else v for k, v in scenario.inputs.items()},
        scenario.markets,
        scenario.config,
        scenario.cash,
    ).run()
    rest = {k: v[half:] if np.ndim(v) else v for k, v in scenario.inputs.items()}
    second = simulate(
        scenario.timestamps[half:],
        scenario.open[half:],
        scenario.high[half:],
        scenario.low[half:],
        scenario.close[half:],
        markets=scenario.markets,
        config=scenario.config,
        state=(first.account, first.assets),
        **rest,
    )
    np.testing.assert_array_equal(np.concatenate([first.equity, second.equity]), whole.equity)
    np.testing.assert_array_equal(np.concatenate([first.fills, second.fills]), whole.fills)
    np.testing.assert_array_equal(second.account, whole.account)


@pytest.mark.parametrize("sparse", [False, True])
def test_pure_python_run_equals_the_compiled_run(tmp_path: Path, sparse: bool) -> None:
    script = (
        "import sys, numpy as np\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "from sim_scenarios import example_scenario\n"
        f"r = example_scenario(seed=5, sparse={sparse}).run()\n"
        f"np.savez({str(tmp_path / 'out.npz')!r}, equity=r.equity, cash=r.cash,\n"
        "         funding=r.funding, position=r.position, fills=r.fills, rejects=r.rejects,\n"
        "         account=r.account, assets=r.assets)\n"
    )
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    subprocess.run([sys.executable, "-c", script], env=env, check=True)
    with np.load(tmp_path / "out.npz") as saved:
        assert_same_outputs(example_scenario(seed=5, sparse=sparse).run(), dict(saved))
