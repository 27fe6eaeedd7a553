"""Invariants of the event loop on random books."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from sim_scenarios import Scenario, scenarios

from engine.sim import SimConfig, simulate
from engine.sim.run import new_state

EXAMPLES = settings(max_examples=150, deadline=None)


@EXAMPLES
@given(scenarios())
def test_equity_is_cash_plus_positions_at_every_close(scenario: Scenario) -> None:
    result = scenario.run()
    value = result.cash + np.sum(result.position * scenario.close, axis=1)
    np.testing.assert_allclose(result.equity, value, rtol=1e-12, atol=scenario.cash * 1e-12)


@settings(max_examples=40, deadline=None)
@given(scenarios())
def test_each_bars_costs_in_the_kernels_account_equal_its_ledger_row(scenario: Scenario) -> None:
    # The account record's costs of a bar are summed by the kernel as it fills; the ledger
    # is summed afterwards from the fills' records. Stepping one bar at a time, as a paper
    # session does, exposes every bar's account record.
    ledger = scenario.run().ledger
    n_bars, n_assets = scenario.close.shape
    inputs = {
        name: np.broadcast_to(
            np.asarray(values).reshape(n_bars if np.ndim(values) else 1, -1), (n_bars, n_assets)
        )
        for name, values in scenario.inputs.items()
    }
    state = new_state(n_assets, scenario.cash)
    for t in range(n_bars):
        rows = slice(t, t + 1)
        prices = (scenario.open, scenario.high, scenario.low, scenario.close)
        step = simulate(
            scenario.timestamps[rows],
            *(p[rows] for p in prices),
            markets=scenario.markets,
            config=scenario.config,
            state=state,
            **{name: np.ascontiguousarray(values[rows]) for name, values in inputs.items()},
        )
        state = (step.account, step.assets)
        for name in ledger.dtype.names:
            np.testing.assert_allclose(
                step.account[0][name], ledger[name][t], rtol=1e-12, atol=1e-12, err_msg=name
            )


@EXAMPLES
@given(scenarios())
def test_every_fill_lies_inside_its_bar(scenario: Scenario) -> None:
    fills = scenario.run().fills
    low = scenario.low[fills["bar"], fills["asset"]]
    high = scenario.high[fills["bar"], fills["asset"]]
    assert np.all(fills["price"] >= low) and np.all(fills["price"] <= high)
    assert np.all(fills["quantity"] > 0)


@EXAMPLES
@given(scenarios())
def test_cash_changes_only_by_trades_fees_and_funding(scenario: Scenario) -> None:
    result = scenario.run()
    fills = result.fills
    sign = np.where(fills["side"] == 0, -1.0, 1.0)
    flows = np.bincount(
        fills["bar"], sign * fills["quantity"] * fills["price"] - fills["fee"], result.equity.size
    )
    expected = scenario.cash + np.cumsum(flows - result.funding)
    np.testing.assert_allclose(result.cash, expected, rtol=1e-9, atol=scenario.cash * 1e-9)


@EXAMPLES
@given(scenarios())
def test_spot_books_stay_long_and_never_spend_more_than_cash(scenario: Scenario) -> None:
    spot = SimConfig(
        maker_fee=scenario.config.maker_fee,
        taker_fee=scenario.config.taker_fee,
        slippage_bps=scenario.config.slippage_bps,
        sizing="cash",
        spot=True,
    )
    inputs = dict(scenario.inputs, funding=0.0)
    result = simulate(
        scenario.timestamps,
        scenario.open,
        scenario.high,
        scenario.low,
        scenario.close,
        markets=scenario.markets,
        config=spot,
        cash=scenario.cash,
        **inputs,
    )
    assert np.all(result.position >= 0.0)
    assert np.all(result.cash >= -scenario.cash * 1e-9)


@EXAMPLES
@given(scenarios(costs=False))
def test_zero_costs_and_constant_prices_keep_equity_constant(scenario: Scenario) -> None:
    flat = np.broadcast_to(scenario.close[:1], scenario.close.shape).copy()
    inputs = dict(scenario.inputs, funding=0.0)
    result = simulate(
        scenario.timestamps,
        flat,
        flat,
        flat,
        flat,
        markets=scenario.markets,
        config=scenario.config,
        cash=scenario.cash,
        **inputs,
    )
    np.testing.assert_allclose(result.equity, scenario.cash, rtol=1e-12)
