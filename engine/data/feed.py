"""Candles and funding rates from an exchange through ccxt, into the store.

Fetching pages through a range in windows the exchange answers in one page
(1000 bars, 200 funding settlements), with ccxt's rate limiter on. A failure
of the network or of the exchange (timeouts, HTTP 429 and 5xx, malformed
JSON) is retried with exponential backoff, honouring a ``Retry-After`` hint.
A page that leaves out bars the exchange should have (an empty page after the
market's listing, a hole) is retried the same way: a hole that persists is
kept, so that validation reports the gap; a page that stays empty is an
error. After the last retry an ``ExchangeError`` says what was requested, how
many attempts were made and the last error.

Nothing partial is ever written: an update collects every missing bar, merges,
validates and then replaces the file in one atomic write. Bars that are still
open are never requested, so never stored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ccxt
import numpy as np
import pandas as pd

from engine.data.store import CandleStore, FundingKey, SeriesKey
from engine.data.times import iso_utc, last_closed_open_ms
from engine.data.times import now_ms as clock_ms
from engine.data.retry import RetryPolicy
from engine.data.validate import (
    CANDLE_COLUMNS,
    DEFAULT_MAX_GAP_BARS,
    FUNDING_COLUMNS,
)
from engine.errors import DataError, ExchangeError

OHLCV_PAGE = 1000
FUNDING_PAGE = 200
# Markets the engine trades; loading only these keeps load_markets to a few requests.
BYBIT_MARKET_TYPES = ["spot", "linear"]
Progress = Callable[[int, int], None]


class _ShortPage(Exception):
    # A page left out bars the exchange should have; retried like a network error.
    def __init__(self, message: str, rows: list[list[Any]]) -> None:
        super().__init__(message)
        self.rows = rows


_RETRIED = (ccxt.NetworkError, ccxt.BadResponse, _ShortPage)


@dataclass(frozen=True)
class UpdateResult:
    """What an update did to one file of the store."""

    path: Path
    fetched: int
    rows: int
    first_ms: int | None
    last_ms: int | None


def _strict_json(body: str) -> Any:
    # ccxt treats a body that fails to parse as text; make it a retryable error instead.
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ccxt.BadResponse(f"malformed JSON in the response: {body[:80]!r}") from exc


def make_exchange(
    exchange_id: str = "bybit",
    api_urls: str | Mapping[str, str] | None = None,
    timeout_ms: int = 10_000,
    streaming: bool = False,
    stream_url: str | None = None,
) -> ccxt.Exchange:
    """Return a ccxt client with rate limiting on; no request is made.

    Parameters
    ----------
    exchange_id : str
        The ccxt id of the exchange.
    api_urls : str or mapping, optional
        Another host: a base URL replaces every REST entry of ``urls['api']``,
        a mapping replaces the entries it names (for example a fake server).
    timeout_ms : int
        Timeout of one HTTP request.
    streaming : bool
        Return ccxt.pro's client (asynchronous, with ``watch_ohlcv`` and the
        other websocket methods) instead of the REST client.
    stream_url : str, optional
        Another host for the websocket streams of a ``streaming`` client: a
        base URL such as ``ws://127.0.0.1:8765`` replaces the scheme and host
        of every entry of ``urls['api']['ws']`` and keeps its path.

    Returns
    -------
    ccxt.Exchange
        The client; malformed JSON in a response raises ``ccxt.BadResponse``.
    """
    module = ccxt
    if streaming:
        from ccxt import pro as module  # only a streaming client imports the async clients
    exchange_class = getattr(module, exchange_id, None)
    if exchange_id not in module.exchanges or exchange_class is None:
        kind = "ccxt.pro (streaming)" if streaming else "ccxt"
        raise DataError(
            f"exchange {exchange_id!r} is not a {kind} exchange id; expected e.g. 'bybit'"
        )
    if stream_url is not None and not streaming:
        raise ValueError(f"stream_url {stream_url!r} is given for a client that does not stream")
    config: dict[str, Any] = {"enableRateLimit": True, "timeout": timeout_ms}
    if exchange_id == "bybit":
        config["options"] = {"fetchMarkets": {"types": BYBIT_MARKET_TYPES}}
    exchange = exchange_class(config)
    exchange.on_json_response = _strict_json
    rest = {name for name, url in exchange.urls["api"].items() if isinstance(url, str)}
    if api_urls is not None:
        urls = api_urls if isinstance(api_urls, Mapping) else dict.fromkeys(rest, api_urls)
        exchange.urls["api"] = {**exchange.urls["api"], **urls}
    if stream_url is not None:
        exchange.urls["api"]["ws"] = _rebased(exchange.urls["api"]["ws"], stream_url)
    return exchange


def _rebased(urls: str | dict[str, Any], base: str) -> str | dict[str, Any]:
    # The URL (or nested mapping of URLs) with scheme and host replaced by `base`'s.
    if isinstance(urls, str):
        return base.rstrip("/") + urlsplit(urls).path
    return {name: _rebased(url, base) for name, url in urls.items()}


def _retry_hint_s(exchange: ccxt.Exchange, error: Exception) -> float:
    # Seconds the exchange asked us to wait (Retry-After, or Bybit's limit reset time).
    if not isinstance(error, ccxt.RateLimitExceeded):
        return 0.0
    headers = exchange.last_response_headers or {}
    try:
        if "Retry-After" in headers:
            return float(headers["Retry-After"])
        if "X-Bapi-Limit-Reset-Timestamp" in headers:
            return (int(headers["X-Bapi-Limit-Reset-Timestamp"]) - clock_ms()) / 1000
    except ValueError:
        pass
    return 0.0


def _with_retries(
    exchange: ccxt.Exchange, request: Callable[[], list[list[Any]]], what: str, retry: RetryPolicy
) -> list[list[Any]]:
    # Run `request`, repeating it on retryable errors; a page still short at the end is kept.
    attempts = retry.retries + 1
    for attempt in range(1, attempts + 1):
        try:
            return request()
        except _RETRIED as exc:
            last = exc
            if attempt == attempts:
                break
            time.sleep(retry.delay_s(attempt, _retry_hint_s(exchange, exc)))
        except ccxt.BaseError as exc:
            raise ExchangeError(
                f"{exchange.id} refused {what}: {type(exc).__name__}: {exc}"
            ) from exc
    if isinstance(last, _ShortPage) and last.rows:
        # The exchange keeps leaving out the same bars: a real gap, for validation to judge.
        return last.rows
    reason = str(last) if isinstance(last, _ShortPage) else f"{type(last).__name__}: {last}"
    raise ExchangeError(
        f"{exchange.id}: {what} failed after {attempts} attempts; last error: {reason}"
    ) from last


def _collect(
    exchange: ccxt.Exchange,
    fetch_window: Callable[[int, int], list[list[Any]]],
    start: int,
    end: int,
    interval: int,
    page: int,
    expected_from: int | None,
    what: str,
    retry: RetryPolicy,
    progress: Progress | None,
) -> list[list[Any]]:
    # Page through [start, end] (open times, inclusive) and return the rows in order.
    collected: list[list[Any]] = []
    total = (end - start) // interval + 1
    cursor = start
    while cursor <= end:
        window_end = min(cursor + (page - 1) * interval, end)
        final = window_end == end
        # Once a bar has arrived, every later bar of the grid is expected.
        first_expected = expected_from if expected_from is not None or not collected else cursor

        window = f"{what} from {iso_utc(cursor)} to {iso_utc(window_end)}"
        request = partial(
            _fetch_page, fetch_window, cursor, window_end, interval, first_expected, final
        )
        collected.extend(_with_retries(exchange, request, window, retry))
        if progress is not None:
            progress((window_end - start) // interval + 1, total)
        cursor = window_end + interval
    return collected


def _fetch_page(
    fetch_window: Callable[[int, int], list[list[Any]]],
    lo: int,
    hi: int,
    interval: int,
    expected_from: int | None,
    final: bool,
) -> list[list[Any]]:
    # One page of rows opening in [lo, hi]; _ShortPage if it leaves out bars.
    rows = [row for row in fetch_window(lo, hi) if lo <= row[0] <= hi]
    _check_page(rows, lo, hi, interval, expected_from, final)
    return rows


def _check_page(
    rows: list[list[Any]], lo: int, hi: int, interval: int, expected_from: int | None, final: bool
) -> None:
    # Raise _ShortPage if the page leaves out bars the exchange should have.
    first = max(lo, expected_from) if expected_from is not None else (rows[0][0] if rows else None)
    if first is None or first > hi:
        return
    last = rows[-1][0] if final and rows else hi
    expected = (last - first) // interval + 1
    stamps = [row[0] for row in rows if row[0] >= first]
    if len(stamps) != expected or (stamps and (stamps[0] != first or stamps[-1] != last)):
        raise _ShortPage(
            f"the exchange returned {len(stamps)} of the {expected} rows from "
            f"{iso_utc(first)} to {iso_utc(last)}",
            rows,
        )


def _load_markets(exchange: ccxt.Exchange, retry: RetryPolicy) -> None:
    def request() -> list[list[Any]]:
        exchange.load_markets()
        return []

    _with_retries(exchange, request, "loading the markets", retry)


def check_reachable(exchange: ccxt.Exchange) -> None:
    """Load the exchange's markets in a single attempt, so that a missing network fails at once.

    Raises
    ------
    ExchangeError
        If the request fails; it is not retried.
    """
    _load_markets(exchange, RetryPolicy(retries=0))


def _load_market(exchange: ccxt.Exchange, symbol: str, retry: RetryPolicy) -> dict[str, Any]:
    # Load the exchange's markets (with retries) and return the one named `symbol`.
    _load_markets(exchange, retry)
    if symbol not in exchange.markets:
        raise DataError(
            f"{exchange.id} has no market {symbol}; expected one of the "
            f"{len(exchange.markets)} markets it lists (check the symbol and the market)"
        )
    return exchange.markets[symbol]


def _last_wanted(until_ms: int | None, interval: int, last_known: int) -> int:
    # The last open time to fetch: before `until` (exclusive) and no later than `last_known`.
    if until_ms is None:
        return last_known
    return min((until_ms - 1) // interval * interval, last_known)


def _last_closed_bar(interval: int, now: int | None) -> int:
    return last_closed_open_ms(clock_ms() if now is None else now, interval)


def _last_settlement(interval: int, now: int | None) -> int:
    return (clock_ms() if now is None else now) // interval * interval


def fetch_ohlcv(
    exchange: ccxt.Exchange,
    key: SeriesKey,
    since_ms: int,
    until_ms: int | None = None,
    progress: Progress | None = None,
    retry: RetryPolicy = RetryPolicy(),
    now_ms: int | None = None,
) -> pd.DataFrame:
    """Return the closed bars of ``key`` opening in ``[since_ms, until_ms)``.

    Parameters
    ----------
    exchange : ccxt.Exchange
        A client from ``make_exchange``.
    key : SeriesKey
        The market and timeframe.
    since_ms : int
        The earliest bar open time wanted (rounded up to the grid).
    until_ms : int, optional
        Bars opening at or after this are not fetched; defaults to now.
    progress : callable, optional
        Called as ``progress(bars_done, bars_total)`` after every page.
    retry : RetryPolicy
        Retries of every request.
    now_ms : int, optional
        The clock deciding which bars have closed; the real time when not given.

    Returns
    -------
    pandas.DataFrame
        Candles in the store schema, not yet validated.
    """
    interval = key.interval_ms
    end = _last_wanted(until_ms, interval, _last_closed_bar(interval, now_ms))

    def fetch_window(lo: int, hi: int) -> list[list[Any]]:
        return exchange.fetch_ohlcv(
            key.ccxt_symbol, key.timeframe, since=lo, limit=OHLCV_PAGE, params={"until": hi}
        )

    what = f"{key.timeframe} candles of {key.ccxt_symbol}"
    # Every bar is expected from the listing on; funding may start some settlements later.
    return _fetch_series(
        exchange, key, since_ms, end, OHLCV_PAGE, fetch_window, what, True, retry, progress
    )


def fetch_funding(
    exchange: ccxt.Exchange,
    key: FundingKey,
    since_ms: int,
    until_ms: int | None = None,
    progress: Progress | None = None,
    retry: RetryPolicy = RetryPolicy(),
    now_ms: int | None = None,
) -> pd.DataFrame:
    """Return the funding settlements of ``key`` in ``[since_ms, until_ms)``.

    Parameters are those of ``fetch_ohlcv``; the grid is the 8-hour settlement.

    Returns
    -------
    pandas.DataFrame
        Columns ``timestamp`` (settlement time) and ``rate``, not yet validated.
    """
    interval = key.interval_ms
    end = _last_wanted(until_ms, interval, _last_settlement(interval, now_ms))

    def fetch_window(lo: int, hi: int) -> list[list[Any]]:
        history = exchange.fetch_funding_rate_history(
            key.ccxt_symbol, since=lo, limit=FUNDING_PAGE, params={"until": hi}
        )
        return [[entry["timestamp"], entry["fundingRate"]] for entry in history]

    what = f"funding rates of {key.ccxt_symbol}"
    return _fetch_series(
        exchange, key, since_ms, end, FUNDING_PAGE, fetch_window, what, False, retry, progress
    )


def _fetch_series(
    exchange: ccxt.Exchange,
    key: SeriesKey | FundingKey,
    since_ms: int,
    end: int,
    page: int,
    fetch_window: Callable[[int, int], list[list[Any]]],
    what: str,
    every_row_from_listing: bool,
    retry: RetryPolicy,
    progress: Progress | None,
) -> pd.DataFrame:
    # Page through the rows of `key` from `since_ms` (or the listing, if later) to `end`.
    interval = key.interval_ms
    columns = CANDLE_COLUMNS if isinstance(key, SeriesKey) else FUNDING_COLUMNS
    start = -(-since_ms // interval) * interval
    listing = None
    if end >= start:
        listed = _load_market(exchange, key.ccxt_symbol, retry).get("created")
        listing = None if not listed else -(-int(listed) // interval) * interval
    if listing is not None:
        start = max(start, listing)
    if end < start:
        return _frame([], columns)
    expected_from = listing if every_row_from_listing else None
    rows = _collect(
        exchange, fetch_window, start, end, interval, page, expected_from, what, retry, progress
    )
    return _frame(rows, columns)


def _frame(rows: list[list[Any]], columns: tuple[str, ...]) -> pd.DataFrame:
    values = np.array([row[1:] for row in rows], dtype=np.float64).reshape(
        len(rows), len(columns) - 1
    )
    frame = pd.DataFrame(values, columns=list(columns[1:]))
    frame.insert(0, "timestamp", np.array([row[0] for row in rows], dtype=np.int64))
    return frame


def _missing_ranges(
    existing: pd.DataFrame | None, start: int, end: int, interval: int
) -> list[tuple[int, int]]:
    # The ranges [lo, hi) before and after what the store holds.
    if existing is None or existing.empty:
        return [(start, end)]
    first, last = int(existing["timestamp"].iloc[0]), int(existing["timestamp"].iloc[-1])
    ranges = []
    if start < first:
        ranges.append((start, first))
    if end > last + interval:
        ranges.append((last + interval, end))
    return ranges


def update_candles(
    store: CandleStore,
    exchange: ccxt.Exchange,
    key: SeriesKey,
    since_ms: int,
    until_ms: int | None = None,
    max_gap_bars: int = DEFAULT_MAX_GAP_BARS,
    progress: Progress | None = None,
    retry: RetryPolicy = RetryPolicy(),
    now_ms: int | None = None,
) -> UpdateResult:
    """Fetch the bars of ``key`` the store lacks in ``[since_ms, until_ms)`` and store them.

    Only the ranges before the first and after the last stored bar are
    fetched. The merged series is validated (a gap longer than
    ``max_gap_bars`` raises a ``DataError``) and written in one atomic write;
    on any error the store is left as it was.

    Returns
    -------
    UpdateResult
        The file, the rows fetched and the rows and range it now holds.
    """
    existing = store.load(key, max_gap_bars=max_gap_bars) if store.exists(key) else None
    last = _last_wanted(until_ms, key.interval_ms, _last_closed_bar(key.interval_ms, now_ms))
    end = last + key.interval_ms
    fetched = [
        fetch_ohlcv(exchange, key, lo, hi, progress, retry, now_ms)
        for lo, hi in _missing_ranges(existing, since_ms, end, key.interval_ms)
    ]
    stored = existing
    if any(len(frame) for frame in fetched):
        stored = store.append(key, pd.concat(fetched, ignore_index=True), "error", max_gap_bars)
    return _updated(store.path(key), fetched, stored)


def update_funding(
    store: CandleStore,
    exchange: ccxt.Exchange,
    key: FundingKey,
    since_ms: int,
    until_ms: int | None = None,
    progress: Progress | None = None,
    retry: RetryPolicy = RetryPolicy(),
    now_ms: int | None = None,
) -> UpdateResult:
    """Fetch the funding settlements the store lacks and store them, as ``update_candles``."""
    existing = (
        store.load_funding(key.exchange, key.market, key.symbol) if store.exists(key) else None
    )
    last = _last_wanted(until_ms, key.interval_ms, _last_settlement(key.interval_ms, now_ms))
    end = last + key.interval_ms
    fetched = [
        fetch_funding(exchange, key, lo, hi, progress, retry, now_ms)
        for lo, hi in _missing_ranges(existing, since_ms, end, key.interval_ms)
    ]
    stored = existing
    if any(len(frame) for frame in fetched):
        stored = store.append_funding(key, pd.concat(fetched, ignore_index=True))
    return _updated(store.path(key), fetched, stored)


def _updated(path: Path, fetched: list[pd.DataFrame], stored: pd.DataFrame | None) -> UpdateResult:
    # What an update fetched, and what the file now holds.
    rows = 0 if stored is None else len(stored)
    first = None if not rows else int(stored["timestamp"].iloc[0])
    last = None if not rows else int(stored["timestamp"].iloc[-1])
    return UpdateResult(path, sum(len(frame) for frame in fetched), rows, first, last)
