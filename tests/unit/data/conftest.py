"""Fixtures of the data tests: synthetic candles, a store in tmp_path, the fake Bybit server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pandas as pd
import pytest

from fakes.bybit import FakeBybit
from engine.data.feed import make_exchange
from engine.data.retry import RetryPolicy
from engine.data.store import CandleStore

from .helpers import HOUR, make_candles


@pytest.fixture
def candles() -> Callable[..., pd.DataFrame]:
    """Return the synthetic candle factory ``make_candles``."""
    return make_candles


@pytest.fixture
def store(tmp_path) -> CandleStore:
    """Return an empty store in a temporary folder."""
    return CandleStore(tmp_path / "store")


@pytest.fixture
def fast_retry() -> RetryPolicy:
    """Return a retry policy that keeps fault tests fast."""
    return RetryPolicy(retries=3, base_delay_s=0.01, max_delay_s=1.0)


@pytest.fixture
def fake() -> Iterator[FakeBybit]:
    """Return a running fake Bybit serving 3000 synthetic 1h bars of BTCUSDT (linear).

    Its clock stands 30 minutes into the bar after the last one, so that bar is open.
    """
    series = make_candles(3001)
    with FakeBybit(now_ms=int(series["timestamp"].iloc[-1]) + HOUR // 2) as server:
        server.add_candles("linear", "BTCUSDT", "1h", series)
        yield server


@pytest.fixture
def exchange(fake):
    """Return a real ccxt bybit client pointed at the fake server, with a short timeout."""
    return make_exchange("bybit", api_urls=fake.url, timeout_ms=400)
