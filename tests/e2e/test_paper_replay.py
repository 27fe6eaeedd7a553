"""Paper sessions replayed through the fake Bybit server: parity, outage, resume, secrets."""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from engine.backtest import run_backtest
from engine.config import StrategyConfig
from engine.data.feed import RetryPolicy
from engine.data.store import CandleStore, SeriesKey
from engine.paper.replay import replay_exchange
from engine.paper.session import PaperSession, SessionOptions

REPO_ROOT = Path(__file__).resolve().parents[2]
HOUR = 3_600_000
CANDLES = "bybit_linear_BTCUSDT_1h.parquet"
FUNDING = "bybit_linear_BTCUSDT_funding_8h.parquet"
PUBLIC = {
    "/v5/market/kline",
    "/v5/market/time",
    "/v5/market/instruments-info",
    "/v5/market/funding/history",
}


def _ms(day: str) -> int:
    return int(pd.Timestamp(day, tz="UTC").value // 1_000_000)


def _config(start: str, end: str) -> StrategyConfig:
    spec = yaml.safe_load((REPO_ROOT / "strategies" / "ssl_cost.yaml").read_text())
    spec["encoder"] = None
    spec["representation"] = {"kind": "features", "extras": ["volatility_24", "rsi_14"]}
    spec["walk_forward"] = {"fit_bars": 2000, "refit_every": 240, "embargo_bars": 5}
    spec["out_of_sample"] = {"start": start, "end": end}
    return StrategyConfig(**spec)


@pytest.fixture
def store(shared_data, tmp_path) -> CandleStore:
    # A store holding the real candles before 2025-06-01 and the real funding rates.
    candles = pd.read_parquet(shared_data / CANDLES)
    store = CandleStore(tmp_path / "store")
    store.write(
        SeriesKey("bybit", "linear", "BTCUSDT", "1h"),
        candles[candles.timestamp < _ms("2025-06-01")],
    )
    shutil.copy(shared_data / FUNDING, store.root / FUNDING)
    return store


def _replay(config, store, shared_data, journal_dir, until_ms, session="s", outage=None):
    options = SessionOptions(
        session,
        journal_dir=journal_dir,
        until_ms=until_ms,
        retry=RetryPolicy(retries=1, base_delay_s=0.0, max_delay_s=0.0),
        outage_pause_ms=HOUR,
    )
    with replay_exchange(config, shared_data / CANDLES, store) as (fake, exchange, clock):
        paper = PaperSession(config, options, exchange, clock, store)
        clock.jump(paper.last_ts + paper.interval)
        if outage is not None:
            outage(paper, fake)
        paper.run()
        tables = {
            name: paper.journal.table(name) for name in ("balances", "fills", "bars", "events")
        }
        paper.close()
        return tables, fake.paths


def _same_book(a: dict, b: dict) -> None:
    for name in ("balances", "fills"):
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)
    assert a["bars"]["ts"].is_unique and b["bars"]["ts"].is_unique
    np.testing.assert_array_equal(a["bars"]["ts"], b["bars"]["ts"])


@pytest.mark.slow
def test_replayed_session_equals_the_backtest_over_2040_bars(store, shared_data, tmp_path):
    config = _config("2025-06-01", "2025-08-24")
    tables, _ = _replay(config, store, shared_data, tmp_path / "j", _ms("2025-08-25"))
    backtest = run_backtest(config, store=CandleStore(shared_data), cache_dir=None)
    balances, fills = tables["balances"], tables["fills"]
    assert len(balances) == len(backtest.sim.equity) == 85 * 24
    np.testing.assert_array_equal(balances["equity"], backtest.sim.equity)
    np.testing.assert_array_equal(balances["funding"], backtest.sim.funding)
    assert backtest.sim.funding.any()
    sim = backtest.sim.fills
    assert len(fills) == len(sim) > 10
    for column in ("side", "quantity", "price", "fee", "slippage", "liquidity", "kind"):
        np.testing.assert_array_equal(fills[column], sim[column])
    np.testing.assert_array_equal(fills["ts"], backtest.timestamps[sim["bar"]])


