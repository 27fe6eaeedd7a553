"""A historical backtest of a strategy file, from candles to a run folder.

``run_backtest`` loads the candles (fetching through ccxt when the store lacks
them), computes the causal representation of every bar, fits the components
walk-forward, runs the event loop over the out-of-sample bars and computes the
metrics. ``write_run`` writes the run folder. Headline metrics cover the
out-of-sample bars only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from engine.atomic import write_text
from engine.config import StrategyConfig
from engine.data.store import CandleStore, FundingKey, SeriesKey
from engine.data.symbols import timeframe_ms
from engine.data.times import day_range_ms
from engine.errors import ConfigError, DataError, EngineError
from engine.report.metrics import daily_returns, direction_accuracy, summarise
from engine.sim.enums import Kind, Liquidity, Reason, Side
from engine.sim.run import MarketSpec, SimConfig, SimResult, align_funding, simulate
from engine.ssl.infer import BLOCK_BARS
from engine.strategy.base import History, Portfolio, load_component
from engine.strategy.features import forward_return
from engine.strategy.representations import (
    cached,
    cached_model_representations,
    default_cache_dir,
    feature_representations,
    hash_candles,
    load_unseen_model,
    model_hash,
    pca_representations,
    supervised_representations,
)
from engine.strategy.walkforward import (
    Decisions,
    Pipeline,
    check_windows,
    portfolio_weights,
    walk_forward,
)

OHLC = ("open", "high", "low", "close")
#: Set to 1 to never fetch missing candles from the exchange.
OFFLINE_ENV = "ENGINE_OFFLINE"
#: Evaluation horizon of direction accuracy for signals without a label horizon.
DEFAULT_ACCURACY_HORIZON = 5

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Backtest:
    """Everything a backtest produced, ready for the run folder."""

    config: StrategyConfig
    timestamps: np.ndarray
    close: np.ndarray
    fitted: Fitted
    sim: SimResult
    metrics: dict
    daily: pd.Series
    benchmark: pd.Series
    inputs: dict
    timings: dict = field(default_factory=dict)


def load_candles(
    config: StrategyConfig, store: CandleStore
) -> tuple[list[SeriesKey], list[pd.DataFrame]]:
    """Return the candles of every symbol, fetching missing ones, on their common bars.

    Several symbols are cut to the bars they all have; each series was
    validated on load, so the common bars are gap-free if the series are.
    """
    market = config.market
    keys = [SeriesKey(market.exchange, market.market, s, market.timeframe) for s in market.symbols]
    frames = []
    for key in keys:
        if not store.exists(key):
            _fetch_missing(config, store, key)
        frames.append(store.load(key, config.store.gap_policy, config.store.max_gap_bars))
    common = frames[0]["timestamp"]
    for frame in frames[1:]:
        common = common[common.isin(frame["timestamp"])]
    if len(common) == 0:
        raise DataError(f"the symbols {', '.join(market.symbols)} have no bar in common")
    frames = [f[f["timestamp"].isin(common)].reset_index(drop=True) for f in frames]
    return keys, frames


def _fetch_missing(config: StrategyConfig, store: CandleStore, key: SeriesKey) -> None:
    # Fetch the series (and its funding rates when they are charged) from the
    # exchange: enough bars before the out-of-sample start for fitting.
    from engine.data.feed import make_exchange, update_candles, update_funding

    if os.environ.get(OFFLINE_ENV) == "1":
        raise DataError(
            f"the store {store.root} has no {key.filename} and {OFFLINE_ENV}=1 forbids fetching "
            "it; point ENGINE_DATA_DIR at a store that has it"
        )
    warmup = config.walk_forward.fit_bars + config.walk_forward.embargo_bars
    start, until = day_range_ms(config.out_of_sample.start, config.out_of_sample.end)
    since = start - 2 * warmup * key.interval_ms
    try:
        client = make_exchange(key.exchange)
        update_candles(store, client, key, since, until)
        if config.costs.funding and key.market == "linear":
            funding = FundingKey(key.exchange, key.market, key.symbol)
            update_funding(store, client, funding, since, until)
    except EngineError as exc:
        raise DataError(
            f"the store {store.root} has no {key.filename} and fetching it failed: {exc}. "
            "Fetch it with `engine data fetch`, or point ENGINE_DATA_DIR at a store that has it"
        ) from None


def _funding(
    config: StrategyConfig, store: CandleStore, key: SeriesKey, timestamps: np.ndarray
) -> tuple[np.ndarray, str | None]:
    # Per-bar funding rates, and the last settlement known (None without funding).
    if not config.costs.funding or key.market != "linear":
        return np.zeros(len(timestamps)), None
    try:
        rates = store.load_funding(key.exchange, key.market, key.symbol)
    except DataError as exc:
        raise DataError(
            f"costs.funding is on but funding rates for {key.symbol} are missing: {exc}. "
            "Fetch them with `engine data fetch --funding`, or set costs.funding: false"
        ) from None
    known_until = pd.Timestamp(int(rates["timestamp"].iloc[-1]), unit="ms", tz="UTC")
    per_bar = align_funding(timestamps, rates["timestamp"].to_numpy(), rates["rate"].to_numpy())
    return per_bar, known_until.isoformat()


def compute_representation(
    config: StrategyConfig,
    candles: pd.DataFrame,
    start_ms: int,
    models_dir: Path,
    cache_dir: Path | None,
) -> tuple[np.ndarray, dict]:
    """Return the representation of every bar and a description of its source.

    Encoders' representations are cached under ``cache_dir`` (None: no cache),
    keyed by the hashes of the model (or baseline settings) and of the candles,
    and by the encoding's block length.
    """
    candles_hash = hash_candles(candles)[:20]
    layout = f"blocks{BLOCK_BARS}"
    interval = timeframe_ms(config.market.timeframe)
    if config.encoder is not None:
        model = load_unseen_model(models_dir, config.encoder, start_ms, "out_of_sample.start")
        z = cached_model_representations(model, candles, interval, cache_dir)
        return z, {"model": config.encoder, "model_sha256": model_hash(model)}
    spec = config.representation
    if spec.kind == "features":
        return feature_representations(candles, spec.extras), {"representation": "features"}
    cut = day_range_ms(spec.fit_end, spec.fit_end)[1]
    if cut > start_ms:
        raise ConfigError(
            f"representation.fit_end {spec.fit_end} must be before out_of_sample.start"
        )
    fit_stop = int(np.searchsorted(candles["timestamp"].to_numpy(), cut))
    if spec.kind == "pca":
        z = pca_representations(candles, fit_stop, spec.window, spec.dims, spec.extras)
        return z, {"representation": "pca"}
    settings = hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:20]
    z = cached(
        cache_dir,
        f"supervised-{settings}-{candles_hash}-{layout}",
        lambda: supervised_representations(
            candles,
            interval,
            fit_stop,
            spec.architecture,
            spec.params,
            spec.extras,
            spec.iters,
            spec.crop_length,
            spec.horizon,
            spec.threshold,
            config.seed,
        ),
    )
    return z, {"representation": "supervised", "settings_sha256": settings}


def build_pipeline(config: StrategyConfig) -> Pipeline:
    """Return fresh instances of the strategy's per-asset components."""
    parts = {
        role: load_component(spec.cls, spec.params, role)
        for role, spec in config.components
        if spec is not None and role != "portfolio"
    }
    return Pipeline(**parts)


