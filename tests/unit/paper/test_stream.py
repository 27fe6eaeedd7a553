"""The bar stream: a bar counts as closed once a later bar streams; drops are reported."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pandas as pd
import pytest
from fakes.bybit import FakeBybit
from fakes.exchange import fake_client

from engine.data.feed import make_exchange
from engine.data.retry import RetryPolicy
from engine.data.store import SeriesKey
from engine.errors import DataError
from engine.paper.stream import BarStream

HOUR = 3_600_000
KEY = SeriesKey("bybit", "linear", "BTCUSDT", "1h")
STAMPS = [1_748_736_000_000 + k * HOUR for k in range(10)]  # 2025-06-01, hourly


def _events(stream: BarStream, seen: list, text: str, timeout_s: float = 30.0) -> bool:
    # Collect the stream's events into `seen` until one contains `text`.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen += stream.events()
        if any(text in message for _, message in seen):
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def fake():
    rng = np.random.default_rng(3)
    close = 100 + rng.normal(0, 1, len(STAMPS)).cumsum()
    candles = pd.DataFrame(
        {"timestamp": STAMPS, "open": close - 0.5, "high": close + 1, "low": close - 1.5}
        | {"close": close, "volume": rng.gamma(2, 5, len(STAMPS))}
    )
    with FakeBybit(now_ms=STAMPS[5] + HOUR // 3) as server:
        server.add_candles("linear", "BTCUSDT", "1h", candles)
        yield server


def test_a_bar_counts_as_closed_only_once_a_later_bar_streams(fake):
    stream = BarStream(fake_client(fake, "bybit", True), KEY, RetryPolicy(1, 0.05, 0.2))
    stop, seen = threading.Event(), []
    try:
        # Bar 5 is open and streaming: bar 4 has closed, bar 5 has not.
        assert stream.wait_past(STAMPS[4], 30, stop)
        assert not stream.wait_past(STAMPS[5], 0.3, stop) and stream.newest_ms == STAMPS[5]
        fake.now_ms = STAMPS[6]
        assert stream.wait_past(STAMPS[5], 30, stop) and stream.newest_ms == STAMPS[6]
        stop.set()
        started = time.monotonic()
        assert not stream.wait_past(STAMPS[6], 30, stop) and time.monotonic() - started < 0.5
        assert _events(stream, seen, "connected")
        assert seen == [(logging.INFO, "bar stream of BTC/USDT:USDT 1h connected")]
    finally:
        stream.close()


def test_a_lost_stream_is_reported_and_reconnected_with_backoff(fake):
    stream = BarStream(fake_client(fake, "bybit", True), KEY, RetryPolicy(1, 0.05, 0.2))
    stop, seen = threading.Event(), []
    try:
        assert stream.wait_past(STAMPS[4], 30, stop)
        fake.drop_stream(STAMPS[6], STAMPS[8])
        fake.now_ms = STAMPS[6]
        assert _events(stream, seen, "lost")
        assert not stream.wait_past(STAMPS[5], 0.3, stop)
        fake.now_ms = STAMPS[8]
        assert stream.wait_past(STAMPS[7], 60, stop)
        assert _events(stream, seen, "back after")
        levels = [level for level, _ in seen]
        assert levels == [logging.INFO, logging.WARNING, logging.INFO]
        assert "reconnecting, polling REST meanwhile" in seen[1][1]
    finally:
        stream.close()
    assert {r.query["op"] for r in fake.requests if r.method == "WS"} == {"subscribe"}


def test_a_client_that_cannot_stream_is_refused():
    with pytest.raises(DataError, match="expected a ccxt.pro client"):
        BarStream(make_exchange("bybit"), KEY, RetryPolicy())