def test_outage_is_caught_up_in_order_and_equals_the_run_without_it(store, shared_data, tmp_path):
    config = _config("2025-06-01", "2025-06-30")
    until = _ms("2025-06-08")
    clean, _ = _replay(config, store, shared_data, tmp_path / "a", until)

    def outage(paper, fake):
        paper.options = replace(paper.options, until_ms=_ms("2025-06-04"))
        paper.run()
        fake.inject("server_error", times=10)
        paper.options = replace(paper.options, until_ms=until)

    faulty, paths = _replay(config, store, shared_data, tmp_path / "b", until, outage=outage)
    _same_book(clean, faulty)
    events = faulty["events"]
    assert (events["level"] == "WARNING").sum() >= 4
    assert events["message"].str.contains("catching up").any()
    assert set(paths) <= PUBLIC


def test_resume_continues_without_a_duplicate_or_missing_bar(store, shared_data, tmp_path):
    config = _config("2025-06-01", "2025-06-30")
    until = _ms("2025-06-06")
    clean, _ = _replay(config, store, shared_data, tmp_path / "a", until)
    _replay(config, store, shared_data, tmp_path / "b", _ms("2025-06-03"))
    resumed, _ = _replay(config, store, shared_data, tmp_path / "b", until)
    _same_book(clean, resumed)
    with sqlite3.connect(tmp_path / "b" / "s.sqlite") as db, pytest.raises(sqlite3.IntegrityError):
        db.execute(
            "INSERT INTO balances (session, ts) VALUES ('s', ?)",
            (int(clean["bars"]["ts"].iloc[0]),),
        )


def test_a_changed_config_is_refused_unless_forced(store, shared_data, tmp_path):
    from engine.errors import ConfigError

    config = _config("2025-06-01", "2025-06-30")
    _replay(config, store, shared_data, tmp_path / "j", _ms("2025-06-02"))
    changed = config.model_copy(update={"initial_capital": 5_000.0})
    with pytest.raises(ConfigError, match="another configuration"):
        _replay(changed, store, shared_data, tmp_path / "j", _ms("2025-06-03"))


def test_no_private_endpoint_and_no_api_key_anywhere(store, shared_data, tmp_path, monkeypatch):
    secret, password = "k3y-THAT-must-not-leak", "s3cret-THAT-must-not-leak"
    for name in ("BYBIT_API_KEY", "BYBIT_APIKEY", "API_KEY"):
        monkeypatch.setenv(name, secret)
    monkeypatch.setenv("BYBIT_API_SECRET", password)
    monkeypatch.setenv("BYBIT_SECRET", password)
    config = _config("2025-06-01", "2025-06-30")
    _, paths = _replay(config, store, shared_data, tmp_path / "j", _ms("2025-06-03"))
    assert paths and set(paths) <= PUBLIC
    for path in (tmp_path / "j").iterdir():
        data = path.read_bytes()
        assert secret.encode() not in data and password.encode() not in data


def test_cli_runs_a_replay_and_shows_its_status(store, shared_data, tmp_path, run_cli):
    spec = _config("2025-06-01", "2025-06-30").model_dump(mode="json", by_alias=True)
    spec["store"]["path"] = str(store.root)
    strategy = tmp_path / "strategies" / "paper.yaml"
    strategy.parent.mkdir()
    strategy.write_text(yaml.safe_dump(spec))
    journals = tmp_path / "journals"
    result = run_cli(
        "paper",
        "run",
        strategy,
        "--session",
        "cli",
        "--replay",
        shared_data / CANDLES,
        "--until",
        "2025-06-02",
        "--journal-dir",
        journals,
    )
    assert result.exit_code == 0, result.stderr
    assert "processed 24 bars" in result.stdout
    status = run_cli("paper", "status", "cli", "--journal-dir", journals)
    assert status.exit_code == 0, status.stderr
    assert "2025-06-01 23:00" in status.stdout and "cli" in status.stdout
    assert "close" in (journals / "cli.log").read_text()