def build_portfolio(config: StrategyConfig) -> Portfolio | None:
    """Return the portfolio component, or None (equal weights) when there is none."""
    spec = config.components.portfolio
    if spec is None:
        return None
    if len(config.market.symbols) < 2:
        raise ConfigError("components.portfolio: a portfolio needs at least two market.symbols")
    return load_component(spec.cls, spec.params, "portfolio")


@dataclass(frozen=True)
class Fitted:
    """The representations and walk-forward decisions of every asset."""

    histories: list[History]
    decisions: list[Decisions]
    weights: np.ndarray
    sources: list[dict]


def decide(
    config: StrategyConfig,
    frames: list[pd.DataFrame],
    start: int,
    stop: int,
    models_dir: Path,
    cache_dir: Path | None,
) -> Fitted:
    """Compute every asset's representations and decisions for bars ``start .. stop - 1``."""
    start_ms = int(frames[0]["timestamp"].iloc[start])
    histories, sources = [], []
    for candles in frames:
        z, source = compute_representation(config, candles, start_ms, models_dir, cache_dir)
        histories.append(History.from_candles(candles, z))
        sources.append(source)
    wf = config.walk_forward
    windows = (start, stop, wf.fit_bars, wf.refit_every, wf.embargo_bars)
    portfolio = build_portfolio(config)
    if portfolio is None:
        weights = np.full((stop - start, len(frames)), 1.0 / len(frames))
    else:
        weights = portfolio_weights(histories, portfolio, *windows)
    decisions = [
        walk_forward(history, build_pipeline(config), *windows, scale=weights[:, i])
        for i, history in enumerate(histories)
    ]
    return Fitted(histories, decisions, weights, sources)


