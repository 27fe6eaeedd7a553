from __future__ import annotations

import pytest

from engine.data.symbols import split_symbol, timeframe_ms, to_ccxt
from engine.errors import DataError


@pytest.mark.parametrize(
    ("symbol", "market", "unified"),
    [
        ("BTCUSDT", "linear", "BTC/USDT:USDT"),
        ("BTCUSDT", "spot", "BTC/USDT"),
        ("1000PEPEUSDT", "linear", "1000PEPE/USDT:USDT"),
        ("ETHUSDC", "spot", "ETH/USDC"),
    ],
)
def test_symbol_maps_to_ccxt(symbol, market, unified):
    assert to_ccxt(symbol, market) == unified


def test_split_symbol_returns_base_and_quote():
    assert split_symbol("SOLUSDT") == ("SOL", "USDT")


@pytest.mark.parametrize("symbol", ["btcusdt", "BTC-USDT", "BTCEUR", "USDT"])
def test_malformed_symbol_is_a_data_error_naming_it(symbol):
    with pytest.raises(DataError, match=repr(symbol).replace("'", ".")):
        to_ccxt(symbol, "linear")


def test_unknown_market_and_timeframe_name_the_choices():
    with pytest.raises(DataError, match="expected one of linear, spot"):
        to_ccxt("BTCUSDT", "inverse")
    with pytest.raises(DataError, match="'7m' is not supported"):
        timeframe_ms("7m")
    assert timeframe_ms("5m") == 300_000
