"""End to end: the real ccxt bybit client against the fake Bybit server, real candles."""

from __future__ import annotations

import time
from functools import partial

import pandas as pd
import pytest
from fakes.bybit import FakeBybit

from engine import cli
from engine.data import feed
from engine.data.feed import make_exchange, update_candles, update_funding
from engine.data.retry import RetryPolicy
from engine.data.store import CandleStore, FundingKey, SeriesKey

KEY = SeriesKey("bybit", "linear", "BTCUSDT", "1h")
FUNDING = FundingKey("bybit", "linear", "BTCUSDT")
TWO_YEARS_MS = 730 * 86_400_000
FAST = RetryPolicy(retries=2, base_delay_s=0.01)


@pytest.fixture(scope="module")
def source(shared_data):
    return pd.read_parquet(shared_data / KEY.filename)


@pytest.fixture(scope="module")
def funding_source(shared_data):
    return pd.read_parquet(shared_data / FUNDING.filename)


@pytest.fixture
def fake(source, funding_source):
    with FakeBybit(now_ms=int(source["timestamp"].iloc[-1]) + 1_800_000) as server:
        server.add_candles("linear", "BTCUSDT", "1h", source)
        server.add_funding("BTCUSDT", funding_source)
        yield server


@pytest.mark.slow
def test_two_years_of_hourly_bars_equal_the_source_bit_for_bit(fake, source, tmp_path):
    store = CandleStore(tmp_path)
    since = int(source["timestamp"].iloc[0])
    began = time.perf_counter()
    result = update_candles(
        store,
        make_exchange(api_urls=fake.url),
        KEY,
        since,
        since + TWO_YEARS_MS,
        retry=FAST,
        now_ms=fake.now_ms,
    )
    elapsed = time.perf_counter() - began
    expected = source[source["timestamp"] < since + TWO_YEARS_MS].reset_index(drop=True)
    written = pd.read_parquet(store.path(KEY))
    assert result.fetched == len(expected) == 17_520
    pd.testing.assert_frame_equal(written, expected, check_exact=True)
    assert written.dtypes.tolist() == source.dtypes.tolist()
    assert elapsed < 30, f"fetching two years took {elapsed:.1f} s"
    assert set(fake.paths) == {"/v5/market/instruments-info", "/v5/market/kline"}


@pytest.mark.slow
def test_whole_history_then_the_open_bar_is_not_stored(fake, source, tmp_path):
    store = CandleStore(tmp_path)
    # The fake's clock stands inside the last source bar: that bar is still open.
    update_candles(store, make_exchange(api_urls=fake.url), KEY, 0, retry=FAST, now_ms=fake.now_ms)
    pd.testing.assert_frame_equal(store.load(KEY), source.iloc[:-1], check_exact=True)
    fake.add_candles("linear", "BTCUSDT", "1h", _extended(source, 4))
    fake.now_ms += 3 * 3_600_000
    client = make_exchange(api_urls=fake.url)
    result = update_candles(store, client, KEY, 0, retry=FAST, now_ms=fake.now_ms)
    assert (result.fetched, result.rows) == (3, len(source) + 2)
    assert result.last_ms == source["timestamp"].iloc[-1] + 2 * 3_600_000
    kline = [r.query for r in fake.requests if r.path == "/v5/market/kline"]
    assert int(kline[-1]["start"]) == source["timestamp"].iloc[-1]


def _extended(source, bars):
    # The source followed by `bars` flat bars at its last close.
    last = source.iloc[-1]
    extra = pd.DataFrame(
        {
            "timestamp": last["timestamp"].astype("int64") + 3_600_000 * (1 + pd.RangeIndex(bars)),
            **dict.fromkeys(["open", "high", "low", "close"], last["close"]),
            "volume": 1.0,
        }
    )
    return pd.concat([source, extra], ignore_index=True)


