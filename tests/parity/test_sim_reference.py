"""The kernel agrees with the plain-Python reference book on random scenarios."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from sim_reference import reference_run
from sim_scenarios import Scenario, example_scenario, scenarios, sparsify

from engine.sim.enums import fill_dt, reject_dt

RTOL = 1e-9


def assert_records_match(kernel: np.ndarray, reference: list[tuple], dtype: np.dtype) -> None:
    """Assert that two record lists agree field by field, floats to 1e-9 relative."""
    assert kernel.size == len(reference), (
        f"{kernel.size} kernel records, {len(reference)} reference"
    )
    expected = np.array(reference, dtype=dtype) if reference else np.zeros(0, dtype)
    for name in dtype.names:
        if dtype[name].kind == "f":
            np.testing.assert_allclose(
                kernel[name], expected[name], rtol=RTOL, atol=1e-12, err_msg=name
            )
        else:
            np.testing.assert_array_equal(kernel[name], expected[name], err_msg=name)


def assert_agrees_with_reference(scenario: Scenario) -> None:
    """Run both books and compare every output."""
    result = scenario.run()
    expected = reference_run(
        scenario.open,
        scenario.high,
        scenario.low,
        scenario.close,
        offset=scenario.inputs["limit_offset"],
        config=scenario.reference_config(),
        markets=scenario.reference_markets(),
        cash=scenario.cash,
        **{k: v for k, v in scenario.inputs.items() if k != "limit_offset"},
    )
    scale = scenario.cash * 1e-12
    for name in ("equity", "cash", "funding"):
        np.testing.assert_allclose(
            getattr(result, name), expected[name], rtol=RTOL, atol=scale, err_msg=name
        )
    np.testing.assert_allclose(result.position, expected["position"], rtol=RTOL, atol=1e-12)
    # the reference sums each bar's costs as it trades; the kernel's ledger comes from its records
    for name, costs in expected["ledger"].items():
        np.testing.assert_allclose(
            result.ledger[name], costs, rtol=RTOL, atol=scale, err_msg=f"ledger {name}"
        )
    assert_records_match(result.fills, expected["fills"], fill_dt)
    assert_records_match(result.rejects, expected["rejects"], reject_dt)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_kernel_matches_reference_on_random_books(scenario: Scenario) -> None:
    assert_agrees_with_reference(scenario)


@pytest.mark.parametrize("wait", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_long_quiet_stretches_agree_with_reference(seed: int, wait: bool) -> None:
    # Quiet stretches many blocks long, each ended inside a block by a decision, a stop
    # distance, funding on a position or a liquidation (seed 0 has two).
    scenario = example_scenario(seed=seed, n_bars=500, n_assets=2)
    sparsify(np.random.default_rng(seed), scenario.inputs, share=0.02, wait=wait)
    assert_agrees_with_reference(scenario)
