"""Each rule of a bar in ``engine.sim.nb``, on small hand-made books."""

from __future__ import annotations

import numpy as np
import pytest

from engine.sim import Kind, Liquidity, MarketSpec, Mode, Reason, Side, SimConfig, simulate

HOUR_MS = 3_600_000
NAN = np.nan
NO_FEES = SimConfig(maker_fee=0.0, taker_fee=0.0)


def run(bars, target, **kwargs):
    """Simulate one asset over ``bars`` given as (open, high, low, close) rows."""
    candles = np.asarray(bars, dtype=np.float64)
    times = np.arange(len(candles), dtype=np.int64) * HOUR_MS
    return simulate(times, *candles.T, np.asarray(target, dtype=np.float64), **kwargs)


def flat(n_bars: int, price: float = 100.0) -> list[tuple[float, float, float, float]]:
    return [(price, price, price, price)] * n_bars


# --- market orders -------------------------------------------------------------


def test_market_order_fills_at_next_open_as_taker() -> None:
    bars = [(100, 101, 99, 100), (102, 103, 101, 102.5), (102, 103, 101, 102)]
    result = run(bars, [1.0, NAN, NAN])
    (fill,) = result.fills
    assert (fill["bar"], fill["side"], fill["price"]) == (1, Side.BUY, 102.0)
    assert fill["quantity"] == pytest.approx(10_000 / 102)
    assert fill["fee"] == pytest.approx(10_000 * 0.0003)
    assert (fill["liquidity"], fill["kind"]) == (Liquidity.TAKER, Kind.MARKET)
    assert result.equity[0] == 10_000.0
    assert result.equity[1] == pytest.approx(10_000 - 3.0 + 10_000 / 102 * 0.5)


def test_market_round_trip_costs_exactly_six_basis_points() -> None:
    result = run(flat(3), [1.0, 0.0, NAN])
    assert result.fills.size == 2
    assert result.equity[-1] == pytest.approx(10_000 * (1 - 0.0006), rel=1e-12)
    assert result.ledger["taker_fee"].sum() == pytest.approx(6.0, rel=1e-12)


def test_risk_scale_multiplies_the_target() -> None:
    result = run(flat(2), [1.0, NAN], risk=0.25, config=NO_FEES)
    assert result.position[-1, 0] == pytest.approx(25.0)


def test_nan_target_and_wait_mode_place_no_order() -> None:
    result = run(flat(3), [NAN, 1.0, NAN], mode=[Mode.MARKET, Mode.WAIT, Mode.MARKET])
    assert result.fills.size == 0 and result.rejects.size == 0


def test_slippage_moves_the_fill_against_the_taker() -> None:
    bars = [(100, 100, 100, 100), (100, 101, 99, 100)]
    result = run(bars, [1.0, NAN], config=SimConfig(slippage_bps=10.0))
    (fill,) = result.fills
    assert fill["price"] == pytest.approx(100.1)
    assert fill["slippage"] == pytest.approx(fill["quantity"] * 0.1)
    assert result.ledger["slippage"].sum() == pytest.approx(fill["slippage"])


def test_slippage_is_capped_by_the_bar_high() -> None:
    bars = [(100, 100, 100, 100), (100, 100.05, 99, 100)]
    result = run(bars, [1.0, NAN], config=SimConfig(slippage_bps=10.0))
    assert result.fills["price"][0] == 100.05


# --- limit orders ---------------------------------------------------------------


def test_limit_buy_fills_only_when_low_trades_through() -> None:
    touching = [(100, 100, 100, 100), (100, 101, 99.0, 100)]
    result = run(touching, [1.0, NAN], mode=Mode.LIMIT, limit_offset=0.01)
    assert result.fills.size == 0
    assert result.rejects["reason"].tolist() == [Reason.LIMIT_EXPIRED]
    through = [(100, 100, 100, 100), (100, 101, 98.9, 100)]
    result = run(through, [1.0, NAN], mode=Mode.LIMIT, limit_offset=0.01)
    (fill,) = result.fills
    assert fill["price"] == pytest.approx(99.0)
    assert fill["quantity"] == pytest.approx(100.0)  # sized at the close: 10,000 / 100
    assert (fill["liquidity"], fill["kind"]) == (Liquidity.MAKER, Kind.LIMIT)
    assert fill["fee"] == pytest.approx(99.0 * 100 * 0.0003)
    assert result.ledger["maker_fee"].sum() == pytest.approx(fill["fee"])


