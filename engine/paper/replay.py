"""Replays: a session driven by recorded candles through the fake Bybit server.

The fake server (``engine.data.fake_bybit.FakeBybit``) serves the recorded
candles (and the store's funding rates of the symbol, when funding is charged) over HTTP and
its public websocket stream on 127.0.0.1, and the session's ``ReplayClock``
sets the server's clock: a bar exists for the session only once the simulated
time has passed its close, as on the exchange, and the stream moves with the
clock. ccxt talks to the server exactly as it talks to Bybit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ccxt
import pandas as pd

from engine.config import StrategyConfig
from engine.data.fake_bybit import FakeBybit
from engine.data.feed import make_exchange
from engine.data.importers import read_valid_candles
from engine.data.store import CandleStore, FundingKey
from engine.data.symbols import timeframe_ms
from engine.errors import DataError
from engine.paper.session import ReplayClock


def load_replay(config: StrategyConfig, candles: Path) -> pd.DataFrame:
    """Return the recorded candles of a replay file, validated as the store validates its files.

    Raises
    ------
    DataError
        If the file is missing, unreadable, empty, or fails validation (NaN or
        non-positive prices, timestamps off the strategy's bar grid...).
    """
    if not candles.is_file():
        raise DataError(f"replay file {candles} does not exist; expected a parquet of candles")
    return read_valid_candles(candles, timeframe_ms(config.market.timeframe))


@contextmanager
def replay_exchange(
    config: StrategyConfig, candles: Path | pd.DataFrame, store: CandleStore, speed: float = 0.0
) -> Iterator[tuple[FakeBybit, ccxt.Exchange, ReplayClock]]:
    """Serve recorded ``candles`` and yield the server, a client and a clock.

    ``candles`` is a parquet file (validated by ``load_replay``) or the frame
    ``load_replay`` returned. ``speed`` is simulated seconds per real second
    (0: as fast as possible).
    """
    market = config.market
    recorded = load_replay(config, candles) if isinstance(candles, Path) else candles
    with FakeBybit(now_ms=0) as fake:
        symbol = market.symbols[0]
        fake.add_candles(market.market, symbol, market.timeframe, recorded)
        if market.market == "linear" and config.costs.funding:
            funding = FundingKey(market.exchange, market.market, symbol)
            if not store.exists(funding):
                raise DataError(
                    f"costs.funding is on but the store {store.root} has no funding rates for "
                    f"{symbol} to replay. Fetch them with `engine data fetch --funding`, or set "
                    "costs.funding: false"
                )
            fake.add_funding(symbol, store.path(funding))
        yield fake, replay_client(fake, market.exchange), ReplayClock(fake, 0, speed)


def replay_client(fake: FakeBybit, exchange_id: str, streaming: bool = False) -> ccxt.Exchange:
    """Return a ccxt client of the fake server: REST, or ccxt.pro with ``streaming``.

    A streaming client's websocket URLs point at the server's stream and its
    REST URLs at the server, as the REST client's do.
    """
    stream_url = fake.stream_url if streaming else None
    exchange = make_exchange(
        exchange_id, api_urls=fake.url, streaming=streaming, stream_url=stream_url
    )
    # The local server has no rate limit to respect; the limiter would only slow a replay.
    exchange.enableRateLimit = False
    return exchange
