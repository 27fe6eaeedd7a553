"""The paper journal: one transaction per bar, unique bars, exact resume, config check."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from engine.errors import ConfigError, DataError
from engine.paper.journal import AssetRecord, BarRecord, Journal
from engine.runner.decisions import DecisionState
from engine.sim.enums import fill_dt, reject_dt
from engine.sim.run import new_state

META = {"config_sha256": "a" * 64, "symbols": '["BTCUSDT"]', "strategy": "s"}


def _asset(i: int) -> AssetRecord:
    return AssetRecord(
        bar={"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 10.0 + i},
        z=np.arange(4, dtype=np.float32) + i,
        funding_rate=0.0001,
        outputs={"score": 0.3, "size": np.float64(0.7)},
        decision={
            "target": 0.7,
            "risk_scale": 1.0,
            "mode": 1,
            "limit_offset": 0.001,
            "stop_loss": np.nan,
            "take_profit": np.nan,
        },
        weight=0.5,
        state=DecisionState(direction=1 - i, entry_size=0.7, exposure=0.7, waited=2),
    )


def _record(ts: int, equity: float = 100.0, assets: int = 1) -> BarRecord:
    account, book = new_state(assets, equity)
    book["position"] = 0.25
    book["pending"] = 2
    fills = np.zeros(2, fill_dt)
    fills["price"] = [101.5, 99.25]
    return BarRecord(
        ts=ts,
        received_ms=ts,
        latency_ms=1.0,
        refit=False,
        per_asset=[_asset(i) for i in range(assets)],
        fills=fills,
        rejects=np.zeros(0, reject_dt),
        balance={
            "equity": equity,
            "cash": equity,
            "funding": 0.0,
            "maker_fee": 0.0,
            "taker_fee": 0.1,
            "slippage": 0.0,
            "liquidation_fee": 0.0,
        },
        account=account,
        assets=book,
    )


@pytest.fixture
def journal(tmp_path):
    journal = Journal(tmp_path / "s.sqlite", "s")
    journal.start(META, force=False)
    yield journal
    journal.close()


def test_resume_restores_the_book_and_the_decision_state_exactly(journal):
    record = _record(3_600_000)
    journal.record(record)
    resumed = journal.resume()
    assert resumed.last_ts == 3_600_000
    assert resumed.account.tobytes() == record.account.tobytes()
    assert resumed.assets.tobytes() == record.assets.tobytes()
    assert resumed.states == [a.state for a in record.per_asset]
    assert journal.table("fills")["price"].tolist() == [101.5, 99.25]


def test_a_book_saved_with_other_record_layouts_is_one_clear_error(journal, tmp_path):
    # a journal of an engine whose account record held more fields
    journal.record(_record(3_600_000))
    with sqlite3.connect(tmp_path / "s.sqlite") as db:
        db.execute("UPDATE book SET account = ?", (bytes(64),))
    with pytest.raises(DataError, match="start a new session"):
        journal.resume()


def test_a_bar_recorded_twice_is_refused_and_leaves_nothing_behind(journal):
    journal.record(_record(3_600_000, equity=100.0))
    with pytest.raises(sqlite3.IntegrityError):
        journal.record(_record(3_600_000, equity=200.0))
    assert journal.table("balances")["equity"].tolist() == [100.0]
    assert len(journal.table("fills")) == 2 and len(journal.table("outputs")) == 2


def test_the_journal_is_in_wal_mode(journal, tmp_path):
    with sqlite3.connect(tmp_path / "s.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_new_config_hash_is_refused_unless_forced(journal):
    changed = {**META, "config_sha256": "b" * 64}
    with pytest.raises(ConfigError, match="--force"):
        journal.start(changed, force=False)
    journal.start(changed, force=True)
    assert journal.meta()["config_sha256"] == "b" * 64


def test_an_unknown_table_is_an_error(journal):
    with pytest.raises(ValueError, match="unknown journal table"):
        journal.table("sqlite_master")


def test_full_disk_while_journaling_a_bar_is_one_clear_error_and_keeps_the_journal(tmp_path):
    journal = Journal(tmp_path / "s.sqlite", "s")
    journal.start(META, force=False)
    # From here on the database cannot grow: the disk is full.
    pages = journal._db.execute("PRAGMA page_count").fetchone()[0]
    journal._db.execute(f"PRAGMA max_page_count = {pages}")
    written = None
    with pytest.raises(DataError, match=r"not journaled \(database or disk is full\)"):
        for ts in range(1000, 1_000_000, 1000):
            journal.record(_record(ts))
            written = ts
    assert not journal._db.in_transaction
    assert journal.resume().last_ts == written
    journal.close()


def test_a_bar_of_several_assets_is_one_transaction_and_resumes_each_assets_state(tmp_path):
    journal = Journal(tmp_path / "m.sqlite", "m")
    journal.start({**META, "symbols": '["BTCUSDT", "ETHUSDT", "SOLUSDT"]'}, force=False)
    journal.record(_record(3_600_000, assets=3))
    with pytest.raises(sqlite3.IntegrityError):
        journal.record(_record(3_600_000, equity=200.0, assets=3))
    bars = journal.table("bars")
    assert bars["asset"].tolist() == [0, 1, 2] and bars["volume"].tolist() == [10.0, 11.0, 12.0]
    assert journal.table("decisions")["weight"].tolist() == [0.5] * 3
    assert len(journal.table("outputs")) == 6 and len(journal.table("positions")) == 3
    assert [s.direction for s in journal.resume().states] == [1, 0, -1]
    journal.close()