def test_limit_sell_fills_only_when_high_trades_through() -> None:
    bars = [(100, 100, 100, 100), (100, 101.0, 99, 100), (100, 101.1, 99, 100)]
    result = run(bars, [-1.0, -1.0, NAN], mode=Mode.LIMIT, limit_offset=0.01)
    (fill,) = result.fills
    assert (fill["bar"], fill["side"], fill["price"]) == (2, Side.SELL, pytest.approx(101.0))


def test_limit_gapped_through_at_the_open_fills_at_the_open() -> None:
    bars = [(100, 100, 100, 100), (98, 98.5, 97, 98)]
    result = run(bars, [1.0, NAN], mode=Mode.LIMIT, limit_offset=0.01)
    (fill,) = result.fills
    assert fill["price"] == 98.0
    assert fill["reason"] == Reason.GAP_AT_OPEN


def test_limit_rests_for_its_time_to_live_then_expires() -> None:
    bars = flat(5)
    target = [1.0, NAN, NAN, NAN, NAN]
    result = run(bars, target, mode=Mode.LIMIT, limit_offset=0.01, config=SimConfig(limit_ttl=3))
    (reject,) = result.rejects
    assert (reject["bar"], reject["reason"], reject["kind"]) == (
        3,
        Reason.LIMIT_EXPIRED,
        Kind.LIMIT,
    )
    assert reject["price"] == pytest.approx(99.0)


def test_wait_keeps_the_resting_limit_order() -> None:
    bars = [*flat(2), (100, 100, 98, 100)]
    mode = [Mode.LIMIT, Mode.WAIT, Mode.WAIT]
    result = run(bars, [1.0, 0.0, NAN], mode=mode, limit_offset=0.01, config=SimConfig(limit_ttl=2))
    assert result.fills["bar"].tolist() == [2]


def test_a_new_decision_replaces_the_resting_limit_order() -> None:
    bars = [*flat(2), (100, 100, 98, 100)]
    mode = [Mode.LIMIT, Mode.LIMIT, Mode.WAIT]
    config = SimConfig(limit_ttl=3)
    result = run(bars, [1.0, 0.5, NAN], mode=mode, limit_offset=[0.01, 0.03, 0.0], config=config)
    assert result.fills.size == 0 and result.rejects.size == 0  # 99 was replaced by 97
    assert result.assets["order_price"][0] == pytest.approx(97.0)


# --- stops ------------------------------------------------------------------------


def stop_book(next_bar, target=1.0, stop_loss=0.02, take_profit=0.05, **kwargs):
    """Enter at the open of bar 1 (100), then run ``next_bar`` as bar 2."""
    bars = [*flat(2), next_bar]
    return run(
        bars,
        [target, NAN, NAN],
        stop_loss=stop_loss,
        take_profit=take_profit,
        config=NO_FEES,
        **kwargs,
    )


def test_stop_loss_closes_a_long_at_its_level() -> None:
    result = stop_book((100, 101, 97.5, 99))
    exit_fill = result.fills[-1]
    assert (exit_fill["bar"], exit_fill["kind"], exit_fill["side"]) == (
        2,
        Kind.STOP_LOSS,
        Side.SELL,
    )
    assert exit_fill["price"] == pytest.approx(98.0)
    assert result.position[-1, 0] == 0.0
    assert result.equity[-1] == pytest.approx(10_000 * 0.98)


def test_take_profit_closes_a_long_at_its_level() -> None:
    result = stop_book((100, 106, 99, 104))
    exit_fill = result.fills[-1]
    assert exit_fill["kind"] == Kind.TAKE_PROFIT
    assert exit_fill["price"] == pytest.approx(105.0)


