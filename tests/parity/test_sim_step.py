"""One kernel for backtest and paper: a run bar by bar from the saved book equals one run."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from sim_scenarios import Scenario, example_scenario, scenarios, sparsify

from engine.sim import Mode, simulate
from engine.sim.run import SimResult, new_state

TESTS = Path(__file__).resolve().parents[1]


def step_by_step(scenario: Scenario) -> dict:
    """Feed the scenario to ``simulate`` one bar at a time from the saved book, as paper does."""
    n_bars, n_assets = scenario.close.shape
    full = {}
    for name, values in scenario.inputs.items():
        values = np.asarray(values)
        values = values.reshape(-1, 1) if values.ndim < 2 else values
        full[name] = np.broadcast_to(values, (n_bars, n_assets))
    state = new_state(n_assets, scenario.cash)
    steps = []
    for t in range(n_bars):
        rows = slice(t, t + 1)
        prices = (scenario.open, scenario.high, scenario.low, scenario.close)
        step = simulate(
            scenario.timestamps[rows],
            *(p[rows] for p in prices),
            markets=scenario.markets,
            config=scenario.config,
            state=state,
            **{name: np.ascontiguousarray(values[rows]) for name, values in full.items()},
        )
        state = (step.account, step.assets)
        steps.append(step)
    names = ("equity", "cash", "funding", "position", "ledger", "fills", "rejects")
    out = {name: np.concatenate([getattr(step, name) for step in steps]) for name in names}
    out["account"], out["assets"] = state
    return out


def assert_same_outputs(result: SimResult, other: dict) -> None:
    """Assert bit-identical outputs and final state, record arrays field by field."""
    for name in ("equity", "cash", "funding", "position"):
        np.testing.assert_array_equal(getattr(result, name), other[name], err_msg=name)
    for name in ("fills", "rejects", "assets", "account", "ledger"):
        ours, theirs = getattr(result, name), other[name]
        assert ours.shape == theirs.shape, name
        for field in ours.dtype.names:
            np.testing.assert_array_equal(ours[field], theirs[field], err_msg=f"{name}.{field}")


@pytest.mark.slow
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
    other = replace(scenario, inputs=waiting).run()
    names = ("equity", "cash", "funding", "position", "ledger", "fills", "rejects")
    outputs = {name: getattr(other, name) for name in (*names, "account", "assets")}
    assert_same_outputs(scenario.run(), outputs)


@pytest.mark.parametrize("seed", [0, 2])
def test_long_quiet_stretches_step_bar_by_bar_equals_run(seed: int) -> None:
    # A run checks quiet bars a block at a time and keeps per-bar columns lazily; a
    # step covers one bar. Bit for bit the same, liquidations inside blocks included.
    scenario = example_scenario(seed=seed, n_bars=500, n_assets=2)
    sparsify(np.random.default_rng(seed), scenario.inputs, share=0.02)
    assert_same_outputs(scenario.run(), step_by_step(scenario))


def test_columns_given_are_kept_and_match_the_computed_ones() -> None:
    run = example_scenario(seed=4).run()
    columns = {name: getattr(run, name) for name in ("equity", "cash", "funding", "position")}
    records = {name: getattr(run, name) for name in ("fills", "rejects", "account", "assets")}
    given = SimResult.from_columns(**columns, **records, close=run.close)
    for name, values in columns.items():
        assert getattr(given, name) is values
    fresh = example_scenario(seed=4).run()
    np.testing.assert_array_equal(given.ledger, fresh.ledger)
    np.testing.assert_array_equal(fresh.position, run.position)


# 5,000 bars of 3 assets span several of the chunks checked_run_nb checks and runs
@pytest.mark.parametrize(("n_bars", "sparse"), [(60, False), (5_000, False), (5_000, True)])
def test_run_continues_from_a_saved_state(n_bars: int, sparse: bool) -> None:
    scenario = example_scenario(seed=3, n_bars=n_bars, sparse=sparse)
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
        "         account=r.account, assets=r.assets, ledger=r.ledger)\n"
    )
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    subprocess.run([sys.executable, "-c", script], env=env, check=True)
    with np.load(tmp_path / "out.npz") as saved:
        assert_same_outputs(example_scenario(seed=5, sparse=sparse).run(), dict(saved))
