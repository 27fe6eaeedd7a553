"""Replayed paper sessions: parity with engine run, outage, resume, secrets, replay files."""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import yaml
from fakes.exchange import fake_exchange
from paper_replays import (
    CANDLES,
    HOUR,
    PUBLIC,
    REPO_ROOT,
    REPRESENTATIONS,
    _config,
    _ms,
    _replay,
    store,
    store_before,
    strategy_file,
)

from engine.config import StrategyConfig
from engine.data.retry import RetryPolicy
from engine.data.store import CandleStore
from engine.data.times import iso_utc
from engine.errors import EngineError
from engine.models.registry import Registry
from engine.paper.session import PaperSession, SessionOptions
from engine.paper.sources import ReplayClock, replay_source
from engine.report.run import write_run
from engine.runner.backtest import run_backtest
from engine.ssl.card import BLOCK_BARS

__all__ = ["store"]  # the fixture


def _same_book(a: dict, b: dict) -> None:
    for name in ("balances", "fills"):
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)
    assert a["bars"]["ts"].is_unique and b["bars"]["ts"].is_unique
    np.testing.assert_array_equal(a["bars"]["ts"], b["bars"]["ts"])


def _same_as_the_backtest(config, tables, shared_data, fills_at_least: int):
    # The session's representations, balances and fills equal engine run's, bit for bit.
    backtest = run_backtest(config, REPO_ROOT / "models", CandleStore(shared_data), cache_dir=None)
    history = backtest.fitted.histories[0]
    rows = np.searchsorted(history.timestamp, tables["bars"]["ts"])
    z = np.stack([np.frombuffer(blob, history.z.dtype) for blob in tables["bars"]["z"]])
    np.testing.assert_array_equal(z, history.z[rows])
    balances, fills = tables["balances"], tables["fills"]
    assert len(balances) == len(backtest.sim.equity)
    np.testing.assert_array_equal(balances["equity"], backtest.sim.equity)
    np.testing.assert_array_equal(balances["funding"], backtest.sim.funding)
    assert backtest.sim.funding.any()
    ledger = backtest.sim.ledger
    for name in ledger.dtype.names:
        np.testing.assert_array_equal(balances[name], ledger[name], err_msg=name)
    sim = backtest.sim.fills
    assert len(fills) == len(sim) >= fills_at_least
    for column in ("side", "quantity", "price", "fee", "slippage", "liquidity", "kind"):
        np.testing.assert_array_equal(fills[column], sim[column])
    np.testing.assert_array_equal(fills["ts"], backtest.timestamps[sim["bar"]])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("encoder", "through", "start", "end"),
    [
        (None, "file", "2025-06-01", "2025-08-24"),
        ("ts2vec_bybit_1h", "file", "2025-06-19", "2025-06-30"),
        ("ts2vec_wide_1h", "file", "2025-06-19", "2025-06-30"),
        (None, "exchange", "2025-06-01", "2025-08-24"),
    ],
)
def test_replayed_session_equals_the_backtest(
    encoder, through, start, end, shared_data, tmp_path, monkeypatch
):
    # The session encodes each new bar from the bars up to it; the backtest, the whole series.
    # An encoder's session makes one pass per bar, so it replays 288 bars rather than 2,040,
    # across the encoding block boundary of 2025-06-27 16:00. Every replay crosses a block
    # boundary, and its components are fitted at its first bar and refitted twice or more.
    monkeypatch.setenv("ENGINE_CACHE_DIR", str(tmp_path / "cache"))
    days = (pd.Timestamp(end) - pd.Timestamp(start)).days + 1
    spec = _config(start, end, encoder).model_dump(mode="json", by_alias=True)
    spec["walk_forward"]["refit_every"] = min(spec["walk_forward"]["refit_every"], days * 8)
    config = StrategyConfig(**spec)
    store = store_before(shared_data, tmp_path / "store", start)
    tables, _ = _replay(
        config, store, shared_data, tmp_path / "j", _ms(end) + 24 * HOUR, through=through
    )
    assert len(tables["balances"]) == days * 24
    blocks = np.unique(tables["bars"]["ts"] // HOUR // BLOCK_BARS)
    fits = -(-len(tables["balances"]) // config.walk_forward.refit_every)
    assert len(blocks) >= 2 and fits >= 3
    _same_as_the_backtest(config, tables, shared_data, fills_at_least=8)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(REPRESENTATIONS))
def test_a_session_on_a_fitted_representation_equals_the_backtest(
    kind, store, shared_data, tmp_path, monkeypatch
):
    # PCA, supervised and fine-tuned representations are fitted before the session's first
    # bar and then applied to each new bar alone.
    monkeypatch.setenv("ENGINE_CACHE_DIR", str(tmp_path / "cache"))
    spec = _config("2025-06-01", "2025-06-10", kind).model_dump(mode="json", by_alias=True)
    spec["walk_forward"]["fit_bars"] = 500
    config = StrategyConfig(**spec)
    tables, _ = _replay(config, store, shared_data, tmp_path / "j", _ms("2025-06-11"))
    assert len(tables["balances"]) == 10 * 24
    _same_as_the_backtest(config, tables, shared_data, fills_at_least=1)


SESSION = """
import sys
from engine.cli import main
sys.argv = ["engine", *sys.argv[1:]]
try:
    main()
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
print("torch" in sys.modules, "ccxt" in sys.modules)
"""


def test_a_replay_on_features_loads_neither_torch_nor_ccxt(
    store, shared_data, tmp_path, run_python
):
    # torch is for encoders, ccxt for the exchange: a replay of a features strategy needs neither.
    strategy = strategy_file(_config("2025-06-01", "2025-06-30"), store, tmp_path)
    loaded = run_python(
        SESSION, "paper", "run", strategy, "--session", "s", "--replay", shared_data / CANDLES,
        "--since", "2025-06-01", "--until", "2025-06-02", "--journal-dir", tmp_path / "j",
    )  # fmt: skip
    assert loaded == "False False"


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
    # Five failed attempts, of which the 1st, 2nd and 4th are logged.
    attempts = events["message"].str.extract(r"\(attempt (\d+)\)")[0].dropna().astype(int)
    assert attempts.tolist() == [1, 2, 4]
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


def test_a_replay_warms_up_before_its_first_bar_ends_with_its_file_and_shows_each_bar(
    shared_data, tmp_path, run_cli
):
    # The store is the whole shared series: the session must use only the bars before the
    # replay's first one, and stop by itself after the file's last bar.
    spec = _config("2025-06-01", "2025-06-30").model_dump(mode="json", by_alias=True)
    spec["store"]["path"] = str(shared_data)
    strategy = tmp_path / "strategies" / "paper.yaml"
    strategy.parent.mkdir()
    strategy.write_text(yaml.safe_dump(spec))
    candles = pd.read_parquet(shared_data / CANDLES)
    day = candles[
        (candles.timestamp >= _ms("2025-06-01")) & (candles.timestamp < _ms("2025-06-02"))
    ]
    cut = tmp_path / "day.parquet"
    day.to_parquet(cut)
    journals = tmp_path / "journals"
    result = run_cli(
        "paper", "run", strategy, "--session", "cut", "--replay", cut, "--journal-dir", journals
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    bar_lines = [line for line in lines if " decision " in line]
    assert len(bar_lines) == 24
    assert bar_lines[0].startswith("2025-06-01 00:00") and bar_lines[-1].startswith(
        "2025-06-01 23:00"
    )
    for line in bar_lines:
        assert all(word in line for word in ("close", "position", "equity", "latency"))
    assert "cut: processed 24 bars" in result.stdout
    assert "return" in result.stdout and "trades (fills)" in result.stdout
    with sqlite3.connect(journals / "cut.sqlite") as db:
        meta = dict(db.execute("SELECT key, value FROM meta"))
    assert int(meta["warmup_until"]) == _ms("2025-06-01") - HOUR
    status = run_cli("paper", "status", "cut", "--journal-dir", journals)
    assert status.exit_code == 0, status.stderr
    assert "2025-06-01 23:00" in status.stdout and "cut" in status.stdout
    assert "close" in (journals / "cut.log").read_text()
    # The whole file from --since, up to --until: the same session as the cut file.
    since = run_cli(
        "paper", "run", strategy, "--session", "since", "--replay", shared_data / CANDLES,
        "--since", "2025-06-01", "--until", "2025-06-02", "--journal-dir", journals,
    )  # fmt: skip
    assert since.exit_code == 0, since.stderr
    with (
        sqlite3.connect(journals / "cut.sqlite") as a,
        sqlite3.connect(journals / "since.sqlite") as b,
    ):
        query = "SELECT ts, equity, cash, funding FROM balances ORDER BY ts"
        assert a.execute(query).fetchall() == b.execute(query).fetchall()


def test_a_replay_with_no_store_bar_before_it_is_refused(store, shared_data, tmp_path, run_cli):
    strategy = strategy_file(_config("2025-06-01", "2025-06-30"), store, tmp_path)
    result = run_cli(
        "paper", "run", strategy, "--replay", shared_data / CANDLES, "--journal-dir", tmp_path / "j"
    )
    assert result.exit_code == 2
    assert "has no bybit_linear_BTCUSDT_1h.parquet bars before 2023-11-29" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_report_writes_the_backtests_run_folder_from_the_journal(
    store, shared_data, tmp_path, run_cli
):
    config = _config("2025-06-01", "2025-06-14")
    _replay(config, store, shared_data, tmp_path / "j", _ms("2025-06-15"), session="r")
    result = run_cli(
        "paper", "report", "r", "--journal-dir", tmp_path / "j", "--reports-dir", tmp_path / "p"
    )
    assert result.exit_code == 0, result.stderr
    paper = next((tmp_path / "p").iterdir())
    assert paper.name.startswith("paper-r-")
    timings = json.loads((paper / "timings.json").read_text())
    assert timings["latency_max_ms"] >= timings["latency_p99_ms"] >= timings["latency_p50_ms"] > 0
    metrics = json.loads((paper / "metrics.json").read_text())
    assert "total return" in result.stdout and "max drawdown" in result.stdout
    assert f"{metrics['total_return']:+.2%}" in result.stdout
    assert f"{metrics['max_drawdown']:.2%}" in result.stdout
    backtest = write_run(
        run_backtest(config, store=CandleStore(shared_data), cache_dir=None), tmp_path / "b"
    )
    names = {p.name for p in paper.iterdir()}
    assert names == {p.name for p in backtest.iterdir()} >= {"tearsheet.html", "trades.csv"}
    pd.testing.assert_frame_equal(
        pd.read_csv(paper / "trades.csv"), pd.read_csv(backtest / "trades.csv"), check_exact=True
    )
    ours, theirs = pd.read_csv(paper / "equity.csv"), pd.read_csv(backtest / "equity.csv")
    assert list(ours.columns) == list(theirs.columns)
    exact = ["time", "equity", "cash", "funding", "position_BTCUSDT", "mode_BTCUSDT"]
    pd.testing.assert_frame_equal(ours[exact], theirs[exact], check_exact=True)
    pd.testing.assert_frame_equal(ours, theirs, rtol=1e-12)


def test_a_bar_the_exchange_leaves_out_is_waited_for_never_skipped(store, shared_data, tmp_path):
    config = _config("2025-06-01", "2025-06-30")
    until = _ms("2025-06-04")
    clean, _ = _replay(config, store, shared_data, tmp_path / "a", until)
    hole = _ms("2025-06-02") + 5 * HOUR

    def gap(paper, fake):
        paper.options = replace(paper.options, until_ms=hole - 2 * HOUR)
        paper.run()
        # The exchange leaves the bar out of every answer to one poll (both attempts).
        fake.inject("gap", times=2, start_ms=hole, end_ms=hole)
        paper.options = replace(paper.options, until_ms=until)

    gapped, _ = _replay(config, store, shared_data, tmp_path / "b", until, outage=gap)
    _same_book(clean, gapped)
    events = gapped["events"]["message"]
    assert events.str.contains(f"no bar from {iso_utc(hole)}").any()


def test_bars_after_the_last_published_funding_pay_none(shared_data, tmp_path):
    late = store_before(shared_data, tmp_path / "late", "2026-03-01")
    config = _config("2026-03-01", "2026-03-02")
    tables, _ = _replay(config, late, shared_data, tmp_path / "j", _ms("2026-03-02"))
    assert len(tables["bars"]) == 24
    assert (tables["bars"]["funding"] == 0).all() and (tables["balances"]["funding"] == 0).all()


@pytest.mark.slow
def test_from_run_refits_on_the_runs_schedule_and_matches_its_outputs(
    store, shared_data, tmp_path, run_cli
):
    # The run starts 12 days before the session's first bar (2025-06-01), so the
    # session joins the run's third refit block and refits again where the run does.
    config = _config("2025-05-20", "2025-06-12")
    run_folder = write_run(
        run_backtest(config, store=CandleStore(shared_data), cache_dir=None), tmp_path / "runs"
    )
    strategy = strategy_file(config, store, tmp_path)
    resolved = yaml.safe_load((run_folder / "config.yaml").read_text())
    resolved["store"]["path"] = str(store.root)
    (run_folder / "config.yaml").write_text(yaml.safe_dump(resolved))
    result = run_cli(
        "paper", "run", strategy, "--session", "f", "--from-run", run_folder,
        "--replay", shared_data / CANDLES, "--since", "2025-06-01", "--until", "2025-06-13",
        "--journal-dir", tmp_path / "j",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    with sqlite3.connect(tmp_path / "j" / "f.sqlite") as db:
        refits = [ts for (ts,) in db.execute("SELECT ts FROM decisions WHERE refit = 1")]
        scores = db.execute("SELECT ts, value FROM outputs WHERE name = 'score' ORDER BY ts")
        scores = pd.DataFrame(scores.fetchall(), columns=["ts", "score"])
    assert refits == [_ms("2025-05-20") + 480 * HOUR]
    equity = pd.read_csv(run_folder / "equity.csv")
    ours = equity[equity["time"] >= "2025-06-01"]["score_BTCUSDT"].to_numpy()
    np.testing.assert_allclose(scores["score"], ours, rtol=0, atol=1e-12)


def test_a_bar_still_open_on_the_exchanges_clock_is_never_used(store, shared_data, tmp_path):
    config = _config("2025-06-01", "2025-06-30")
    tables, _ = _replay(config, store, shared_data, tmp_path / "j", _ms("2025-06-02"))
    bars = tables["bars"]
    assert (bars["received_ms"] >= bars["ts"] + HOUR).all()
    options = SessionOptions("lag", journal_dir=tmp_path / "j", retry=RetryPolicy(0, 0.0, 0.0))
    with fake_exchange(config, shared_data / CANDLES, store, options.retry) as (
        fake,
        source,
        clock,
    ):
        paper = PaperSession(config, options, source, clock, store)
        first = paper.last_ts + HOUR
        clock.jump(first + HOUR + 5_000)
        fake.now_ms = first + HOUR - 1  # the exchange's clock: the bar has not closed
        with pytest.raises(EngineError):
            paper._fetch(first)
        fake.now_ms = first + HOUR
        (frame,), _, _ = paper._fetch(first)
        paper.close()
    assert frame["timestamp"].tolist() == [first]


def test_a_replay_without_the_funding_it_charges_is_refused(shared_data, tmp_path) -> None:
    # Funding is on (as in ssl_cost) but the store has no funding rates to serve: a clear
    # error up front, not a session waiting forever on the exchange's refusals.
    config = _config("2025-05-01", "2025-05-10")
    empty = CandleStore(tmp_path / "store")
    with pytest.raises(EngineError, match="no funding rates for BTCUSDT to replay"):
        replay_source(config, shared_data / CANDLES, empty, ReplayClock(0))


def test_a_replay_releases_a_bar_only_once_the_clock_passes_its_close(shared_data, store):
    config = _config("2025-06-01", "2025-06-30")
    clock = ReplayClock(0)
    source = replay_source(config, shared_data / CANDLES, store, clock)
    first = _ms("2025-06-01")
    assert source.closed_bars(first, first + HOUR - 1)[0].empty
    (bars,) = source.closed_bars(first, first + 3 * HOUR + 1)
    assert bars["timestamp"].tolist() == [first, first + HOUR, first + 2 * HOUR]
    clock.jump(first + 5 * HOUR)
    assert source.time_ms() == first + 5 * HOUR
    rates = source.funding(0, first, first + 24 * HOUR, first + 8 * HOUR)
    assert rates["timestamp"].tolist() == [first, first + 8 * HOUR]


def test_a_replay_of_a_missing_file_is_refused(shared_data, store, tmp_path):
    with pytest.raises(EngineError, match="replay file .* does not exist"):
        replay_source(
            _config("2025-06-01", "2025-06-30"), tmp_path / "no.parquet", store, ReplayClock(0)
        )


def test_a_replay_with_a_bar_stream_is_refused(shared_data, tmp_path, run_cli):
    strategy = REPO_ROOT / "strategies" / "ssl_cost.yaml"
    replay = ("--replay", shared_data / CANDLES, "--journal-dir", tmp_path / "j")
    result = run_cli("paper", "run", strategy, *replay, "--feed", "ws")
    assert result.exit_code == 2
    assert "--feed ws watches a live exchange" in result.stderr


@pytest.mark.slow
def test_a_session_keeps_the_encoder_version_it_started_with(store, shared_data, tmp_path):
    models = tmp_path / "models"
    registry = Registry(models)
    shipped = Registry(REPO_ROOT / "models").resolve("cost_bybit_1h")
    shutil.copytree(shipped.path, models / "cost_bybit_1h" / shipped.version)
    config = _config("2025-06-01", "2025-06-30", "cost_bybit_1h")
    _replay(config, store, shared_data, tmp_path / "j", _ms("2025-06-02"), models_dir=models)
    model = registry.load("cost_bybit_1h")
    card = {key: value for key, value in model.card.items() if key != "lineage"}
    newer = registry.publish("cost_bybit_1h", model.encoder, card, parent=shipped.ref)
    assert registry.resolve("cost_bybit_1h") == newer
    tables, _ = _replay(
        config, store, shared_data, tmp_path / "j", _ms("2025-06-03"), models_dir=models
    )
    assert len(tables["bars"]) == 48
    with sqlite3.connect(tmp_path / "j" / "s.sqlite") as db:
        [(pinned,)] = db.execute("SELECT value FROM meta WHERE key = 'model'").fetchall()
    assert pinned == shipped.ref