def test_stop_loss_fills_first_when_both_levels_are_inside_one_bar() -> None:
    result = stop_book((100, 106, 97, 104))
    assert result.fills["kind"][-1] == Kind.STOP_LOSS
    assert result.fills["price"][-1] == pytest.approx(98.0)


def test_a_gap_through_the_stop_fills_at_the_open() -> None:
    result = stop_book((95, 96, 94, 95))
    exit_fill = result.fills[-1]
    assert (exit_fill["kind"], exit_fill["price"]) == (Kind.STOP_LOSS, 95.0)
    assert exit_fill["reason"] == Reason.GAP_AT_OPEN


def test_a_gap_through_the_take_profit_fills_at_the_open() -> None:
    result = stop_book((107, 108, 96, 107))
    exit_fill = result.fills[-1]
    assert (exit_fill["kind"], exit_fill["price"]) == (Kind.TAKE_PROFIT, 107.0)


def test_short_stops_mirror_the_long_ones() -> None:
    stopped = stop_book((100, 102.5, 99, 101), target=-1.0)
    assert stopped.fills["kind"][-1] == Kind.STOP_LOSS
    assert (stopped.fills["side"][-1], stopped.fills["price"][-1]) == (
        Side.BUY,
        pytest.approx(102.0),
    )
    profit = stop_book((100, 101, 94, 96), target=-1.0)
    assert profit.fills["kind"][-1] == Kind.TAKE_PROFIT
    assert profit.fills["price"][-1] == pytest.approx(95.0)


def test_stop_pays_taker_fee_and_slippage_within_the_bar() -> None:
    bars = [*flat(2), (100, 101, 97.5, 99)]
    config = SimConfig(slippage_bps=100.0)
    result = run(bars, [1.0, NAN, NAN], stop_loss=0.02, config=config)
    exit_fill = result.fills[-1]
    entry = result.fills[0]["price"]
    assert exit_fill["price"] == pytest.approx(max(entry * 0.98 * 0.99, 97.5))
    assert exit_fill["fee"] == pytest.approx(exit_fill["quantity"] * exit_fill["price"] * 0.0003)


def test_stops_protect_a_position_from_the_bar_it_opened_at() -> None:
    bars = [flat(1)[0], (100, 100, 97, 99)]
    result = run(bars, [1.0, NAN], stop_loss=0.02, config=NO_FEES)
    assert result.fills["kind"].tolist() == [Kind.MARKET, Kind.STOP_LOSS]


def test_nan_stop_distances_never_trigger() -> None:
    result = stop_book((100, 150, 50, 100), stop_loss=NAN, take_profit=NAN)
    assert result.fills["kind"].tolist() == [Kind.MARKET]


def test_a_stop_cancels_the_resting_limit_order() -> None:
    bars = [*flat(2), (100, 100, 96, 97)]
    result = run(
        bars,
        [1.0, 2.0, NAN],
        mode=[Mode.MARKET, Mode.LIMIT, Mode.WAIT],
        limit_offset=0.01,
        stop_loss=0.02,
        config=NO_FEES,
    )
    assert result.fills["kind"].tolist() == [Kind.MARKET, Kind.STOP_LOSS]
    (reject,) = result.rejects
    assert (reject["bar"], reject["reason"]) == (2, Reason.CANCELLED_BY_STOP)


# --- funding ----------------------------------------------------------------------


def test_funding_long_pays_a_positive_rate_and_short_receives_it() -> None:
    bars = [*flat(2), (110, 110, 110, 110)]
    funding = [0.0, 0.0, 0.001]
    long = run(bars, [1.0, NAN, NAN], funding=funding, config=NO_FEES)
    short = run(bars, [-1.0, NAN, NAN], funding=funding, config=NO_FEES)
    assert long.funding.tolist() == [0.0, 0.0, pytest.approx(0.001 * 100 * 110)]
    assert short.funding[-1] == pytest.approx(-0.001 * 100 * 110)
    assert long.ledger["funding"].sum() == pytest.approx(11.0)
    assert long.equity[-1] == pytest.approx(11_000 - 11.0)
    assert short.equity[-1] == pytest.approx(9_000 + 11.0)


