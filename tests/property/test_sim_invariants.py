"""Invariants of the event loop on random books."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from sim_scenarios import Scenario, scenarios

from engine.sim import SimConfig, simulate

EXAMPLES = settings(max_examples=150, deadline=None)


@EXAMPLES
@given(scenarios())
def test_equity_is_cash_plus_positions_at_every_close(scenario: Scenario) -> None:
    result = scenario.run()
    value = result.cash + np.sum(result.position * scenario.close, axis=1)
    np.testing.assert_allclose(result.equity, value, rtol=1e-12, atol=scenario.cash * 1e-12)


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
