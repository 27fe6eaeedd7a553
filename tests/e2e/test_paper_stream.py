"""Paper sessions with a bar stream (--feed ws) replayed through the fake Bybit stream."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from fakes.exchange import fake_client, fake_exchange
from paper_replays import CANDLES, HOUR, PUBLIC, _config, _ms, _replay, store

from engine.data.retry import RetryPolicy
from engine.paper.journal import TABLES
from engine.paper.session import POLL_MARGIN_MS, PaperSession, SessionOptions

__all__ = ["store"]  # the fixture

TIMING = ["received_ms", "latency_ms"]
# Reconnections back off, but never for long in a test.
STREAM_RETRY = RetryPolicy(retries=1, base_delay_s=0.05, max_delay_s=0.2)


def _same_journal(a: dict, b: dict) -> None:
    # Everything but the timing columns and the events, exactly.
    for name in TABLES:
        if name != "events":
            mine, theirs = a[name], b[name]
            if name == "bars":
                mine, theirs = mine.drop(columns=TIMING), theirs.drop(columns=TIMING)
            pd.testing.assert_frame_equal(mine, theirs, check_exact=True)


def _stream_ops(fake) -> set[str]:
    return {request.query["op"] for request in fake.requests if request.method == "WS"}


@pytest.mark.slow
def test_a_streamed_replay_of_288_bars_journals_what_the_polled_replay_does(
    store, shared_data, tmp_path
):
    config = _config("2025-06-01", "2025-06-30")
    until = _ms("2025-06-13")
    polled, _ = _replay(config, store, shared_data, tmp_path / "rest", until)
    streamed, paths = _replay(
        config,
        store,
        shared_data,
        tmp_path / "ws",
        until,
        feed="ws",
        retry=STREAM_RETRY,
        stream_wait_s=10.0,
    )
    assert len(streamed["bars"]) == 12 * 24
    _same_journal(polled, streamed)
    bars = streamed["bars"]
    # Every bar was fetched the moment the stream showed it closed, none at the poll time.
    assert (bars["received_ms"] == bars["ts"] + HOUR).all()
    assert (polled["bars"]["received_ms"] == polled["bars"]["ts"] + HOUR + POLL_MARGIN_MS).all()
    assert (
        streamed["events"]["message"].str.contains("bar stream of BTC/USDT:USDT 1h connected").any()
    )
    assert set(paths) <= PUBLIC and "/v5/public/linear" in paths


@pytest.mark.slow
def test_a_stream_drop_is_polled_through_and_caught_up_without_a_missing_or_duplicate_bar(
    store, shared_data, tmp_path
):
    config = _config("2025-06-01", "2025-06-30")
    until = _ms("2025-06-03")
    drop, back = _ms("2025-06-02"), _ms("2025-06-02") + 12 * HOUR
    clean, _ = _replay(config, store, shared_data, tmp_path / "clean", until)

    def outage(paper, fake):
        # The stream drops for 12 hours; for part of them the REST endpoint fails too (two
        # polls), so the bars missed meanwhile come in one catch-up once it answers again.
        fake.drop_stream(drop, back)
        paper.options = replace(paper.options, until_ms=drop + 3 * HOUR)
        paper.run()
        fake.inject("server_error", times=4)
        paper.options = replace(paper.options, until_ms=back + 2 * HOUR)
        paper.run()
        deadline = time.monotonic() + 60
        while (paper.stream.newest_ms or 0) < back and time.monotonic() < deadline:
            time.sleep(0.05)
        paper.options = replace(paper.options, until_ms=until)
        assert _stream_ops(fake) == {"subscribe"}

    dropped, paths = _replay(
        config,
        store,
        shared_data,
        tmp_path / "drop",
        until,
        outage=outage,
        feed="ws",
        retry=STREAM_RETRY,
        stream_wait_s=0.5,
    )
    _same_journal(clean, dropped)
    bars = dropped["bars"]
    assert bars["ts"].is_unique and (np.diff(bars["ts"]) == HOUR).all()
    lag = bars["received_ms"] - bars["ts"] - HOUR
    streamed = bars["ts"] + HOUR < drop
    assert (lag[streamed] == 0).all()
    # In the drop every bar was polled, late or caught up, never before its close.
    within = (bars["ts"] + HOUR >= drop) & (bars["ts"] < back)
    assert (lag[within] >= POLL_MARGIN_MS).all() and (lag[within] > POLL_MARGIN_MS).any()
    # Once the stream was back, the last bars were fetched as it showed them closed again.
    assert (lag.iloc[-6:] == 0).all()
    messages = dropped["events"]["message"]
    assert messages.str.contains("bar stream of BTC/USDT:USDT 1h lost").any()
    assert messages.str.contains("bar stream of BTC/USDT:USDT 1h back after").any()
    assert messages.str.contains("catching up").any()
    assert set(paths) <= PUBLIC


class _FrozenClock:
    # The local clock stands still; the fake exchange's clock is set by the test.
    def __init__(self, now_ms: int) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now

    def wait_until(self, ms: int, stop: threading.Event) -> None:
        stop.wait(0.01)


def test_a_bar_the_stream_shows_open_is_never_processed(store, shared_data, tmp_path):
    config = _config("2025-06-01", "2025-06-30")
    candles = pd.read_parquet(shared_data / CANDLES).set_index("timestamp")
    bar = _ms("2025-06-01")
    options = SessionOptions(
        "open",
        journal_dir=tmp_path / "j",
        until_ms=bar + HOUR,
        retry=STREAM_RETRY,
        stream_wait_s=0.05,
        outage_pause_ms=10,
    )
    with fake_exchange(config, shared_data / CANDLES, store, options.retry) as (fake, source, _):
        # Locally the bar closed a second ago; on the exchange it is 20 minutes old.
        fake.now_ms = bar + HOUR // 3
        clock = _FrozenClock(bar + HOUR + 1_000)
        stream = fake_client(fake, "bybit", streaming=True)
        started, result = threading.Event(), {}

        def session() -> None:
            # The journal's connection belongs to the thread that runs the session.
            paper = result["paper"] = PaperSession(config, options, source, clock, store, stream)
            started.set()
            paper.run()
            result["bars"] = paper.journal.table("bars")
            paper.close()

        runner = threading.Thread(target=session)
        runner.start()
        assert started.wait(60)
        deadline = time.monotonic() + 30
        while result["paper"].stream.newest_ms != bar and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)
        # The stream shows the bar, open: nothing may be processed, nor even asked for.
        assert result["paper"].stream.newest_ms == bar and runner.is_alive()
        assert _journaled(tmp_path / "j" / "open.sqlite") == 0
        assert "/v5/market/kline" not in fake.paths
        fake.now_ms = bar + HOUR  # the bar closes on the exchange; the next one streams
        runner.join(timeout=30)
        assert not runner.is_alive()
    journaled = result["bars"]
    assert journaled["ts"].tolist() == [bar]
    final = candles.loc[bar]
    for column in ("open", "high", "low", "close", "volume"):
        assert journaled[column].iloc[0] == final[column]
    # What the stream had shown: the open moved a third of the way to the close.
    assert journaled["close"].iloc[0] != final["open"] + (final["close"] - final["open"]) / 3
    assert journaled["received_ms"].iloc[0] == bar + HOUR + 1_000


def _journaled(journal) -> int:
    # Bars committed so far, read beside the session's own connection.
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        return db.execute("SELECT COUNT(*) FROM bars").fetchone()[0]
