from __future__ import annotations

import json
import urllib.error
import urllib.request

import ccxt
import pytest

from engine.data.fake_bybit import FakeBybit

from .helpers import HOUR, make_candles


def get(url: str) -> tuple[int, dict, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def test_default_ccxt_client_loads_markets_from_the_fake(fake):
    client = ccxt.bybit({"timeout": 2000})
    client.urls["api"] = dict.fromkeys(client.urls["api"], fake.url)
    markets = client.load_markets()
    assert markets["BTC/USDT:USDT"]["id"] == "BTCUSDT" and markets["BTC/USDT:USDT"]["swap"]
    assert set(fake.paths) == {"/v5/market/instruments-info"}
    categories = {request.query["category"] for request in fake.requests}
    assert categories == {"spot", "linear", "inverse", "option"}


def test_kline_is_newest_first_strings_of_closed_bars_plus_the_open_bar(fake):
    series = make_candles(3001)
    last_closed = int(series["timestamp"].iloc[-2])
    status, _, body = get(
        f"{fake.url}/v5/market/kline?category=linear&symbol=BTCUSDT&interval=60&limit=3"
    )
    rows = json.loads(body)["result"]["list"]
    assert status == 200 and [int(row[0]) for row in rows] == [
        last_closed + HOUR,
        last_closed,
        last_closed - HOUR,
    ]
    assert all(isinstance(value, str) for value in rows[0]) and len(rows[0]) == 7
    assert float(rows[1][4]) == series["close"].iloc[-2]
    fake.serve_open_bar = False
    _, _, body = get(
        f"{fake.url}/v5/market/kline?category=linear&symbol=BTCUSDT&interval=60&limit=1"
    )
    assert int(json.loads(body)["result"]["list"][0][0]) == last_closed


def test_kline_window_and_clock(fake):
    start = int(make_candles(1)["timestamp"].iloc[0])
    window = f"start={start + HOUR // 2}&end={start + 4 * HOUR}"
    query = f"category=linear&symbol=BTCUSDT&interval=60&{window}"
    _, _, body = get(f"{fake.url}/v5/market/kline?{query}")
    assert [int(r[0]) for r in json.loads(body)["result"]["list"]] == [
        start + k * HOUR for k in (4, 3, 2, 1, 0)
    ]
    fake.now_ms = start + 2 * HOUR + 1
    _, _, body = get(f"{fake.url}/v5/market/kline?{query}")
    assert len(json.loads(body)["result"]["list"]) == 3


def test_faults_answer_like_bybit_and_expire(fake):
    url = f"{fake.url}/v5/market/kline?category=linear&symbol=BTCUSDT&interval=60&limit=2"
    fake.inject("rate_limit", times=1, retry_after_s=1.5)
    status, headers, body = get(url)
    assert (
        status == 429 and headers["Retry-After"] == "1.5" and json.loads(body)["retCode"] == 10006
    )
    fake.inject("server_error", times=1)
    assert get(url)[0] == 500
    fake.inject("malformed", times=1)
    with pytest.raises(json.JSONDecodeError):
        json.loads(get(url)[2])
    fake.inject("empty", times=1)
    assert json.loads(get(url)[2])["result"]["list"] == []
    assert len(json.loads(get(url)[2])["result"]["list"]) == 2


def test_range_faults_apply_only_to_overlapping_windows(fake):
    start = int(make_candles(1)["timestamp"].iloc[0])
    fake.inject("gap", start_ms=start + 2 * HOUR, end_ms=start + 3 * HOUR)
    base = f"{fake.url}/v5/market/kline?category=linear&symbol=BTCUSDT&interval=60"
    _, _, body = get(f"{base}&start={start}&end={start + 5 * HOUR}")
    assert [int(r[0]) for r in json.loads(body)["result"]["list"]] == [
        start + k * HOUR for k in (5, 4, 1, 0)
    ]
    fake.clear_faults()
    fake.inject("server_error", start_ms=start + 100 * HOUR, end_ms=start + 200 * HOUR)
    assert get(f"{base}&start={start}&end={start + 5 * HOUR}")[0] == 200
    assert get(f"{base}&start={start + 150 * HOUR}&end={start + 300 * HOUR}")[0] == 500


def test_unknown_symbol_and_private_paths_are_recorded_and_refused(fake):
    _, _, body = get(f"{fake.url}/v5/market/kline?category=linear&symbol=XRPUSDT&interval=60")
    assert json.loads(body)["retCode"] == 10001
    assert get(f"{fake.url}/v5/order/create")[0] == 404
    assert fake.paths[-1] == "/v5/order/create"


def test_funding_history_needs_end_with_start_and_serves_newest_first():
    rates = make_candles(30, interval=8 * HOUR)[["timestamp"]].assign(
        rate=[1e-4 * k for k in range(30)]
    )
    with FakeBybit(now_ms=int(rates["timestamp"].iloc[-1]) + 1) as fake:
        fake.add_funding("BTCUSDT", rates)
        base = f"{fake.url}/v5/market/funding/history?category=linear&symbol=BTCUSDT"
        first = int(rates["timestamp"].iloc[0])
        assert json.loads(get(f"{base}&startTime={first}")[2])["retCode"] == 10001
        _, _, body = get(f"{base}&startTime={first}&endTime={first + 16 * HOUR}")
        entries = json.loads(body)["result"]["list"]
        assert [e["fundingRateTimestamp"] for e in entries] == [
            str(first + k * 8 * HOUR) for k in (2, 1, 0)
        ]
        assert float(entries[0]["fundingRate"]) == rates["rate"].iloc[2]


def test_server_releases_its_port_on_exit():
    with FakeBybit() as fake:
        url = fake.url
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/v5/market/time", timeout=1)
