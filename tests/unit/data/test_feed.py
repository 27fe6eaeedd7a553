from __future__ import annotations

import subprocess
import sys
import time
from urllib.parse import urlsplit

import pandas as pd
import pytest

from fakes.bybit import KLINE_PATH
from engine.data.feed import fetch_ohlcv, make_exchange, update_candles
from engine.errors import DataError, ExchangeError

from .helpers import HOUR, KEY, START, make_candles

SOURCE = make_candles(3001)
CLOSED = SOURCE.iloc[:3000].reset_index(drop=True)


def kline_requests(fake):
    return [r.query for r in fake.requests if r.path == KLINE_PATH]


def update(store, exchange, fake, retry, since=START, **options):
    return update_candles(store, exchange, KEY, since, now_ms=fake.now_ms, retry=retry, **options)


def test_update_stores_every_closed_bar_and_never_the_open_one(store, exchange, fake, fast_retry):
    seen = []
    result = update(
        store, exchange, fake, fast_retry, progress=lambda done, total: seen.append((done, total))
    )
    assert (result.fetched, result.rows) == (3000, 3000)
    pd.testing.assert_frame_equal(store.load(KEY), CLOSED, check_exact=True)
    assert [int(q["end"]) for q in kline_requests(fake)] == [
        START + k * HOUR for k in (999, 1999, 2999)
    ]
    assert seen == [(1000, 3000), (2000, 3000), (3000, 3000)]


def test_update_fetches_only_what_is_missing(store, exchange, fake, fast_retry):
    store.write(KEY, CLOSED.iloc[500:1500])
    result = update(store, exchange, fake, fast_retry)
    windows = [(int(q["start"]), int(q["end"])) for q in kline_requests(fake)]
    assert windows == [
        (START, START + 499 * HOUR),
        (START + 1500 * HOUR, START + 2499 * HOUR),
        (START + 2500 * HOUR, START + 2999 * HOUR),
    ]
    assert (result.fetched, result.rows) == (2000, 3000)
    pd.testing.assert_frame_equal(store.load(KEY), CLOSED, check_exact=True)
    fake.requests.clear()
    assert update(store, exchange, fake, fast_retry).fetched == 0
    assert kline_requests(fake) == []


def test_until_is_exclusive_and_the_clock_decides_what_is_closed(store, exchange, fake, fast_retry):
    fetched = fetch_ohlcv(exchange, KEY, START + 10 * HOUR, START + 20 * HOUR, now_ms=fake.now_ms)
    assert fetched["timestamp"].tolist() == [START + k * HOUR for k in range(10, 20)]
    early = fetch_ohlcv(exchange, KEY, START, now_ms=START + 5 * HOUR + 1, retry=fast_retry)
    assert early["timestamp"].iloc[-1] == START + 4 * HOUR


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("rate_limit", {"times": 2}),
        ("server_error", {"times": 3}),
        ("stall", {"times": 1, "stall_s": 1.0}),
        ("malformed", {"times": 2}),
        ("empty", {"times": 2, "start_ms": START + 1200 * HOUR, "end_ms": START + 1300 * HOUR}),
        ("gap", {"times": 1, "start_ms": START + 1200 * HOUR, "end_ms": START + 1210 * HOUR}),
    ],
)
def test_transient_fault_is_retried_to_an_exact_result(
    store, exchange, fake, fast_retry, kind, options
):
    fake.inject(kind, **options)
    result = update(store, exchange, fake, fast_retry)
    assert result.rows == 3000
    pd.testing.assert_frame_equal(store.load(KEY), CLOSED, check_exact=True)
    assert len(kline_requests(fake)) > 3


@pytest.mark.parametrize(
    ("kind", "error", "options"),
    [
        ("rate_limit", "RateLimitExceeded", {}),
        ("server_error", "ExchangeNotAvailable", {}),
        ("stall", "RequestTimeout", {"stall_s": 1.0}),
        ("malformed", "BadResponse: malformed JSON", {}),
        ("empty", "returned 0 of the 1000 rows", {}),
    ],
)
def test_lasting_fault_is_a_clear_error_and_nothing_is_written(
    store, exchange, fake, fast_retry, kind, error, options
):
    fake.inject(kind, start_ms=START + 2100 * HOUR, end_ms=START + 2200 * HOUR, **options)
    with pytest.raises(ExchangeError) as raised:
        update(store, exchange, fake, fast_retry)
    message = str(raised.value)
    assert (
        "1h candles of BTC/USDT:USDT from 2024-03-24T08:00:00Z to 2024-05-04T23:00:00Z" in message
    )
    assert "failed after 4 attempts" in message and error in message
    assert not store.path(KEY).exists() and list(store.root.glob("*")) == []