def test_funding_settles_on_the_position_held_into_the_open() -> None:
    result = run(flat(2), [1.0, NAN], funding=[0.0, 0.01], config=NO_FEES)
    assert result.funding.tolist() == [0.0, 0.0]


def test_nan_funding_means_no_settlement() -> None:
    result = run(flat(3), [1.0, NAN, NAN], funding=NAN, config=NO_FEES)
    assert np.all(result.funding == 0.0)


# --- market rules and sizing ---------------------------------------------------------


def test_quantity_rounds_down_to_the_step() -> None:
    result = run(flat(2, 30.0), [1.0, NAN], markets=MarketSpec(qty_step=1.0), config=NO_FEES)
    assert result.fills["quantity"].tolist() == [333.0]


def test_order_below_minimum_quantity_is_rejected() -> None:
    result = run(flat(2), [0.001, NAN], markets=MarketSpec(min_qty=1.0))
    (reject,) = result.rejects
    assert (reject["reason"], reject["kind"]) == (Reason.BELOW_MIN_QTY, Kind.MARKET)
    assert reject["quantity"] == pytest.approx(0.1)
    assert result.fills.size == 0


def test_order_below_minimum_notional_is_rejected() -> None:
    result = run(flat(2), [0.0001, NAN], markets=MarketSpec(min_notional=5.0))
    assert result.rejects["reason"].tolist() == [Reason.BELOW_MIN_NOTIONAL]


def test_limit_below_minimum_is_rejected_when_placed() -> None:
    result = run(flat(2), [0.0001, NAN], mode=Mode.LIMIT, markets=MarketSpec(min_qty=1.0))
    (reject,) = result.rejects
    assert (reject["bar"], reject["kind"], reject["reason"]) == (
        0,
        Kind.LIMIT,
        Reason.BELOW_MIN_QTY,
    )


def test_cash_sizing_buys_equity_over_price_times_one_plus_fee() -> None:
    result = run(flat(2), [1.0, NAN], config=SimConfig(sizing="cash"))
    (fill,) = result.fills
    assert fill["quantity"] == pytest.approx(10_000 / (100 * 1.0003), rel=1e-12)
    assert fill["reason"] == Reason.CLIPPED_BY_CASH
    assert result.cash[-1] == pytest.approx(0.0, abs=1e-9)


def test_cash_sizing_rejects_a_buy_without_cash() -> None:
    bars = flat(3)
    result = run(
        bars, [1.0, 1.5, NAN], config=SimConfig(sizing="cash", maker_fee=0.0, taker_fee=0.0)
    )
    assert result.rejects["reason"].tolist() == [Reason.NO_CASH]


def test_cash_sizing_shorts_the_whole_equity() -> None:
    result = run(flat(2), [-1.0, NAN], config=SimConfig(sizing="cash"))
    assert result.fills["quantity"][0] == pytest.approx(100.0)


def test_margin_sizing_buys_the_whole_equity_and_borrows_the_fee() -> None:
    result = run(flat(2), [1.0, NAN])
    assert result.fills["quantity"][0] == pytest.approx(100.0)
    assert result.cash[-1] == pytest.approx(-3.0)


def test_margin_sizing_cuts_exposure_at_the_leverage_cap() -> None:
    result = run(flat(2), [3.0, NAN], config=SimConfig(max_leverage=2.0, taker_fee=0.0))
    (fill,) = result.fills
    assert fill["quantity"] == pytest.approx(200.0)
    assert fill["reason"] == Reason.CLIPPED_BY_LEVERAGE


def test_margin_order_at_the_leverage_cap_is_rejected() -> None:
    config = SimConfig(max_leverage=1.0, taker_fee=0.0)
    result = run(flat(3), [1.0, 2.0, NAN], config=config)
    assert result.rejects["reason"].tolist() == [Reason.LEVERAGE_CAP]


