"""Markets, symbols and timeframes, and the mapping to ccxt's unified symbols.

The store and the strategy files name a market the way the exchange lists it
(``BTCUSDT``); ccxt names it by base, quote and settlement currency
(``BTC/USDT:USDT`` for a USDT-margined perpetual, ``BTC/USDT`` for spot).
"""

from __future__ import annotations

import re

from engine.errors import DataError

MARKETS = ("linear", "spot")
QUOTES = ("USDT", "USDC")
SYMBOL_PATTERN = re.compile(r"^(?P<base>[A-Z0-9]{2,20}?)(?P<quote>USDT|USDC)$")
SYMBOL_FORM = (
    f"BASEQUOTE with an upper-case base and a quote in {', '.join(QUOTES)} (for example 'BTCUSDT')"
)

TIMEFRAME_MS = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
}


def split_symbol(symbol: str) -> tuple[str, str]:
    """Return the base and quote currency of an exchange symbol such as ``BTCUSDT``."""
    match = SYMBOL_PATTERN.match(symbol)
    if match is None:
        raise DataError(f"symbol {symbol!r} is not of the form {SYMBOL_FORM}")
    return match["base"], match["quote"]


def check_market(market: str) -> str:
    """Return ``market`` if the engine supports it, else raise a ``DataError``."""
    if market not in MARKETS:
        raise DataError(f"market {market!r} is not supported; expected one of {', '.join(MARKETS)}")
    return market


def timeframe_ms(timeframe: str) -> int:
    """Return the length of one bar of ``timeframe`` in milliseconds."""
    try:
        return TIMEFRAME_MS[timeframe]
    except KeyError:
        raise DataError(
            f"timeframe {timeframe!r} is not supported; expected one of {', '.join(TIMEFRAME_MS)}"
        ) from None


def to_ccxt(symbol: str, market: str) -> str:
    """Return ccxt's unified symbol: ``BTC/USDT:USDT`` (linear) or ``BTC/USDT`` (spot)."""
    base, quote = split_symbol(symbol)
    if check_market(market) == "linear":
        return f"{base}/{quote}:{quote}"
    return f"{base}/{quote}"