def test_lasting_fault_leaves_the_stored_file_unchanged(store, exchange, fake, fast_retry):
    store.write(KEY, CLOSED.iloc[:1000])
    before = store.path(KEY).read_bytes()
    fake.inject("server_error", start_ms=START + 2500 * HOUR, end_ms=START + 2600 * HOUR)
    with pytest.raises(ExchangeError):
        update(store, exchange, fake, fast_retry)
    assert store.path(KEY).read_bytes() == before
    assert [p.name for p in store.root.iterdir()] == [KEY.filename]


def test_lasting_gap_is_kept_only_within_max_gap_bars(store, exchange, fake, fast_retry):
    fake.inject("gap", start_ms=START + 1200 * HOUR, end_ms=START + 1204 * HOUR)
    with pytest.raises(DataError, match="5 missing bars from 2024-02-20T00:00:00Z"):
        update(store, exchange, fake, fast_retry)
    assert not store.exists(KEY)
    result = update(store, exchange, fake, fast_retry, max_gap_bars=5)
    assert result.rows == 2995
    report = store.check()[0]
    assert (report.missing, report.largest_gap.start_ms) == (5, START + 1200 * HOUR)


def test_retry_after_hint_is_honoured(store, exchange, fake, fast_retry):
    fake.inject("rate_limit", times=1, retry_after_s=0.6)
    began = time.monotonic()
    fetch_ohlcv(exchange, KEY, START, START + 10 * HOUR, now_ms=fake.now_ms, retry=fast_retry)
    assert time.monotonic() - began >= 0.6


def test_refused_request_is_not_retried(store, fake, fast_retry):
    exchange = make_exchange(api_urls=fake.url)
    other = KEY.__class__("bybit", "linear", "ETHUSDT", "1h")
    with pytest.raises(DataError, match="bybit has no market ETH/USDT:USDT"):
        update_candles(store, exchange, other, START, now_ms=fake.now_ms, retry=fast_retry)
    assert kline_requests(fake) == []


def test_make_exchange_points_every_or_named_api_url_elsewhere():
    everywhere = make_exchange("bybit", api_urls="http://127.0.0.1:9")
    assert set(everywhere.urls["api"].values()) == {"http://127.0.0.1:9"}
    assert everywhere.enableRateLimit and everywhere.options["fetchMarkets"]["types"] == [
        "spot",
        "linear",
    ]
    public_only = make_exchange("bybit", api_urls={"public": "http://127.0.0.1:9"}, timeout_ms=1234)
    assert public_only.urls["api"]["public"] == "http://127.0.0.1:9"
    assert (
        public_only.urls["api"]["private"] != "http://127.0.0.1:9" and public_only.timeout == 1234
    )
    with pytest.raises(DataError, match="'nosuchexchange' is not a ccxt exchange id"):
        make_exchange("nosuchexchange")


def test_a_streaming_client_points_every_websocket_url_at_the_stream_host_and_keeps_paths():
    client = make_exchange(
        "bybit", api_urls="http://127.0.0.1:9", streaming=True, stream_url="ws://127.0.0.1:8/"
    )
    assert client.has["watchOHLCV"] and client.urls["api"]["ws"]["public"]["linear"] == (
        "ws://127.0.0.1:8/v5/public/linear"
    )

    def leaves(urls):
        return [u for v in urls.values() for u in (leaves(v) if isinstance(v, dict) else [v])]

    default = leaves(make_exchange("bybit", streaming=True).urls["api"]["ws"])
    rebased = leaves(client.urls["api"]["ws"])
    assert rebased == ["ws://127.0.0.1:8" + urlsplit(url).path for url in default]
    rest = {name: url for name, url in client.urls["api"].items() if name != "ws"}
    assert set(rest.values()) == {"http://127.0.0.1:9"}
    with pytest.raises(ValueError, match="does not stream"):
        make_exchange("bybit", stream_url="ws://127.0.0.1:8")
    with pytest.raises(DataError, match="not a ccxt.pro"):
        make_exchange("nosuchexchange", streaming=True)


@pytest.mark.slow
def test_importing_the_engine_opens_no_connection():
    code = (
        "import socket\n"
        "def refuse(*args, **kwargs):\n"
        "    raise AssertionError('network I/O during import')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "import engine.cli, engine.data.feed, engine.data.importers\n"
        "engine.data.feed.make_exchange()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
