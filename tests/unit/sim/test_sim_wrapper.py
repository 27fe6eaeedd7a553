"""Input checks, defaults and funding alignment of ``engine.sim.simulate``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.errors import ConfigError, DataError
from engine.sim import MarketSpec, SimConfig, align_funding, simulate
from engine.sim.enums import fill_dt, ledger_dt
from engine.sim.nb import CHECK_CHUNK
from engine.sim.run import BUFFER_BYTES

HOUR_MS = 3_600_000
NAN = np.nan


def candles(n_bars: int = 4, n_assets: int = 1) -> dict[str, np.ndarray]:
    price = np.full((n_bars, n_assets), 100.0)
    return {
        "timestamps": np.arange(n_bars, dtype=np.int64) * HOUR_MS,
        "open": price,
        "high": price * 1.01,
        "low": price * 0.99,
        "close": price,
    }


def call(target=0.5, **overrides):
    inputs = candles()
    inputs.update(overrides)
    return simulate(
        inputs.pop("timestamps"),
        inputs.pop("open"),
        inputs.pop("high"),
        inputs.pop("low"),
        inputs.pop("close"),
        target,
        **inputs,
    )


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        (
            {"timestamps": np.array([0, 2, 1, 3])},
            DataError,
            "timestamps must be strictly increasing; got 1 after 2",
        ),
        (
            {"timestamps": np.array([0.0, 1.0, 2.0, 3.0])},
            DataError,
            "timestamps must hold integer milliseconds; got dtype float64",
        ),
        (
            {"open": np.array([100.0, -1.0, 100.0, 100.0])},
            DataError,
            "open must be finite and > 0; got np.float64(-1.0) at bar 1, asset 0",
        ),
        (
            {"close": np.array([100.0, 100.0, np.nan, 100.0])},
            DataError,
            "close must be finite and > 0; got np.float64(nan) at bar 2",
        ),
        (
            {"low": np.full(4, 100.5)},
            DataError,
            "low must be <= open and close; got np.float64(100.5) at bar 0",
        ),
        (
            {"high": np.full(4, 99.0)},
            DataError,
            "high must be >= open and close; got np.float64(99.0) at bar 0",
        ),
        (
            {"open": np.full(3, 100.0)},
            DataError,
            "open must have 4 rows (one per timestamp); got shape (3, 1)",
        ),
        (
            {"risk": 1.5},
            ValueError,
            "risk must be in [0, 1]; got np.float64(1.5) at bar 0, asset 0",
        ),
        (
            {"mode": 7},
            ValueError,
            "mode must be one of 0 (MARKET), 1 (LIMIT), 2 (WAIT); got np.int64(7)",
        ),
        (
            {"mode": np.full(4, 258)},
            ValueError,
            "mode must be one of 0 (MARKET), 1 (LIMIT), 2 (WAIT); got np.int64(258) at bar 0",
        ),
        ({"mode": 1.0}, ValueError, "mode must hold integers; got dtype float64"),
        (
            {"limit_offset": -0.1},
            ValueError,
            "limit_offset must be in [0, 1); got np.float64(-0.1)",
        ),
        (
            {"stop_loss": 0.0},
            ValueError,
            "stop_loss must be > 0 and finite, or NaN; got np.float64(0.0)",
        ),
        ({"funding": np.inf}, DataError, "funding must be finite or NaN; got np.float64(inf)"),
        (
            {"target": np.full((4, 2), 0.5)},
            ValueError,
            "target must have 1 column (one per asset); got shape (4, 2)",
        ),
        (
            {"markets": [MarketSpec(), MarketSpec()]},
            ValueError,
            "markets must hold one MarketSpec per asset (1); got 2",
        ),
    ],
)
def test_bad_input_is_named_with_the_value_received(overrides, error, message) -> None:
    with pytest.raises(error) as caught:
        call(**overrides)
    assert message in str(caught.value)


def test_bad_values_past_the_first_checked_chunk_are_found_in_the_order_listed() -> None:
    # the checks run a chunk at a time, between runs of the bars before; a bad close in
    # the third chunk still beats a bad risk in the second, as the inputs are listed
    n_bars = 3 * CHECK_CHUNK
    inputs = candles(n_bars)
    inputs["close"] = inputs["close"].copy()
    inputs["close"][-1, 0] = np.nan
    risk = np.ones(n_bars)
    risk[CHECK_CHUNK + 1] = 2.0
    with pytest.raises(
        DataError, match=f"close must be finite and > 0; got np.float64.nan. at bar {n_bars - 1}"
    ):
        simulate(*inputs.values(), 0.5, risk=risk)
    inputs["close"][-1, 0] = 100.0
    with pytest.raises(
        ValueError, match=f"risk must be in .0, 1.; got np.float64.2.0. at bar {CHECK_CHUNK + 1}"
    ):
        simulate(*inputs.values(), 0.5, risk=risk)


def test_infinite_target_is_rejected() -> None:
    with pytest.raises(ValueError, match="target must be finite or NaN; got np.float64"):
        call(target=np.inf)


def test_mode_names_map_to_their_codes() -> None:
    by_name = call(target=np.array([1.0, NAN, NAN, NAN]), mode=["limit", "wait", "wait", "market"])
    by_code = call(target=np.array([1.0, NAN, NAN, NAN]), mode=np.array([1, 2, 2, 0]))
    np.testing.assert_array_equal(by_name.equity, by_code.equity)
    with pytest.raises(
        ValueError, match="mode names must be one of market, limit, wait; got 'fast'"
    ):
        call(mode="fast")


def test_spot_refuses_funding() -> None:
    with pytest.raises(DataError, match="funding must be 0 or NaN for spot; got np.float64"):
        call(funding=0.001, config=SimConfig(sizing="cash", spot=True))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"taker_fee": -0.1}, "taker_fee must be a finite number in [0.0, inf); got -0.1"),
        ({"sizing": "all-in"}, "sizing must be 'margin' or 'cash'; got 'all-in'"),
        ({"spot": True}, "spot requires sizing 'cash'; got 'margin'"),
        ({"limit_ttl": 0}, "limit_ttl must be an integer >= 1; got 0"),
        ({"max_leverage": 0.0}, "max_leverage must be finite and > 0; got 0.0"),
    ],
)
def test_bad_config_is_named_with_the_value_received(kwargs, message) -> None:
    with pytest.raises(ConfigError) as caught:
        SimConfig(**kwargs)
    assert message in str(caught.value)


def test_default_costs_are_three_basis_points_per_side() -> None:
    config = SimConfig()
    assert (config.maker_fee, config.taker_fee) == (0.0003, 0.0003)


def test_one_column_inputs_broadcast_to_every_asset() -> None:
    inputs = candles(n_assets=3)
    result = simulate(*inputs.values(), np.array([0.2, np.nan, np.nan, np.nan]))
    np.testing.assert_allclose(result.notional[-1], [2_000 * (1 - 0.0006)] * 3, rtol=1e-3)
    assert result.position.shape == (4, 3)


def test_ledger_has_one_row_of_separate_costs_per_bar() -> None:
    result = call(target=np.array([1.0, 0.0, np.nan, np.nan]), funding=0.001)
    ledger = result.ledger
    assert ledger.dtype == ledger_dt and ledger.shape == (4,)
    assert ledger["taker_fee"].tolist() == pytest.approx([0.0, 3.0, 100 * 100 * 0.0003, 0.0])
    assert ledger["funding"][1] == 0.0 and ledger["funding"][2] == pytest.approx(0.001 * 100 * 100)


def test_records_beyond_the_first_buffer_are_all_kept() -> None:
    # a market order on every bar but the first, and a rejected one on every bar:
    # more records of each kind than the kernel's first buffers hold
    n_bars = 2 * BUFFER_BYTES // fill_dt.itemsize
    inputs = candles(n_bars)
    target = np.where(np.arange(n_bars) % 2 == 0, 0.5, -0.5)
    result = simulate(*inputs.values(), target, markets=MarketSpec(min_notional=1e7))
    assert result.fills.size == 0
    np.testing.assert_array_equal(result.rejects["bar"], np.arange(1, n_bars))
    result = simulate(*inputs.values(), target)
    np.testing.assert_array_equal(result.fills["bar"], np.arange(1, n_bars))
    np.testing.assert_array_equal(result.fills["side"][:4], [0, 1, 0, 1])


def test_the_callers_state_is_not_changed() -> None:
    first = call()
    account, assets = first.account.copy(), first.assets.copy()
    call(state=(first.account, first.assets))
    np.testing.assert_array_equal(first.account, account)
    np.testing.assert_array_equal(first.assets["position"], assets["position"])


def test_align_funding_places_each_settlement_in_its_bar() -> None:
    bars = np.arange(24, dtype=np.int64) * HOUR_MS
    settle = np.array([0, 8, 16], dtype=np.int64) * HOUR_MS
    rates = align_funding(bars, settle, np.array([0.1, 0.2, 0.3]))
    assert rates[[0, 8, 16]].tolist() == [0.1, 0.2, 0.3]
    assert np.count_nonzero(rates) == 3


def test_align_funding_adds_settlements_that_fall_in_one_daily_bar() -> None:
    bars = np.arange(2, dtype=np.int64) * 24 * HOUR_MS
    settle = np.arange(6, dtype=np.int64) * 8 * HOUR_MS
    rates = align_funding(bars, settle, np.full(6, 0.001))
    assert rates.tolist() == pytest.approx([0.003, 0.003])


def test_align_funding_refuses_times_off_the_settlement_grid() -> None:
    with pytest.raises(DataError, match="must fall on 00:00, 08:00 or 16:00 UTC; got 3600000 ms"):
        align_funding(np.arange(3) * HOUR_MS, np.array([HOUR_MS]), np.array([0.1]))


def test_align_funding_on_bybit_btc_keeps_every_settlement(shared_data) -> None:
    bars = pd.read_parquet(shared_data / "bybit_linear_BTCUSDT_1h.parquet")["timestamp"].to_numpy()
    funding = pd.read_parquet(shared_data / "bybit_linear_BTCUSDT_funding_8h.parquet")
    rates = align_funding(bars, funding["timestamp"].to_numpy(), funding["rate"].to_numpy())
    at = np.searchsorted(bars, funding["timestamp"].to_numpy())
    np.testing.assert_array_equal(rates[at], funding["rate"].to_numpy())
    assert rates.sum() == pytest.approx(funding["rate"].sum(), rel=1e-12)


def _read_only(array: np.ndarray) -> np.ndarray:
    array = array.copy()
    array.flags.writeable = False
    return array


def test_the_kernel_is_compiled_once_whatever_the_inputs_flags():
    # numba types a writable and a read-only array differently; without one kind for every
    # input, each combination the callers make would be a new compilation of the kernel.
    # engine.runner.warmup compiles that one kind ahead.
    from engine.sim.compiled import RUN_SIGNATURE
    from engine.sim.nb import checked_run_nb

    target = np.full((4, 1), 0.5)
    writable = call(target, risk=np.ones((4, 1)), funding=np.zeros(4))
    frozen = {name: _read_only(values) for name, values in candles().items()}
    read_only = call(_read_only(target), risk=_read_only(np.ones((4, 1))), **frozen)
    scalars = call(0.5, risk=1.0, funding=0.0)
    assert checked_run_nb.signatures == [RUN_SIGNATURE]
    for result in (read_only, scalars):
        np.testing.assert_array_equal(result.equity, writable.equity)
