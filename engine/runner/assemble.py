"""A strategy file turned into the runner's parts: components, costs, schedule, kernel settings.

Also the representation of every bar, by the strategy's encoder or baseline.
Backtests, audits and paper sessions build their parts here, so all of them
read a strategy file the same way.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from engine.config import FinetuneSpec, StrategyConfig
from engine.data.symbols import timeframe_ms
from engine.data.times import day_range_ms, day_start_ms
from engine.errors import ConfigError
from engine.runner.decisions import Pipeline
from engine.runner.schedule import RefitSchedule
from engine.sim.run import MarketSpec, SimConfig
from engine.ssl.infer import BLOCK_BARS
from engine.strategy.base import Costs, Portfolio, load_component
from engine.strategy.representations import (
    cached,
    cached_model_representations,
    feature_representations,
    finetuned_representations,
    hash_candles,
    load_unseen_model,
    model_hash,
    pca_representations,
    supervised_representations,
)


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
        return z, {"model": model.name, "model_sha256": model_hash(model)}
    spec = config.representation
    if spec.kind == "features":
        return feature_representations(candles, spec.extras), {"representation": "features"}
    cut = day_range_ms(spec.fit_end, spec.fit_end)[1]
    if cut > start_ms:
        raise ConfigError(
            f"representation.fit_end {spec.fit_end} must be before out_of_sample.start"
        )
    fit_stop = int(np.searchsorted(candles["timestamp"].to_numpy(), cut))
    if spec.kind == "finetuned":
        return _finetuned(config, candles, start_ms, fit_stop, models_dir, cache_dir)
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


def _finetuned(
    config: StrategyConfig,
    candles: pd.DataFrame,
    start_ms: int,
    fit_stop: int,
    models_dir: Path,
    cache_dir: Path | None,
) -> tuple[np.ndarray, dict]:
    # The strategy's encoder fine-tuned on the labelled bars fit_start..fit_end, cached by
    # the settings, the model and the candles.
    spec = config.representation
    model = load_unseen_model(models_dir, spec.encoder, start_ms, "out_of_sample.start")
    first = int(np.searchsorted(candles["timestamp"].to_numpy(), day_start_ms(spec.fit_start)))
    digest = hashlib.sha256(
        f"{spec.model_dump_json()}|{model_hash(model)}|{config.seed}".encode()
    ).hexdigest()[:20]
    settings = spec.model_dump(include=set(FinetuneSpec.model_fields))
    z = cached(
        cache_dir,
        f"finetuned-{digest}-{hash_candles(candles)[:20]}-blocks{BLOCK_BARS}",
        lambda: finetuned_representations(
            model,
            candles,
            timeframe_ms(config.market.timeframe),
            slice(first, fit_stop),
            spec.horizon,
            spec.threshold,
            settings,
            config.seed,
        ),
    )
    source = {"representation": "finetuned", "model": model.name, "settings_sha256": digest}
    return z, {**source, "model_sha256": model_hash(model)}


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


def strategy_costs(config: StrategyConfig) -> Costs:
    """Return the costs the components weigh, from the strategy's ``costs``."""
    return Costs(maker_fee=config.costs.maker_fee, taker_fee=config.costs.taker_fee)


def strategy_schedule(config: StrategyConfig, anchor: int) -> RefitSchedule:
    """Return the strategy's refit schedule, anchored at row ``anchor``."""
    wf = config.walk_forward
    return RefitSchedule(anchor, wf.fit_bars, wf.refit_every, wf.embargo_bars)


def check_schedule(config: StrategyConfig, anchor: int) -> RefitSchedule:
    """Return the strategy's refit schedule anchored at row ``anchor``, once checked.

    Raises
    ------
    ConfigError, DataError
        If the embargo is shorter than a component's label horizon, or the
        history before ``anchor`` is too short to fit.
    """
    schedule = strategy_schedule(config, anchor)
    schedule.check(build_pipeline(config).horizon())
    return schedule


def sim_settings(config: StrategyConfig, pipeline: Pipeline) -> tuple[SimConfig, list[MarketSpec]]:
    """Return the event loop's costs and rules, and one market spec per symbol.

    A limit order rests for the ``pipeline``'s timing's ``limit_ttl`` bars.
    """
    sim_config = SimConfig(
        maker_fee=config.costs.maker_fee,
        taker_fee=config.costs.taker_fee,
        slippage_bps=config.costs.slippage_bps,
        liquidation_fee=config.costs.liquidation_fee,
        maintenance_margin=config.margin.maintenance_margin,
        max_leverage=config.margin.max_leverage,
        sizing="cash" if config.market.market == "spot" else "margin",
        spot=config.market.market == "spot",
        limit_ttl=pipeline.limit_ttl,
    )
    markets = [
        MarketSpec(**config.rules[s].model_dump()) if s in config.rules else MarketSpec()
        for s in config.market.symbols
    ]
    return sim_config, markets
