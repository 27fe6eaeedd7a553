from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import aiohttp
import ccxt
import pytest

from fakes.bybit import FakeBybit

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


def _talk(fake: FakeBybit, script, path: str = "/v5/public/linear"):
    # Run `script(ws)` on a websocket connection to the fake's stream; return its result.
    async def main():
        url = f"{fake.stream_url}{path}"
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            return await script(ws)

    return asyncio.run(main())


async def _ask(ws, request: dict) -> dict:
    await ws.send_json(request)
    return await ws.receive_json(timeout=5)


def test_stream_answers_subscribe_and_ping_and_refuses_other_ops_and_topics(fake):
    async def script(ws):
        subscribed = await _ask(
            ws, {"op": "subscribe", "req_id": "1", "args": ["kline.60.BTCUSDT"]}
        )
        snapshot = await ws.receive_json(timeout=5)
        pong = await _ask(ws, {"op": "ping", "req_id": "2"})
        auth = await _ask(ws, {"op": "auth", "req_id": "3", "args": ["key", 1, "signature"]})
        unknown = await _ask(ws, {"op": "subscribe", "req_id": "4", "args": ["kline.60.ETHUSDT"]})
        return subscribed, snapshot, pong, auth, unknown

    subscribed, snapshot, pong, auth, unknown = _talk(fake, script)
    assert subscribed == {
        "success": True, "ret_msg": "", "conn_id": "fake", "op": "subscribe", "req_id": "1"
    }  # fmt: skip
    series = make_candles(3001)
    last = series.iloc[-1]  # open for half an hour: half way from its open to its close
    bar = snapshot["data"][0]
    assert snapshot["topic"] == "kline.60.BTCUSDT" and bar["start"] == last["timestamp"]
    assert bar["confirm"] is False and bar["end"] == last["timestamp"] + HOUR - 1
    assert float(bar["close"]) == last["open"] + 0.5 * (last["close"] - last["open"])
    assert float(bar["volume"]) == 0.5 * last["volume"]
    assert pong["success"] and pong["ret_msg"] == "pong" and pong["req_id"] == "2"
    assert not auth["success"] and not unknown["success"]
    ops = [(r.query["op"], r.query["args"]) for r in fake.requests if r.method == "WS"]
    assert ops == [
        ("subscribe", "kline.60.BTCUSDT"),
        ("ping", ""),
        ("auth", "key,1,signature"),
        ("subscribe", "kline.60.ETHUSDT"),
    ]


def test_stream_follows_the_clock_the_closed_bar_confirmed_then_the_open_one_so_far():
    series = make_candles(10)
    stamps = series["timestamp"].tolist()
    with FakeBybit(now_ms=stamps[5] + HOUR // 4) as fake:
        fake.add_candles("linear", "BTCUSDT", "1h", series)

        async def script(ws):
            await _ask(ws, {"op": "subscribe", "args": ["kline.60.BTCUSDT"]})
            seen = [await ws.receive_json(timeout=5)]
            # Into the next bar, within it, then three bars on: the bar that closed last
            # (confirmed) comes before the open one.
            moves = ((stamps[6] + HOUR // 2, 2), (stamps[6] + 3 * HOUR // 4, 1), (stamps[9], 2))
            for now, messages in moves:
                fake.now_ms = now
                seen += [await ws.receive_json(timeout=5) for _ in range(messages)]
            return [message["data"][0] for message in seen]

        bars = _talk(fake, script)
    summary = [(bar["start"], bar["confirm"], float(bar["close"])) for bar in bars]
    row = series.set_index("timestamp")

    def so_far(k: int, share: float) -> float:
        return row.open[stamps[k]] + share * (row.close[stamps[k]] - row.open[stamps[k]])

    assert summary == [
        (stamps[5], False, so_far(5, 0.25)),
        (stamps[5], True, row.close[stamps[5]]),
        (stamps[6], False, so_far(6, 0.5)),
        (stamps[6], False, so_far(6, 0.75)),
        (stamps[8], True, row.close[stamps[8]]),
        (stamps[9], False, row.open[stamps[9]]),
    ]
    assert float(bars[1]["volume"]) == row.volume[stamps[5]] and float(bars[-1]["volume"]) == 0.0


def test_a_dropped_stream_closes_connections_and_refuses_new_ones_while_the_clock_is_inside():
    series = make_candles(10)
    stamps = series["timestamp"].tolist()
    with FakeBybit(now_ms=stamps[5]) as fake:
        fake.add_candles("linear", "BTCUSDT", "1h", series)
        fake.drop_stream(stamps[6], stamps[8])

        async def dropped(ws):
            await _ask(ws, {"op": "subscribe", "args": ["kline.60.BTCUSDT"]})
            await ws.receive_json(timeout=5)
            fake.now_ms = stamps[6]
            return await ws.receive(timeout=5)

        closing = _talk(fake, dropped)
        assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1001
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            _talk(fake, dropped)
        assert refused.value.status == 503
        fake.now_ms = stamps[8]

        async def ping(ws):
            return await _ask(ws, {"op": "ping"})

        assert _talk(fake, ping)["ret_msg"] == "pong"
    with pytest.raises(ValueError, match="start_ms < end_ms"):
        FakeBybit().drop_stream(stamps[8], stamps[6])
