"""A historical backtest of a strategy file: the runner over the store's bars.

``run_backtest`` loads the candles from the store, computes the causal
representation of every bar, fits the components walk-forward on the refit
schedule, runs the event loop over the out-of-sample bars and computes the
metrics; ``engine.report.run.write_run`` writes its run folder. Headline
metrics cover the out-of-sample bars only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from engine.config import StrategyConfig
from engine.data.store import CandleStore
from engine.report.run import Backtest, bar_time, performance
from engine.runner.assemble import (
    build_pipeline,
    build_portfolio,
    check_schedule,
    compute_representation,
    sim_settings,
    strategy_costs,
    strategy_schedule,
)
from engine.runner.sources import load_candles, load_funding, out_of_sample_rows
from engine.runner.walkforward import Fitted, portfolio_weights, walk_forward
from engine.sim.run import SimResult, simulate
from engine.strategy.base import History
from engine.strategy.representations import default_cache_dir, hash_candles

OHLC = ("open", "high", "low", "close")

Progress = Callable[[str], None]
#: The stages ``run_backtest`` reports to its ``progress``, in order.
STAGES = (
    "loading candles",
    "computing representations and fitting components walk-forward",
    "running the event loop",
)


def decide(
    config: StrategyConfig,
    frames: list[pd.DataFrame],
    start: int,
    stop: int,
    models_dir: Path,
    cache_dir: Path | None,
) -> Fitted:
    """Compute every asset's representations and decisions for bars ``start .. stop - 1``.

    The caller checks the refit schedule (``check_schedule``) once.
    """
    start_ms = int(frames[0]["timestamp"].iloc[start])
    histories, sources = [], []
    for candles in frames:
        z, source = compute_representation(config, candles, start_ms, models_dir, cache_dir)
        histories.append(History.from_candles(candles, z))
        sources.append(source)
    schedule = strategy_schedule(config, start)
    portfolio = build_portfolio(config)
    costs = strategy_costs(config)
    if portfolio is None:
        weights = np.full((stop - start, len(frames)), 1.0 / len(frames))
    else:
        weights = portfolio_weights(histories, portfolio, schedule, stop, costs)
    decisions = [
        walk_forward(history, build_pipeline(config), schedule, stop, costs, scale=weights[:, i])
        for i, history in enumerate(histories)
    ]
    return Fitted(histories, decisions, weights, sources)


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

    say(STAGES[0])
    keys, frames = load_candles(config, store)
    timestamps = frames[0]["timestamp"].to_numpy()
    start, stop = out_of_sample_rows(config, timestamps)
    check_schedule(config, start)
    funding = [load_funding(config, store, key, timestamps[start:stop]) for key in keys]
    timings["load_s"] = time.perf_counter() - clock

    say(STAGES[1])
    clock = time.perf_counter()
    fitted = decide(config, frames, start, stop, models_dir, cache_dir)
    timings["representation_and_walk_forward_s"] = time.perf_counter() - clock

    say(STAGES[2])
    clock = time.perf_counter()
    sim = _simulate(config, fitted, np.column_stack([rates for rates, _ in funding]))
    timings["event_loop_s"] = time.perf_counter() - clock

    rows = slice(start, stop)
    close, metrics, daily, benchmark = performance(config, fitted, sim, start, stop)
    inputs = {
        "first_bar": bar_time(timestamps[start]),
        "last_bar": bar_time(timestamps[stop - 1]),
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


def _simulate(config: StrategyConfig, fitted: Fitted, funding: np.ndarray) -> SimResult:
    decisions = fitted.decisions
    rows = slice(decisions[0].start, decisions[0].stop)

    def stacked(values) -> np.ndarray:
        return np.column_stack(list(values))

    sim_config, markets = sim_settings(config, build_pipeline(config))
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
