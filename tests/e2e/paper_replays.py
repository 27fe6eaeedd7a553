"""Replays of paper sessions, from the parquet file or through the fake Bybit server."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fakes.exchange import fake_client, fake_exchange

from engine.config import StrategyConfig
from engine.data.retry import RetryPolicy
from engine.data.store import CandleStore, SeriesKey
from engine.paper.journal import TABLES
from engine.paper.session import PaperSession, SessionOptions
from engine.paper.sources import ReplayClock, replay_source

REPO_ROOT = Path(__file__).resolve().parents[2]
HOUR = 3_600_000
CANDLES = "bybit_linear_BTCUSDT_1h.parquet"
FUNDING = "bybit_linear_BTCUSDT_funding_8h.parquet"
PUBLIC = {
    "/v5/market/kline",
    "/v5/market/time",
    "/v5/market/instruments-info",
    "/v5/market/funding/history",
    "/v5/public/linear",  # the public kline stream of a session with a bar stream
}


def _ms(day: str) -> int:
    return int(pd.Timestamp(day, tz="UTC").value // 1_000_000)


#: Representations fitted before the replays' first bars, cheap to fit and to apply.
REPRESENTATIONS = {
    "pca": {"kind": "pca", "window": 24, "dims": 8, "extras": ["rsi_14"], "fit_end": "2025-04-30"},
    "supervised": {
        "kind": "supervised",
        "params": {"output_dims": 8, "hidden_dims": 8, "depth": 3},
        "extras": ["rsi_14"],
        "fit_end": "2025-04-30",
        "iters": 5,
        "crop_length": 64,
    },
}


def _config(start: str, end: str, encoder: str | None = None) -> StrategyConfig:
    # ssl_cost with a shorter walk-forward, on the features representation unless an
    # encoder (a model in models/) or a representation of REPRESENTATIONS is named.
    spec = yaml.safe_load((REPO_ROOT / "strategies" / "ssl_cost.yaml").read_text())
    spec["encoder"] = None if encoder in REPRESENTATIONS else encoder
    if encoder is None:
        spec["representation"] = {"kind": "features", "extras": ["volatility_24", "rsi_14"]}
    elif encoder in REPRESENTATIONS:
        spec["representation"] = REPRESENTATIONS[encoder]
    spec["walk_forward"] = {"fit_bars": 2000, "refit_every": 240, "embargo_bars": 5}
    spec["out_of_sample"] = {"start": start, "end": end}
    return StrategyConfig(**spec)


def strategy_file(config: StrategyConfig, store: CandleStore, folder: Path) -> Path:
    # `config` written as `folder/paper.yaml`, its warm-up bars read from `store`.
    spec = config.model_dump(mode="json", by_alias=True)
    spec["store"]["path"] = str(store.root)
    path = folder / "paper.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def store_before(
    shared_data: Path, folder: Path, day: str, symbols: tuple[str, ...] = ("BTCUSDT",)
) -> CandleStore:
    # A store in `folder` holding the real candles of `symbols` before `day` and their real
    # funding rates.
    store = CandleStore(folder)
    for symbol in symbols:
        key = SeriesKey("bybit", "linear", symbol, "1h")
        candles = pd.read_parquet(shared_data / key.filename)
        store.write(key, candles[candles.timestamp < _ms(day)])
        funding = FUNDING.replace("BTCUSDT", symbol)
        shutil.copy(shared_data / funding, store.root / funding)
    return store


@pytest.fixture
def store(shared_data, tmp_path) -> CandleStore:
    return store_before(shared_data, tmp_path / "store", "2025-06-01")


def _replay(
    config,
    store,
    shared_data,
    journal_dir,
    until_ms,
    session="s",
    outage=None,
    feed="rest",
    through="exchange",
    candles=None,
    **kw,
):
    # Replay a session up to `until_ms`; return its journal's tables and the paths requested.
    # Through "exchange" the real ccxt client asks the fake Bybit server (with feed "ws" the
    # session watches the fake's stream); through "file" the replay source reads the parquet
    # file, as `engine paper run --replay` does, and no path is requested. `candles` is the
    # replayed file or folder (the BTCUSDT file by default). `kw` overrides SessionOptions.
    options = SessionOptions(
        session,
        journal_dir=journal_dir,
        models_dir=REPO_ROOT / "models",
        until_ms=until_ms,
        retry=RetryPolicy(retries=1, base_delay_s=0.0, max_delay_s=0.0),
        outage_pause_ms=HOUR,
    )
    options = replace(options, **kw)
    candles = candles or shared_data / CANDLES
    if through == "file":
        clock = ReplayClock(0)
        source = replay_source(config, candles, store, clock)
        paper = PaperSession(config, options, source, clock, store)
        clock.jump(paper.last_ts + paper.interval)
        paper.run()
        tables = {name: paper.journal.table(name) for name in TABLES}
        paper.close()
        return tables, []
    with fake_exchange(config, candles, store, options.retry) as (
        fake,
        source,
        clock,
    ):
        stream = fake_client(fake, config.market.exchange, True) if feed == "ws" else None
        paper = PaperSession(config, options, source, clock, store, stream)
        clock.jump(paper.last_ts + paper.interval)
        if outage is not None:
            outage(paper, fake)
        paper.run()
        tables = {name: paper.journal.table(name) for name in TABLES}
        paper.close()
        return tables, fake.paths