def test_margin_flip_past_the_cap_is_cut_to_the_cap_on_the_other_side() -> None:
    config = SimConfig(max_leverage=1.0, taker_fee=0.0)
    result = run(flat(3), [1.0, -3.0, NAN], config=config)
    assert result.position[-1, 0] == pytest.approx(-100.0)
    assert result.fills["reason"][-1] == Reason.CLIPPED_BY_LEVERAGE


def test_spot_cuts_a_sell_to_the_position_and_rejects_a_short() -> None:
    spot = SimConfig(sizing="cash", spot=True, taker_fee=0.0)
    result = run(flat(4), [0.5, -1.0, -1.0, NAN], config=spot)
    assert result.fills["reason"].tolist() == [Reason.NONE, Reason.CLIPPED_LONG_ONLY]
    assert result.position[-1, 0] == 0.0
    assert result.rejects["reason"].tolist() == [Reason.SHORT_NOT_ALLOWED]


def test_spot_has_no_funding_and_no_liquidation() -> None:
    spot = SimConfig(sizing="cash", spot=True, maintenance_margin=0.9)
    result = run([*flat(2), (10, 10, 10, 10)], [1.0, NAN, NAN], config=spot)
    assert Kind.LIQUIDATION not in result.fills["kind"]


# --- liquidation -----------------------------------------------------------------------


def two_asset_crash(**kwargs):
    """Go 2x long asset 0 at 100, rest a limit on asset 1, then crash asset 0 by 45%."""
    times = np.arange(3, dtype=np.int64) * HOUR_MS
    price = np.array([[100.0, 50.0], [100.0, 50.0], [55.0, 50.0]])
    low = price.copy()
    low[2, 0] = 54.0
    target = np.array([[2.0, NAN], [NAN, 0.5], [NAN, NAN]])
    mode = np.array([[Mode.MARKET, Mode.WAIT], [Mode.WAIT, Mode.LIMIT], [Mode.WAIT, Mode.WAIT]])
    config = SimConfig(
        maker_fee=0.0,
        taker_fee=0.0,
        maintenance_margin=0.1,
        liquidation_fee=0.01,
        max_leverage=3.0,
        limit_ttl=2,
    )
    return simulate(
        times,
        price,
        price,
        low,
        price,
        target,
        mode=mode.astype(np.int8),
        limit_offset=0.01,
        config=config,
        **kwargs,
    )


def test_liquidation_closes_every_position_at_the_close_with_a_fee() -> None:
    result = two_asset_crash()
    liquidation = result.fills[result.fills["kind"] == Kind.LIQUIDATION]
    assert liquidation["bar"].tolist() == [2]
    assert liquidation["price"][0] == 55.0
    assert liquidation["fee"][0] == pytest.approx(200 * 55.0 * 0.01)
    assert result.ledger["liquidation_fee"].sum() == pytest.approx(110.0)
    assert result.position[-1].tolist() == [0.0, 0.0]
    # equity 10,000 - 200 * 45 = 1,000 < 10% of 11,000; then the fee
    assert result.equity[-1] == pytest.approx(1_000.0 - 110.0)


def test_liquidation_cancels_every_resting_order() -> None:
    result = two_asset_crash()
    (reject,) = result.rejects
    assert (reject["asset"], reject["reason"]) == (1, Reason.CANCELLED_BY_LIQUIDATION)


def test_no_equity_rejects_new_exposure_but_allows_closing() -> None:
    bars = [*flat(2), (300, 300, 300, 300), *flat(2, 300.0)]
    config = SimConfig(maintenance_margin=0.0, liquidation_fee=0.0, taker_fee=0.0)
    result = run(bars, [-1.0, NAN, NAN, 1.0, NAN], config=config)
    # short 100 at 100, price triples: equity -10,000 -> liquidated, equity stays negative
    assert result.equity[2] == pytest.approx(-10_000.0)
    assert result.rejects["reason"].tolist() == [Reason.NO_EQUITY]
