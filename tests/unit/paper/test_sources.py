"""The exchange source: whatever the client raises reaches the session as an ExchangeError."""

from __future__ import annotations

import socket

import pytest

from engine.data.feed import make_exchange
from engine.data.retry import RetryPolicy
from engine.data.store import SeriesKey
from engine.errors import ExchangeError
from engine.paper.sources import ExchangeSource

KEY = SeriesKey("bybit", "linear", "BTCUSDT", "1h")


def test_an_unreachable_exchange_is_an_exchange_error_naming_what_was_asked():
    with socket.socket() as sock:  # a port on 127.0.0.1 that nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    source = ExchangeSource(
        make_exchange("bybit", api_urls=url, timeout_ms=2_000), [KEY], RetryPolicy(0, 0.0, 0.0)
    )
    with pytest.raises(ExchangeError, match=r"^bybit did not give its time: \w+Error"):
        source.time_ms()
    with pytest.raises(ExchangeError, match=r"^bybit"):
        source.closed_bars(1_748_736_000_000, 1_748_750_000_000)