def test_funding_history_equals_the_source(fake, funding_source, tmp_path):
    store = CandleStore(tmp_path)
    since, last = funding_source["timestamp"].iloc[[0, -1]].astype(int)
    exchange = make_exchange(api_urls=fake.url)
    # The funding history ends before the candles do: fetch up to its end.
    result = update_funding(store, exchange, FUNDING, 0, last + 1, retry=FAST, now_ms=fake.now_ms)
    assert result.fetched == len(funding_source) == 2_406
    pd.testing.assert_frame_equal(
        store.load_funding("bybit", "linear", "BTCUSDT"), funding_source, check_exact=True
    )
    requests = [r for r in fake.requests if r.path == "/v5/market/funding/history"]
    assert len(requests) == 13 and all(int(r.query["limit"]) == 200 for r in requests)


@pytest.mark.slow
def test_cli_fetch_import_ls_through_the_fake(fake, source, tmp_path, monkeypatch, run_cli):
    monkeypatch.setattr(feed, "make_exchange", partial(make_exchange, api_urls=fake.url))
    monkeypatch.setattr(cli.console, "width", 200)
    store = tmp_path / "store"
    done = run_cli(
        "data",
        "fetch",
        "--symbol",
        "BTCUSDT",
        "--since",
        "2024-01-01",
        "--until",
        "2024-02-01",
        "--funding",
        "--store",
        store,
    )
    assert done.exit_code == 0, done.stderr
    assert "fetched 744 rows; holds 744 from 2024-01-01 00:00 to 2024-01-31 23:00" in done.stdout
    assert "fetched 93 rows" in done.stdout
    candles = CandleStore(store).load(KEY)
    in_january = source["timestamp"].between(1_704_067_200_000, 1_706_745_599_999)
    pd.testing.assert_frame_equal(
        candles, source[in_january].reset_index(drop=True), check_exact=True
    )

    feather = tmp_path / "ETH_USDT_USDT-1h-futures.feather"
    dates = pd.to_datetime(source["timestamp"], unit="ms", utc=True)
    source.iloc[:100].drop(columns="timestamp").assign(date=dates.iloc[:100]).to_feather(feather)
    done = run_cli("data", "import", feather, "--exchange", "bybit", "--store", store)
    assert done.exit_code == 0, done.stderr
    assert "imported 100 rows" in done.stdout

    done = run_cli("data", "ls", "--store", store)
    assert (
        "bybit_linear_ETHUSDT_1h.parquet" in done.stdout
        and "bybit_linear_BTCUSDT_funding_8h" in done.stdout
    )


def test_cli_errors_are_one_line_without_traceback(fake, tmp_path, monkeypatch, run_cli):
    monkeypatch.setattr(feed, "make_exchange", partial(make_exchange, api_urls=fake.url))
    done = run_cli(
        "data", "fetch", "--symbol", "XRPUSDT", "--since", "2024-01-01", "--store", tmp_path
    )
    assert done.exit_code == 2
    assert "error:" in done.stderr and "has no market XRP/USDT:USDT" in done.stderr
    assert "Traceback" not in done.stderr and list(tmp_path.iterdir()) == []
    done = run_cli(
        "data", "fetch", "--symbol", "BTCUSDT", "--since", "yesterday", "--store", tmp_path
    )
    assert done.exit_code == 2 and "is not an ISO date" in done.stderr


@pytest.mark.slow
def test_cli_sync_fetches_every_series_a_data_file_names(
    fake, source, tmp_path, monkeypatch, run_cli
):
    monkeypatch.setattr(feed, "make_exchange", partial(make_exchange, api_urls=fake.url))
    store = tmp_path / "store"
    data_file = tmp_path / "configs" / "data" / "btc.yaml"
    data_file.parent.mkdir(parents=True)
    data_file.write_text(
        f"store: {{path: {store}}}\n"
        "series: {exchange: bybit, market: linear, symbols: [BTCUSDT], timeframe: 1h}\n"
        "range: {start: 2024-03-01, end: 2024-03-31}\n"
    )
    done = run_cli("data", "sync", data_file)
    assert done.exit_code == 0, done.stderr
    candles = CandleStore(store).load(KEY)
    in_march = source["timestamp"].between(1_709_251_200_000, 1_711_929_599_999)
    pd.testing.assert_frame_equal(
        candles, source[in_march].reset_index(drop=True), check_exact=True
    )
    rates = CandleStore(store).load_funding("bybit", "linear", "BTCUSDT")
    assert len(rates) == 31 * 3
