"""Sessions against the fake Bybit server: the real ccxt client, the fake's clock in step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ccxt

from engine.config import StrategyConfig
from engine.data.feed import make_exchange
from engine.data.retry import RetryPolicy
from engine.data.store import CandleStore, FundingKey
from engine.paper.sources import ExchangeSource, ReplayClock, series_keys
from fakes.bybit import FakeBybit


class ServerClock(ReplayClock):
    """A replay clock that moves the fake server's clock with it."""

    def __init__(self, fake: FakeBybit, now_ms: int, speed: float = 0.0) -> None:
        self.fake = fake
        super().__init__(now_ms, speed)
        fake.now_ms = now_ms

    def _set(self, ms: int) -> None:
        super()._set(ms)
        self.fake.now_ms = ms


def fake_client(fake: FakeBybit, exchange_id: str, streaming: bool = False) -> ccxt.Exchange:
    """Return a ccxt client of the fake server: REST, or ccxt.pro with ``streaming``."""
    stream_url = fake.stream_url if streaming else None
    exchange = make_exchange(
        exchange_id, api_urls=fake.url, streaming=streaming, stream_url=stream_url
    )
    # The local server has no rate limit to respect; the limiter would only slow a test.
    exchange.enableRateLimit = False
    return exchange


@contextmanager
def fake_exchange(
    config: StrategyConfig, candles: Path, store: CandleStore, retry: RetryPolicy
) -> Iterator[tuple[FakeBybit, ExchangeSource, ServerClock]]:
    """Serve ``candles`` and the store's funding; yield the server, a source and a clock.

    ``candles`` is a candle file of a single-symbol strategy, or a folder
    holding each symbol's file under the store's name for it.
    """
    market = config.market
    keys = series_keys(config)
    with FakeBybit(now_ms=0) as fake:
        for key in keys:
            path = candles / key.filename if candles.is_dir() else candles
            fake.add_candles(market.market, key.symbol, market.timeframe, path)
            if market.market == "linear" and config.costs.funding:
                funding = FundingKey(market.exchange, market.market, key.symbol)
                fake.add_funding(key.symbol, store.path(funding))
        source = ExchangeSource(fake_client(fake, market.exchange), keys, retry)
        yield fake, source, ServerClock(fake, 0)
