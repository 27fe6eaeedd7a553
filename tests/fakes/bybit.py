"""A fake Bybit v5 server (REST and public websocket stream) on 127.0.0.1 for tests.

It serves the public market-data endpoints that ccxt's ``bybit`` client calls
to load markets, fetch candles and fetch funding-rate history, from candles and
funding rates given as DataFrames or parquet files:

- ``/v5/market/instruments-info`` (spot, linear; inverse and option are empty)
- ``/v5/market/kline``
- ``/v5/market/funding/history``
- ``/v5/market/time``

Any other path (a private endpoint, for one) is recorded and answered with
HTTP 404. A settable clock, ``now_ms``, decides which bars exist: bars that
closed by then, plus the bar still open at ``now_ms`` (as Bybit serves it)
unless ``serve_open_bar`` is False. Faults can be injected for the next N
requests or for requests whose time window overlaps a range.

On another port (``stream_url``) it speaks enough of Bybit's v5 public stream
for ccxt.pro's ``watch_ohlcv``: ``/v5/public/linear`` and ``/v5/public/spot``
take ``{"op": "subscribe", "args": ["kline.<interval>.<SYMBOL>"]}`` and
``{"op": "ping"}``; any other op (``auth``, for one) is recorded and refused.
The clock drives the stream: whenever it moves, every subscriber gets the bar
that just closed, if one did (``confirm: true``, its final values), then the
bar open at the new time (``confirm: false``, values so far: the open moved
towards the final close in proportion to the time elapsed, and that share of
the volume), which is also sent on subscribing. ``drop_stream`` closes every
connection and refuses new ones while the clock is inside a range. Stream
messages are recorded in ``requests`` with method ``WS``.

Examples
--------
>>> with FakeBybit(now_ms=1_700_000_000_000) as fake:  # doctest: +SKIP
...     fake.add_candles("linear", "BTCUSDT", "1h", "bybit_linear_BTCUSDT_1h.parquet")
...     exchange = make_exchange(api_urls=fake.url)
...     fake.inject("rate_limit", times=2)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from os import PathLike
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pandas as pd
from aiohttp import WSCloseCode, WSMsgType, web

from engine.data.symbols import TIMEFRAME_MS, split_symbol
from engine.data.times import now_ms as clock_ms

FaultKind = Literal["rate_limit", "server_error", "stall", "malformed", "empty", "gap"]
FAULT_KINDS = ("rate_limit", "server_error", "stall", "malformed", "empty", "gap")
KLINE_PATH = "/v5/market/kline"
FUNDING_PATH = "/v5/market/funding/history"
INSTRUMENTS_PATH = "/v5/market/instruments-info"
TIME_PATH = "/v5/market/time"
KLINE_LIMIT = 1000
FUNDING_LIMIT = 200
# Bybit names intervals in minutes, and days as "D".
BYBIT_INTERVALS = {
    ("D" if ms == 86_400_000 else str(ms // 60_000)): timeframe
    for timeframe, ms in TIMEFRAME_MS.items()
}
_WINDOW_PARAMS = {KLINE_PATH: ("start", "end"), FUNDING_PATH: ("startTime", "endTime")}
#: The public stream paths and the market each serves.
STREAM_PATHS = {"/v5/public/linear": "linear", "/v5/public/spot": "spot"}


@dataclass
class Fault:
    """An injected fault and the requests it applies to.

    Attributes
    ----------
    kind : str
        ``rate_limit`` (HTTP 429 with ``Retry-After``), ``server_error`` (HTTP
        500), ``stall`` (answer after ``stall_s`` seconds), ``malformed``
        (truncated JSON), ``empty`` (no rows), ``gap`` (rows between
        ``start_ms`` and ``end_ms`` left out).
    path : str
        The endpoint it applies to.
    remaining : int or None
        How many more requests it applies to; None for every request.
    start_ms, end_ms : int or None
        When set, it applies only to requests whose time window overlaps
        this inclusive range.
    retry_after_s : float
        The retry hint sent with ``rate_limit``.
    stall_s : float
        How long ``stall`` holds the response.
    """

    kind: FaultKind
    path: str
    remaining: int | None
    start_ms: int | None
    end_ms: int | None
    retry_after_s: float
    stall_s: float


@dataclass(frozen=True)
class FakeRequest:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, str]


@dataclass(frozen=True)
class _Table:
    # Sorted timestamps and the string columns served for them.
    timestamps: np.ndarray
    rows: list[list[str]]


def _as_frame(data: pd.DataFrame | str | PathLike[str]) -> pd.DataFrame:
    return data if isinstance(data, pd.DataFrame) else pd.read_parquet(data)


class FakeBybit:
    """A threaded fake Bybit v5 server; use it as a context manager.

    Parameters
    ----------
    now_ms : int, optional
        The server's clock in milliseconds; the real time when not given.
        Settable at any time.
    serve_open_bar : bool
        Serve the bar that is still open at ``now_ms``, as Bybit does.
    """

    def __init__(self, now_ms: int | None = None, serve_open_bar: bool = True) -> None:
        self._stream: _StreamServer | None = None
        self.now_ms = clock_ms() if now_ms is None else now_ms
        self.serve_open_bar = serve_open_bar
        self.requests: list[FakeRequest] = []
        self._candles: dict[tuple[str, str, str], _Table] = {}
        self._funding: dict[str, _Table] = {}
        self._instruments: dict[tuple[str, str], dict[str, Any]] = {}
        self._faults: list[Fault] = []
        self._drops: list[tuple[int, int]] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def now_ms(self) -> int:
        """Return the server's clock in milliseconds; setting it drives the stream."""
        return self._now

    @now_ms.setter
    def now_ms(self, ms: int) -> None:
        previous, self._now = getattr(self, "_now", None), ms
        if self._stream is not None and previous is not None and ms != previous:
            self._stream.clock_moved(previous, ms)

    @property
    def url(self) -> str:
        """Return the base URL, ``http://127.0.0.1:<port>``."""
        if self._server is None:
            raise RuntimeError("the fake Bybit server is not running; call start() first")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def stream_url(self) -> str:
        """Return the base URL of the public stream, ``ws://127.0.0.1:<port>``."""
        if self._stream is None:
            raise RuntimeError("the fake Bybit server is not running; call start() first")
        return f"ws://127.0.0.1:{self._stream.port}"

    @property
    def paths(self) -> list[str]:
        """Return the path of every request received, in order."""
        with self._lock:
            return [request.path for request in self.requests]

    def start(self) -> FakeBybit:
        """Start serving on a free port of 127.0.0.1 and return self."""
        self._closing.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._stream = _StreamServer(self)
        return self

    def close(self) -> None:
        """Stop serving and release the ports; stalled responses are abandoned."""
        if self._server is not None:
            self._closing.set()
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def __enter__(self) -> FakeBybit:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    def add_candles(
        self,
        market: str,
        symbol: str,
        timeframe: str,
        candles: pd.DataFrame | str | PathLike[str],
        instrument: dict[str, Any] | None = None,
    ) -> None:
        """Serve candles (store schema, DataFrame or parquet path) for one market.

        ``instrument`` overrides fields of the market's instruments-info entry
        (for example ``{"lotSizeFilter": {...}}``).
        """
        frame = _as_frame(candles)
        columns = ["open", "high", "low", "close", "volume"]
        values = frame[columns].to_numpy(dtype=np.float64)
        rows = [
            [str(int(ts)), *map(repr, map(float, row)), repr(float(row[4] * row[3]))]
            for ts, row in zip(frame["timestamp"].to_numpy(), values, strict=True)
        ]
        self._candles[(market, symbol, timeframe)] = _Table(frame["timestamp"].to_numpy(), rows)
        self._add_instrument(market, symbol, int(frame["timestamp"].iloc[0]), instrument)

    def add_funding(self, symbol: str, rates: pd.DataFrame | str | PathLike[str]) -> None:
        """Serve funding rates (``timestamp``, ``rate``) for a linear perpetual."""
        frame = _as_frame(rates)
        rows = [
            [str(int(ts)), repr(float(rate))]
            for ts, rate in zip(
                frame["timestamp"].to_numpy(), frame["rate"].to_numpy(), strict=True
            )
        ]
        self._funding[symbol] = _Table(frame["timestamp"].to_numpy(), rows)
        self._add_instrument("linear", symbol, int(frame["timestamp"].iloc[0]), None)

    def inject(
        self,
        kind: FaultKind,
        times: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        path: str = KLINE_PATH,
        retry_after_s: float = 0.05,
        stall_s: float = 2.0,
    ) -> Fault:
        """Inject a fault for the next ``times`` requests to ``path``, or within a range.

        Parameters
        ----------
        kind : str
            One of ``FAULT_KINDS``; see ``Fault``.
        times : int, optional
            Apply to this many matching requests, then expire; every matching
            request when not given.
        start_ms, end_ms : int, optional
            Apply only to requests whose window overlaps this inclusive range;
            for ``gap``, the bars in the range are the ones left out.
        path : str
            The endpoint to disturb (candles by default).
        retry_after_s : float
            The ``Retry-After`` hint of ``rate_limit``.
        stall_s : float
            How long ``stall`` holds the response.

        Returns
        -------
        Fault
            The fault, whose ``remaining`` counts down as it is used.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind {kind!r} is unknown; expected one of {FAULT_KINDS}")
        if kind == "gap" and (start_ms is None or end_ms is None):
            raise ValueError("a 'gap' fault needs start_ms and end_ms: the bars to leave out")
        fault = Fault(kind, path, times, start_ms, end_ms, retry_after_s, stall_s)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        with self._lock:
            self._faults.clear()

    def drop_stream(self, start_ms: int, end_ms: int) -> None:
        """Drop the stream while the clock is in ``[start_ms, end_ms)``.

        Open connections are closed (code 1001, going away) when the clock
        enters the range, and new ones are refused with HTTP 503 until it
        leaves it.
        """
        if end_ms <= start_ms:
            raise ValueError(f"drop_stream needs start_ms < end_ms; got {start_ms} and {end_ms}")
        with self._lock:
            self._drops.append((start_ms, end_ms))
        if self._stream is not None:
            self._stream.clock_moved(self._now, self._now)

    def stream_dropped(self) -> bool:
        """Return True while the clock is inside a range given to ``drop_stream``."""
        with self._lock:
            return any(start <= self._now < end for start, end in self._drops)

    def _add_instrument(
        self, market: str, symbol: str, first_ms: int, overrides: dict[str, Any] | None
    ) -> None:
        base, quote = split_symbol(symbol)
        known = self._instruments.get((market, symbol))
        launch = min(first_ms, int(known["launchTime"])) if known else first_ms
        if market == "spot":
            entry: dict[str, Any] = {
                "symbol": symbol,
                "baseCoin": base,
                "quoteCoin": quote,
                "innovation": "0",
                "status": "Trading",
                "marginTrading": "none",
                "lotSizeFilter": {
                    "basePrecision": "0.000001",
                    "quotePrecision": "0.00000001",
                    "minOrderQty": "0.000048",
                    "maxOrderQty": "71.73956243",
                    "minOrderAmt": "1",
                    "maxOrderAmt": "2000000",
                },
                "priceFilter": {"tickSize": "0.01"},
                "launchTime": str(launch),
            }
        else:
            entry = {
                "symbol": symbol,
                "contractType": "LinearPerpetual",
                "status": "Trading",
                "baseCoin": base,
                "quoteCoin": quote,
                "launchTime": str(launch),
                "deliveryTime": "0",
                "deliveryFeeRate": "",
                "priceScale": "2",
                "leverageFilter": {
                    "minLeverage": "1",
                    "maxLeverage": "100.00",
                    "leverageStep": "0.01",
                },
                "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"},
                "lotSizeFilter": {
                    "maxOrderQty": "1190.000",
                    "minOrderQty": "0.001",
                    "qtyStep": "0.001",
                    "postOnlyMaxOrderQty": "1190.000",
                    "maxMktOrderQty": "119.000",
                    "minNotionalValue": "5",
                },
                "unifiedMarginTrade": True,
                "fundingInterval": 480,
                "settleCoin": quote,
                "copyTrading": "both",
                "upperFundingRate": "0.005",
                "lowerFundingRate": "-0.005",
            }
        entry.update(known or {})
        entry["launchTime"] = str(launch)
        entry.update(overrides or {})
        self._instruments[(market, symbol)] = entry

    def _record(self, method: str, path: str, query: dict[str, str]) -> Fault | None:
        # Record the request and return the fault it triggers, if any.
        with self._lock:
            self.requests.append(FakeRequest(method, path, query))
            window = _window(path, query)
            for fault in self._faults:
                if fault.path != path or fault.remaining == 0:
                    continue
                if fault.start_ms is not None and (
                    window is None or window[1] < fault.start_ms or window[0] > fault.end_ms
                ):
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None

    def _answer(
        self, path: str, query: dict[str, str], fault: Fault | None
    ) -> tuple[int, dict[str, str], bytes]:
        # Return the status, headers and body of a response.
        if fault is not None and fault.kind == "stall":
            self._closing.wait(fault.stall_s)
        if fault is not None and fault.kind == "rate_limit":
            reset = clock_ms() + int(fault.retry_after_s * 1000)
            headers = {
                "Retry-After": f"{fault.retry_after_s:g}",
                "X-Bapi-Limit-Status": "0",
                "X-Bapi-Limit-Reset-Timestamp": str(reset),
            }
            return 429, headers, self._json(10006, "Too many visits!", {})
        if fault is not None and fault.kind == "server_error":
            return (
                500,
                {"Content-Type": "text/html"},
                b"<html><body><h1>500 Internal Server Error</h1></body></html>",
            )
        handlers = {
            KLINE_PATH: self._kline,
            FUNDING_PATH: self._funding_history,
            INSTRUMENTS_PATH: self._instruments_info,
            TIME_PATH: self._time,
        }
        if path not in handlers:
            return 404, {"Content-Type": "text/plain"}, f"{path} is not served here".encode()
        body = handlers[path](query, fault)
        if fault is not None and fault.kind == "malformed":
            body = body[: max(1, len(body) // 2)]
        return 200, {}, body

    def _json(self, code: int, message: str, result: dict[str, Any]) -> bytes:
        payload = {
            "retCode": code,
            "retMsg": message,
            "result": result,
            "retExtInfo": {},
            "time": self.now_ms,
        }
        return json.dumps(payload).encode()

    def _error(self, message: str) -> bytes:
        return self._json(10001, message, {})

    def _kline(self, query: dict[str, str], fault: Fault | None) -> bytes:
        timeframe = BYBIT_INTERVALS.get(query.get("interval", ""))
        key = (query.get("category", ""), query.get("symbol", ""), timeframe or "")
        if key not in self._candles:
            return self._error(f"params error: no kline for {key}")
        interval = TIMEFRAME_MS[key[2]]
        # Bybit returns the bar containing `start`; the open bar ends after now.
        start = int(query.get("start", 0)) // interval * interval
        newest = (self.now_ms // interval) * interval
        if not self.serve_open_bar:
            newest -= interval
        end = min(int(query.get("end", newest)), newest)
        limit = min(int(query.get("limit", 200)), KLINE_LIMIT)
        rows = self._select(self._candles[key], start, end, limit, fault)
        return self._json(0, "OK", {"symbol": key[1], "category": key[0], "list": rows})

    def _funding_history(self, query: dict[str, str], fault: Fault | None) -> bytes:
        symbol = query.get("symbol", "")
        if query.get("category") != "linear" or symbol not in self._funding:
            return self._error(f"params error: no funding history for {symbol!r}")
        if "startTime" in query and "endTime" not in query:
            return self._error("params error: startTime requires endTime")
        end = min(int(query.get("endTime", self.now_ms)), self.now_ms)
        limit = min(int(query.get("limit", FUNDING_LIMIT)), FUNDING_LIMIT)
        rows = self._select(
            self._funding[symbol], int(query.get("startTime", 0)), end, limit, fault
        )
        entries = [
            {"symbol": symbol, "fundingRate": rate, "fundingRateTimestamp": ts} for ts, rate in rows
        ]
        return self._json(0, "OK", {"category": "linear", "list": entries})

    def _select(
        self, table: _Table, start: int, end: int, limit: int, fault: Fault | None
    ) -> list[list[str]]:
        # The newest `limit` rows with start <= timestamp <= end, newest first.
        if fault is not None and fault.kind == "empty":
            return []
        first = int(np.searchsorted(table.timestamps, start, side="left"))
        stop = int(np.searchsorted(table.timestamps, end, side="right"))
        rows = table.rows[max(first, stop - limit) : stop]
        if fault is not None and fault.kind == "gap":
            rows = [row for row in rows if not fault.start_ms <= int(row[0]) <= fault.end_ms]
        return rows[::-1]

    def _instruments_info(self, query: dict[str, str], fault: Fault | None) -> bytes:
        category = query.get("category", "")
        listed = (
            []
            if query.get("status") == "PreLaunch"
            else [
                entry
                for (market, _), entry in sorted(self._instruments.items())
                if market == category
            ]
        )
        if fault is not None and fault.kind == "empty":
            listed = []
        return self._json(0, "OK", {"category": category, "list": listed, "nextPageCursor": ""})

    def _time(self, query: dict[str, str], fault: Fault | None) -> bytes:
        seconds = self.now_ms // 1000
        return self._json(
            0, "OK", {"timeSecond": str(seconds), "timeNano": str(self.now_ms * 1_000_000)}
        )

    def _kline_series(self, category: str, topic: str) -> tuple[_Table, int] | None:
        # The candles and bar length a `kline.<interval>.<SYMBOL>` topic streams, if served.
        parts = topic.split(".")
        if len(parts) != 3 or parts[0] != "kline" or parts[1] not in BYBIT_INTERVALS:
            return None
        timeframe = BYBIT_INTERVALS[parts[1]]
        table = self._candles.get((category, parts[2], timeframe))
        return None if table is None else (table, TIMEFRAME_MS[timeframe])

    def _kline_updates(
        self, category: str, topic: str, previous: int | None, now: int
    ) -> list[dict[str, Any]]:
        # The stream messages of `topic` when the clock moves from `previous` to `now` (from
        # nothing, on subscribing): the bar that closed meanwhile, if any, then the open bar.
        series = self._kline_series(category, topic)
        if series is None:
            return []
        table, interval = series
        opening = now // interval * interval
        bars = [(opening, False)]
        if previous is not None and previous // interval * interval < opening:
            bars.insert(0, (opening - interval, True))
        messages = []
        for start, confirm in bars:
            row = int(np.searchsorted(table.timestamps, start))
            if row == len(table.timestamps) or table.timestamps[row] != start:
                continue
            open_, high, low, close, volume, turnover = map(float, table.rows[row][1:])
            if not confirm:
                # The bar so far: the open moved towards the close, that share of the volume.
                share = (now - start) / interval
                close = open_ + share * (close - open_)
                high, low = max(open_, close), min(open_, close)
                volume, turnover = share * volume, share * turnover
            values = dict(open=open_, close=close, high=high, low=low)
            bar = {"start": start, "end": start + interval - 1, "interval": topic.split(".")[1]}
            bar |= {name: repr(value) for name, value in values.items()}
            bar |= {"volume": repr(volume), "turnover": repr(turnover)}
            bar |= {"confirm": confirm, "timestamp": now}
            messages.append({"topic": topic, "data": [bar], "ts": now, "type": "snapshot"})
        return messages


class _StreamServer:
    # The fake's public websocket stream: an aiohttp server on its own event loop and thread.
    def __init__(self, fake: FakeBybit) -> None:
        self.fake = fake
        self.loop = asyncio.new_event_loop()
        # Open connections, each with its market and the topics it subscribed to.
        self.sockets: dict[web.WebSocketResponse, tuple[str, set[str]]] = {}
        app = web.Application()
        for path in STREAM_PATHS:
            app.router.add_get(path, self._serve)
        self.runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = int(self.runner.addresses[0][1])
        # One sender at a time, in the order the clock moved, so messages stay in order.
        self.sending = asyncio.Lock()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def clock_moved(self, previous: int, now: int) -> None:
        # Called from any thread when the clock moved (or a drop range was added).
        self.loop.call_soon_threadsafe(lambda: self.loop.create_task(self._publish(previous, now)))

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    async def _shutdown(self) -> None:
        for socket in list(self.sockets):
            await socket.close(code=WSCloseCode.GOING_AWAY, message=b"server closing")
        await self.runner.cleanup()

    async def _publish(self, previous: int, now: int) -> None:
        # Drop every connection inside a drop range; otherwise push what the move changed.
        async with self.sending:
            for socket, (category, topics) in list(self.sockets.items()):
                if self.fake.stream_dropped():
                    await socket.close(code=WSCloseCode.GOING_AWAY, message=b"stream dropped")
                    continue
                for topic in sorted(topics) if now != previous else []:
                    for message in self.fake._kline_updates(category, topic, previous, now):
                        await _send(socket, message)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        fake = self.fake
        fake._record("GET", request.path, {})
        if fake.stream_dropped():
            return web.Response(status=503, text="the stream is dropped for now")
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        category, topics = STREAM_PATHS[request.path], set()
        self.sockets[socket] = (category, topics)
        try:
            async for frame in socket:
                if frame.type == WSMsgType.TEXT:
                    await self._answer(socket, request.path, category, topics, frame.data)
        finally:
            self.sockets.pop(socket, None)
        return socket

    async def _answer(
        self, socket: web.WebSocketResponse, path: str, category: str, topics: set[str], text: str
    ) -> None:
        # Answer one request of a client: subscribe, ping, or a refusal.
        try:
            payload = json.loads(text)
        except ValueError:
            payload = {}
        op, args = str(payload.get("op")), [str(arg) for arg in payload.get("args") or []]
        self.fake._record("WS", path, {"op": op, "args": ",".join(args)})
        reply = {"success": True, "ret_msg": "", "conn_id": "fake", "op": op}
        reply["req_id"] = payload.get("req_id", "")
        updates: list[dict[str, Any]] = []
        if op == "ping":
            reply["ret_msg"] = "pong"
        elif op == "subscribe":
            unknown = [t for t in args if self.fake._kline_series(category, t) is None]
            if unknown:
                reply.update(success=False, ret_msg=f"error:handler not found,topic:{unknown[0]}")
            else:
                topics.update(args)
                now = self.fake.now_ms
                updates = [
                    m for t in args for m in self.fake._kline_updates(category, t, None, now)
                ]
        else:
            reply.update(success=False, ret_msg=f"error:op {op!r} is not served here")
        async with self.sending:
            for message in [reply, *updates]:
                await _send(socket, message)


async def _send(socket: web.WebSocketResponse, message: dict[str, Any]) -> None:
    # Send unless the connection is closing (a client that left, or a drop).
    if not socket.closed:
        with contextlib.suppress(ConnectionResetError):
            await socket.send_str(json.dumps(message))


def _window(path: str, query: dict[str, str]) -> tuple[int, int] | None:
    # The time window a request asks for, if the endpoint takes one.
    names = _WINDOW_PARAMS.get(path)
    if names is None:
        return None
    return int(query.get(names[0], 0)), int(query.get(names[1], 2**62))


def _handler_for(fake: FakeBybit) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
            self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._serve("POST")

        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query))
            fault = fake._record(method, parts.path, query)
            status, headers, body = fake._answer(parts.path, query, fault)
            try:
                self.send_response(status)
                headers.setdefault("Content-Type", "application/json")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up (a stalled response): nothing left to answer.
                pass

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler
