"""Multi-asset paper sessions: ssl_portfolio's cluster portfolio replayed against engine run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from paper_replays import HOUR, PUBLIC, REPO_ROOT, _ms, _replay, store_before

from engine.config import StrategyConfig
from engine.data.store import CandleStore
from engine.errors import DataError
from engine.paper.sources import load_replay
from engine.runner.backtest import run_backtest

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")


def _portfolio(start: str, end: str) -> StrategyConfig:
    # ssl_portfolio (four symbols, its components and cluster portfolio) on the features
    # representation and a shorter walk-forward, so that a session's bars are cheap.
    spec = yaml.safe_load((REPO_ROOT / "strategies" / "ssl_portfolio.yaml").read_text())
    spec["encoder"] = None
    spec["representation"] = {"kind": "features", "extras": ["volatility_24", "rsi_14"]}
    spec["walk_forward"] = {"fit_bars": 1000, "refit_every": 240, "embargo_bars": 5}
    spec["out_of_sample"] = {"start": start, "end": end}
    return StrategyConfig(**spec)


@pytest.fixture
def portfolio_store(shared_data, tmp_path) -> CandleStore:
    return store_before(shared_data, tmp_path / "store", "2025-06-01", SYMBOLS)


@pytest.mark.slow
def test_replayed_portfolio_session_equals_the_backtest_over_1008_bars(
    portfolio_store, shared_data, tmp_path, monkeypatch
):
    monkeypatch.setenv("ENGINE_CACHE_DIR", str(tmp_path / "cache"))
    config = _portfolio("2025-06-01", "2025-07-12")
    tables, _ = _replay(
        config,
        portfolio_store,
        shared_data,
        tmp_path / "j",
        _ms("2025-07-13"),
        through="file",
        candles=shared_data,
    )
    backtest = run_backtest(config, REPO_ROOT / "models", CandleStore(shared_data), cache_dir=None)
    stamps = backtest.timestamps
    assert len(stamps) == 42 * 24
    bars, decisions = tables["bars"], tables["decisions"]
    for asset, history in enumerate(backtest.fitted.histories):
        mine = bars[bars["asset"] == asset]
        np.testing.assert_array_equal(mine["ts"], stamps)
        rows = np.searchsorted(history.timestamp, stamps)
        z = np.stack([np.frombuffer(blob, history.z.dtype) for blob in mine["z"]])
        np.testing.assert_array_equal(z, history.z[rows])
        weight = decisions[decisions["asset"] == asset]["weight"]
        np.testing.assert_array_equal(weight, backtest.fitted.weights[:, asset])
    # The cluster portfolio refitted at every block, and its weights moved.
    refits = decisions[(decisions["refit"] == 1) & (decisions["asset"] == 0)]["ts"]
    assert refits.tolist() == [_ms("2025-06-01") + k * 240 * HOUR for k in range(5)]
    assert len(np.unique(backtest.fitted.weights, axis=0)) > 1
    balances, fills, sim = tables["balances"], tables["fills"], backtest.sim
    np.testing.assert_array_equal(balances["ts"], stamps)
    np.testing.assert_array_equal(balances["equity"], sim.equity)
    np.testing.assert_array_equal(balances["funding"], sim.funding)
    assert sim.funding.any()
    ledger = sim.ledger
    for column in ("maker_fee", "taker_fee", "slippage"):
        np.testing.assert_array_equal(balances[column], ledger[column])
    assert len(fills) == len(sim.fills) > 20
    assert set(fills["asset"]) == {0, 1, 2, 3}
    for column in ("asset", "side", "quantity", "price", "fee", "slippage", "liquidity", "kind"):
        np.testing.assert_array_equal(fills[column], sim.fills[column])
    np.testing.assert_array_equal(fills["ts"], stamps[sim.fills["bar"]])
    positions = tables["positions"]["position"].to_numpy().reshape(len(stamps), len(SYMBOLS))
    np.testing.assert_array_equal(positions, sim.position)


def test_a_portfolio_session_on_the_exchange_equals_its_replay_of_the_files(
    portfolio_store, shared_data, tmp_path
):
    # The real ccxt client asks the fake Bybit server for four symbols' bars and funding.
    config = _portfolio("2025-06-01", "2025-06-30")
    until = _ms("2025-06-03")
    live, paths = _replay(
        config, portfolio_store, shared_data, tmp_path / "a", until, candles=shared_data
    )
    replayed, _ = _replay(
        config,
        portfolio_store,
        shared_data,
        tmp_path / "b",
        until,
        through="file",
        candles=shared_data,
    )
    assert len(live["balances"]) == 48 and len(live["bars"]) == 4 * 48
    for name in ("bars", "decisions", "balances", "fills", "positions"):
        ours, theirs = live[name], replayed[name]
        columns = [c for c in ours.columns if c not in ("received_ms", "latency_ms")]
        pd.testing.assert_frame_equal(ours[columns], theirs[columns], check_exact=True)
    assert "/v5/market/kline" in paths and set(paths) <= PUBLIC


def test_a_replay_of_several_symbols_needs_a_folder_with_each_symbols_file(
    shared_data, tmp_path, run_cli
):
    config = _portfolio("2025-06-01", "2025-06-30")
    folder = tmp_path / "replay"
    folder.mkdir()
    (folder / "bybit_linear_BTCUSDT_1h.parquet").write_bytes(
        (shared_data / "bybit_linear_BTCUSDT_1h.parquet").read_bytes()
    )
    with pytest.raises(DataError, match="has no bybit_linear_ETHUSDT_1h.parquet, bybit_linear_SOL"):
        load_replay(config, folder)
    strategy = REPO_ROOT / "strategies" / "ssl_portfolio.yaml"
    one_file = ("--replay", folder / "bybit_linear_BTCUSDT_1h.parquet")
    result = run_cli("paper", "run", strategy, *one_file, "--journal-dir", tmp_path / "j")
    assert result.exit_code == 2
    assert "a strategy of 4 symbols replays a folder" in result.stderr
