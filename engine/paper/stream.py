"""When a bar closes, learnt from the exchange's public kline stream (ccxt.pro ``watch_ohlcv``).

A ``BarStream`` watches one series on its own event loop, in a background
thread, and keeps one fact: the open time of the newest bar the stream has
shown. A bar has closed once a later bar is streaming. The streamed values
themselves are never used: ccxt's parsed candles drop Bybit's ``confirm``
flag, so the last update of a bar cannot be told apart from a partial one, and
after a reconnect updates may have been missed. The session therefore fetches
a bar through the REST path (closed bars only, validated, the same code as
polling) as soon as the stream shows it closed; the stream decides when, REST
decides what.

A lost connection is reopened with the session's retry policy (exponential
backoff, without a limit: the session polls REST meanwhile). Losing and
regaining the stream are reported as events, which the session collects into
its journal from its own thread. Only the public stream is used: no key, no
login, no private topic.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from concurrent.futures import Future

import ccxt

from engine.data.retry import RetryPolicy
from engine.data.store import SeriesKey
from engine.errors import DataError

#: Longest wait before a waiting session looks at its stop event again.
STOP_CHECK_S = 0.1


class BarStream:
    """The newest bar of a series on the exchange's public stream, watched in a thread.

    Parameters
    ----------
    exchange : ccxt.pro.Exchange
        A client from ``make_exchange(..., streaming=True)``; this object owns it
        and closes it.
    key : SeriesKey
        The market and timeframe to watch.
    retry : RetryPolicy
        The backoff between reconnections (its number of retries is not used:
        the stream reconnects until it is closed).
    """

    def __init__(self, exchange: ccxt.Exchange, key: SeriesKey, retry: RetryPolicy) -> None:
        if not exchange.has.get("watchOHLCV"):
            raise DataError(
                f"the {exchange.id} client cannot stream candles; expected a ccxt.pro client "
                "from make_exchange(..., streaming=True)"
            )
        self.exchange, self.key, self.retry = exchange, key, retry
        self._newest: int | None = None
        self._changed = threading.Condition()
        self._events: queue.SimpleQueue[tuple[int, str]] = queue.SimpleQueue()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._watching = asyncio.run_coroutine_threadsafe(self._watch(), self._loop)
        self._watching.add_done_callback(self._stopped)

    @property
    def newest_ms(self) -> int | None:
        """Return the open time of the newest bar streamed so far, or None."""
        with self._changed:
            return self._newest

    def wait_past(self, open_ms: int, timeout_s: float, stop: threading.Event) -> bool:
        """Return True once the stream has shown a bar opening after ``open_ms``.

        Waits at most ``timeout_s`` seconds, and returns False early once
        ``stop`` is set.
        """
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._newest is None or self._newest <= open_ms:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or stop.is_set():
                    return False
                self._changed.wait(min(remaining, STOP_CHECK_S))
        return True

    def events(self) -> list[tuple[int, str]]:
        """Return the (logging level, message) events since the last call, oldest first."""
        found = []
        while not self._events.empty():
            found.append(self._events.get())
        return found

    def close(self) -> None:
        """Stop watching, close the client and end the thread."""
        if not self._thread.is_alive():
            return
        self._watching.cancel()
        asyncio.run_coroutine_threadsafe(self.exchange.close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _watch(self) -> None:
        # Watch until cancelled; reconnect with backoff after every failure.
        symbol, timeframe, what = self.key.ccxt_symbol, self.key.timeframe, self._what()
        failures, connected = 0, False
        while True:
            try:
                candles = await self.exchange.watch_ohlcv(symbol, timeframe)
            except ccxt.BaseError as exc:
                failures += 1
                if failures == 1:
                    self._events.put(
                        (
                            logging.WARNING,
                            f"{what} lost ({type(exc).__name__}: {exc}); reconnecting, "
                            "polling REST meanwhile",
                        )
                    )
                # The backoff stops doubling at the policy's longest wait; 2**30 is far past it.
                await asyncio.sleep(self.retry.delay_s(min(failures, 30)))
                continue
            if not connected or failures:
                state = f"back after {failures} failed attempts" if connected else "connected"
                self._events.put((logging.INFO, f"{what} {state}"))
                failures, connected = 0, True
            newest = max((int(candle[0]) for candle in candles), default=None)
            with self._changed:
                if newest is not None and (self._newest is None or newest > self._newest):
                    self._newest = newest
                    self._changed.notify_all()

    def _stopped(self, watching: Future[None]) -> None:
        # An error no reconnection can cure ended the watch: say so; the session polls REST.
        if not watching.cancelled() and watching.exception() is not None:
            error = watching.exception()
            message = f"{self._what()} stopped ({type(error).__name__}: {error}); polling REST only"
            self._events.put((logging.ERROR, message))

    def _what(self) -> str:
        return f"bar stream of {self.key.ccxt_symbol} {self.key.timeframe}"
