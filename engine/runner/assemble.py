"""A strategy file turned into the runner's parts: components, costs, schedule, kernel settings.

Also the representation of every bar (``engine.runner.representation``).
Backtests, audits and paper sessions build their parts here, so all of them
read a strategy file the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from engine.config import StrategyConfig
from engine.data.symbols import timeframe_ms
from engine.errors import ConfigError
from engine.runner.decisions import Pipeline
from engine.runner.drift import DriftMonitor
from engine.runner.representation import strategy_representation
from engine.runner.schedule import RefitSchedule
from engine.sim.run import MarketSpec, SimConfig
from engine.strategy.base import Costs, Portfolio, load_component


def compute_representation(
    config: StrategyConfig,
    candles: pd.DataFrame,
    start_ms: int,
    models_dir: Path,
    cache_dir: Path | None,
) -> tuple[np.ndarray, dict]:
    """Return the representation of every bar and a description of its source.

    See ``engine.runner.representation.strategy_representation``; ``cache_dir``
    None: no cache.
    """
    representation = strategy_representation(config, candles, start_ms, models_dir, cache_dir)
    return representation.series(candles), representation.source


def build_pipeline(config: StrategyConfig) -> Pipeline:
    """Return fresh instances of the strategy's per-asset components."""
    parts = {
        role: load_component(spec.cls, spec.params, role)
        for role, spec in config.components
        if spec is not None and role != "portfolio"
    }
    return Pipeline(**parts)


def drift_monitor(config: StrategyConfig, pipeline: Pipeline, dims: int) -> DriftMonitor | None:
    """Return the strategy's drift monitor for ``dims``-column representations, or None."""
    if config.drift is None:
        return None
    interval = timeframe_ms(config.market.timeframe)
    return DriftMonitor(config.drift, dims, pipeline.signal.horizon, interval, config.seed)


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