def out_of_sample_rows(config: StrategyConfig, timestamps: np.ndarray) -> tuple[int, int]:
    """Return the rows ``[start, stop)`` of the bars in the out-of-sample range."""
    start_ms, stop_ms = day_range_ms(config.out_of_sample.start, config.out_of_sample.end)
    start = int(np.searchsorted(timestamps, start_ms))
    stop = len(timestamps) if stop_ms is None else int(np.searchsorted(timestamps, stop_ms))
    if stop - start < 2:
        first = pd.Timestamp(int(timestamps[0]), unit="ms").date()
        last = pd.Timestamp(int(timestamps[-1]), unit="ms").date()
        raise DataError(
            f"out_of_sample {config.out_of_sample.start} to {config.out_of_sample.end or 'end'} "
            f"holds {max(stop - start, 0)} bars; the data runs from {first} to {last}"
        )
    return start, stop


def run_backtest(
    config: StrategyConfig,
    models_dir: Path = Path("models"),
    store: CandleStore | None = None,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> Backtest:
    """Run a strategy over its out-of-sample range and return the result."""
    say = progress or (lambda _: None)
    store = store or CandleStore(config.store.path)
    cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    say("loading candles")
    keys, frames = load_candles(config, store)
    timestamps = frames[0]["timestamp"].to_numpy()
    start, stop = out_of_sample_rows(config, timestamps)
    wf = config.walk_forward
    check_windows(build_pipeline(config), start, wf.fit_bars, wf.refit_every, wf.embargo_bars)
    funding = [_funding(config, store, key, timestamps[start:stop]) for key in keys]
    timings["load_s"] = time.perf_counter() - clock

    say("computing representations and fitting components walk-forward")
    clock = time.perf_counter()
    fitted = decide(config, frames, start, stop, models_dir, cache_dir)
    timings["representation_and_walk_forward_s"] = time.perf_counter() - clock

    say("running the event loop")
    clock = time.perf_counter()
    sim = _simulate(config, fitted, np.column_stack([rates for rates, _ in funding]))
    timings["event_loop_s"] = time.perf_counter() - clock

    rows = slice(start, stop)
    close, metrics, daily, benchmark = performance(config, fitted, sim, start, stop)
    inputs = {
        "first_bar": _iso(timestamps[start]),
        "last_bar": _iso(timestamps[stop - 1]),
        "assets": [
            {
                "candles": key.filename,
                "candles_sha256": hash_candles(candles),
                "funding_known_until": known,
                **source,
            }
            for key, candles, (_, known), source in zip(
                keys, frames, funding, fitted.sources, strict=True
            )
        ],
    }
    return Backtest(
        config=config,
        timestamps=timestamps[rows],
        close=close,
        fitted=fitted,
        sim=sim,
        metrics=metrics,
        daily=daily,
        benchmark=benchmark,
        inputs=inputs,
        timings=timings,
    )


def performance(
    config: StrategyConfig, fitted: Fitted, sim: SimResult, start: int, stop: int
) -> tuple[np.ndarray, dict, pd.Series, pd.Series]:
    """Return the closes, metrics, daily returns and buy-and-hold benchmark of rows ``start:stop``.

    The direction accuracy counts only forward returns that end before ``stop``.
    """
    rows = slice(start, stop)
    timestamps = fitted.histories[0].timestamp
    close = np.column_stack([h.close[rows] for h in fitted.histories])
    first_open = np.array([h.open[start] for h in fitted.histories])
    horizon = build_pipeline(config).signal.horizon or DEFAULT_ACCURACY_HORIZON
    accuracy = direction_accuracy(
        np.concatenate([d.outputs["score"] for d in fitted.decisions]),
        np.concatenate([forward_return(h.close[:stop], horizon)[rows] for h in fitted.histories]),
    )
    capital = config.initial_capital
    daily = daily_returns(timestamps[rows], sim.equity, capital)
    hold = capital * (close / first_open).mean(axis=1)
    benchmark = daily_returns(timestamps[rows], hold, capital).rename("benchmark")
    metrics = summarise(daily, sim.equity, capital, sim.fills, sim.ledger, accuracy)
    metrics["benchmark_return"] = float(hold[-1] / capital - 1.0)
    metrics["bars"] = stop - start
    return close, metrics, daily, benchmark


def sim_settings(config: StrategyConfig) -> tuple[SimConfig, list[MarketSpec]]:
    """Return the event loop's costs and rules, and one market spec per symbol."""
    timing = build_pipeline(config).timing
    sim_config = SimConfig(
        maker_fee=config.costs.maker_fee,
        taker_fee=config.costs.taker_fee,
        slippage_bps=config.costs.slippage_bps,
        liquidation_fee=config.costs.liquidation_fee,
        maintenance_margin=config.margin.maintenance_margin,
        max_leverage=config.margin.max_leverage,
        sizing="cash" if config.market.market == "spot" else "margin",
        spot=config.market.market == "spot",
        limit_ttl=max(1, getattr(timing, "max_wait", 1)),
    )
    markets = [
        MarketSpec(**config.rules[s].model_dump()) if s in config.rules else MarketSpec()
        for s in config.market.symbols
    ]
    return sim_config, markets


def _simulate(config: StrategyConfig, fitted: Fitted, funding: np.ndarray) -> SimResult:
    decisions = fitted.decisions
    rows = slice(decisions[0].start, decisions[0].stop)

    def stacked(values) -> np.ndarray:
        return np.column_stack(list(values))

    sim_config, markets = sim_settings(config)
    return simulate(
        fitted.histories[0].timestamp[rows],
        *(stacked(getattr(h, c)[rows] for h in fitted.histories) for c in OHLC),
        stacked(d.target for d in decisions),
        mode=stacked(d.mode for d in decisions),
        risk=stacked(d.risk_scale for d in decisions),
        limit_offset=stacked(d.limit_offset for d in decisions),
        stop_loss=stacked(d.stop_loss for d in decisions),
        take_profit=stacked(d.take_profit for d in decisions),
        funding=funding,
        markets=markets,
        config=sim_config,
        cash=config.initial_capital,
    )


def _iso(ms: int) -> str:
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").isoformat()


def _names(enum, values: np.ndarray) -> list[str]:
    return [enum(int(v)).name.lower() for v in values]


def trades_frame(backtest: Backtest) -> pd.DataFrame:
    """Return one row per fill, with times, symbols and enum names spelled out."""
    fills = backtest.sim.fills
    symbols = np.array(backtest.config.market.symbols)
    return pd.DataFrame(
        {
            "time": [_iso(backtest.timestamps[b]) for b in fills["bar"]],
            "symbol": symbols[fills["asset"]],
            "side": _names(Side, fills["side"]),
            "quantity": fills["quantity"],
            "price": fills["price"],
            "fee": fills["fee"],
            "slippage": fills["slippage"],
            "liquidity": _names(Liquidity, fills["liquidity"]),
            "kind": _names(Kind, fills["kind"]),
            "reason": _names(Reason, fills["reason"]),
        }
    )


def equity_frame(backtest: Backtest) -> pd.DataFrame:
    """Return one row per out-of-sample bar: equity, costs, and per asset its book and decisions.

    Per-asset columns end in ``_<SYMBOL>``.
    """
    sim = backtest.sim
    columns = {
        "time": [_iso(t) for t in backtest.timestamps],
        "equity": sim.equity,
        "cash": sim.cash,
    }
    for column in sim.ledger.dtype.names:
        columns[column] = sim.ledger[column]
    fitted = backtest.fitted
    for i, symbol in enumerate(backtest.config.market.symbols):
        decisions = fitted.decisions[i]
        per_asset = {
            "close": backtest.close[:, i],
            "position": sim.position[:, i],
            "notional": sim.notional[:, i],
            "weight": fitted.weights[:, i],
            "target": decisions.target,
            "risk_scale": decisions.risk_scale,
            "mode": decisions.mode,
            **dict(sorted(decisions.outputs.items())),
        }
        columns.update({f"{name}_{symbol}": values for name, values in per_asset.items()})
    return pd.DataFrame(columns)


def write_run(backtest: Backtest, reports_dir: Path, config_path: Path | None = None) -> Path:
    """Write the run folder ``reports_dir/<strategy>-<UTC time>/`` and return its path.

    The folder is assembled under a hidden name and renamed when complete, so
    a crash leaves no half-written run; on an error the partial folder is
    removed, and an ``OSError`` (a full disk) becomes an ``EngineError``.
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    final = reports_dir / f"{backtest.config.name}-{stamp}"
    building = reports_dir / f".{final.name}.partial"
    try:
        building.mkdir(parents=True, exist_ok=False)
    except OSError as exc:
        raise EngineError(f"cannot write the run folder {final}: {exc}") from None
    try:
        _write_run_files(backtest, building, config_path)
        building.rename(final)
    except BaseException as exc:
        shutil.rmtree(building, ignore_errors=True)
        if isinstance(exc, OSError):
            raise EngineError(f"cannot write the run folder {final}: {exc}") from None
        raise
    return final


def _write_run_files(backtest: Backtest, building: Path, config_path: Path | None) -> None:
    # Every file of a run folder, written into `building`.
    from engine.report.tearsheet import write_tearsheet

    inputs = dict(backtest.inputs)
    if config_path is not None:
        inputs["config_file"] = str(config_path)
        inputs["config_sha256"] = hashlib.sha256(config_path.read_bytes()).hexdigest()
    write_text(building / "metrics.json", json.dumps(backtest.metrics, indent=2) + "\n")
    write_text(building / "inputs.json", json.dumps(inputs, indent=2) + "\n")
    write_text(building / "timings.json", json.dumps(backtest.timings, indent=2) + "\n")
    resolved = backtest.config.model_dump(mode="json", by_alias=True)
    write_text(building / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))
    trades_frame(backtest).to_csv(building / "trades.csv", index=False)
    equity_frame(backtest).to_csv(building / "equity.csv", index=False)
    write_tearsheet(
        backtest.daily,
        backtest.benchmark,
        building / "tearsheet.html",
        title=f"{backtest.config.name}: out-of-sample {inputs['first_bar'][:10]} to "
        f"{inputs['last_bar'][:10]}",
    )
