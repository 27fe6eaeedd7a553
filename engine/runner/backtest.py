"""A historical backtest of a strategy file: the runner over the store's bars.

``run_backtest`` loads the candles from the store, computes the causal
representation of every bar, fits the components walk-forward on the refit
schedule, runs the event loop over the out-of-sample bars and computes the
metrics; ``engine.report.run.write_run`` writes its run folder. Headline
metrics cover the out-of-sample bars only. On a fresh numba cache the event
loop compiles in another process while the representations and components
are computed (``engine.runner.warmup``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from engine.config import StrategyConfig
from engine.data.store import CandleStore, SeriesKey
from engine.data.times import iso_utc
from engine.executor import Executor
from engine.report.run import Backtest, bar_time, performance
from engine.runner.assemble import (
    build_pipeline,
    build_portfolio,
    check_schedule,
    compute_representation,
    drift_monitor,
    sim_settings,
    strategy_costs,
    strategy_schedule,
)
from engine.runner.encoders import BlockHistories, encoder_walk
from engine.runner.sources import load_candles, load_funding, out_of_sample_rows
from engine.runner.walkforward import (
    FitBlocks,
    Fitted,
    block_outputs,
    portfolio_weights,
    walk_forward,
)
from engine.runner.warmup import compile_ahead
from engine.sim.run import SimResult, simulate
from engine.strategy.base import Costs, History
from engine.strategy.representations import default_cache_dir, hash_candles, load_unseen_model
from engine.threads import one_thread

OHLC = ("open", "high", "low", "close")

Progress = Callable[[str], None]
#: The stages ``run_backtest`` reports to its ``progress``, in order.
STAGES = (
    "loading candles",
    "computing representations and fitting components walk-forward",
    "running the event loop",
)


Representation = tuple[np.ndarray, dict]


@dataclass(frozen=True)
class Inputs:
    """A strategy's candles (one frame per symbol) and, per symbol, its representation."""

    keys: list[SeriesKey]
    frames: list[pd.DataFrame]
    representations: list[Representation]


def represent(
    config: StrategyConfig,
    frames: list[pd.DataFrame],
    start_ms: int,
    models_dir: Path,
    cache_dir: Path | None,
) -> list[Representation]:
    """Return every symbol's representation, for an out-of-sample range from ``start_ms``."""
    return [
        compute_representation(config, candles, start_ms, models_dir, cache_dir)
        for candles in frames
    ]


def load_inputs(
    config: StrategyConfig,
    start_ms: int,
    models_dir: Path,
    store: CandleStore,
    cache_dir: Path | None,
) -> Inputs:
    """Return the candles and representations of backtests that start at ``start_ms`` or later."""
    keys, frames = load_candles(config, store)
    return Inputs(keys, frames, represent(config, frames, start_ms, models_dir, cache_dir))


def decide(
    config: StrategyConfig,
    frames: list[pd.DataFrame],
    start: int,
    stop: int,
    models_dir: Path,
    cache_dir: Path | None,
    representations: list[Representation] | None = None,
    executor: Executor | None = None,
) -> Fitted:
    """Compute every asset's representations and decisions for bars ``start .. stop - 1``.

    ``representations`` (one per frame) skips computing them. With an
    ``executor``, each refit block is fitted as one of its calls (unless a
    drift monitor or an encoder walk makes the blocks depend on each
    other). The caller
    checks the refit schedule (``check_schedule``) once.
    """
    start_ms = int(frames[0]["timestamp"].iloc[start])
    if representations is None:
        representations = represent(config, frames, start_ms, models_dir, cache_dir)
    histories = [
        History.from_candles(candles, z)
        for candles, (z, _) in zip(frames, representations, strict=True)
    ]
    sources = [source for _, source in representations]
    schedule = strategy_schedule(config, start)
    portfolio = build_portfolio(config)
    costs = strategy_costs(config)
    if portfolio is None:
        weights = np.full((stop - start, len(frames)), 1.0 / len(frames))
    else:
        weights = portfolio_weights(histories, portfolio, schedule, stop, costs)
    fit_blocks = None if executor is None else _blocks_on(executor, config)
    walk = None
    if config.encoder_refit is not None:
        model = load_unseen_model(models_dir, config.encoder, start_ms, "out_of_sample.start")
        walk = encoder_walk(config, model, cache_dir)
    decisions = []
    for i, (history, candles) in enumerate(zip(histories, frames, strict=True)):
        pipeline = build_pipeline(config)
        monitor = drift_monitor(config, pipeline, history.z.shape[1])
        tuned = None if walk is None else BlockHistories(history, candles, walk, start)
        decided = walk_forward(
            history, pipeline, schedule, stop, costs, weights[:, i], monitor, tuned, fit_blocks
        )
        decisions.append(decided)
        if tuned is not None:
            # The representation each bar was decided on: its encoder version's.
            histories[i] = replace(history, z=tuned.z_used)
            sources[i] = sources[i] | {
                "encoder_versions": [
                    {"from": iso_utc(int(history.timestamp[v.bar])), "version": v.version}
                    | {"parent": walk.model.name, "seconds": round(v.seconds, 3)}
                    for v in decided.encoders
                ]
            }
    return Fitted(histories, decisions, weights, sources)


def fit_block(
    config: StrategyConfig, history: History, block: slice, train: slice, costs: Costs
) -> dict[str, np.ndarray]:
    """Return one refit block's outputs from the strategy's pipeline, fitted for it alone."""
    with one_thread():
        return block_outputs(history, build_pipeline(config), block, train, costs)


def _blocks_on(executor: Executor, config: StrategyConfig) -> FitBlocks:
    # Fit a walk-forward's blocks as calls of the executor, the history shared once.
    def fit(history: History, blocks: list[tuple[slice, slice]], costs: Costs) -> list[dict]:
        shared = executor.share(history)
        calls = [(config, shared, block, train, costs) for block, train in blocks]
        outputs = dict(executor.map(fit_block, calls))
        return [outputs[i] for i in range(len(blocks))]

    return fit


def run_backtest(
    config: StrategyConfig,
    models_dir: Path = Path("models"),
    store: CandleStore | None = None,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
    inputs: Inputs | None = None,
    executor: Executor | None = None,
) -> Backtest:
    """Run a strategy over its out-of-sample range and return the result.

    ``inputs`` (from ``load_inputs`` for the same market, store and
    representation) skips loading the candles and computing representations.
    With an ``executor`` the walk-forward's refit blocks are fitted on it
    (several at a time on Ray), with the same results as without.
    """
    say = progress or (lambda _: None)
    store = store or CandleStore(config.store.path)
    cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    say(STAGES[0])
    keys, frames = load_candles(config, store) if inputs is None else (inputs.keys, inputs.frames)
    timestamps = frames[0]["timestamp"].to_numpy()
    start, stop = out_of_sample_rows(config, timestamps)
    check_schedule(config, start)
    funding = [load_funding(config, store, key, timestamps[start:stop]) for key in keys]
    timings["load_s"] = time.perf_counter() - clock

    # On a fresh numba cache the loop compiles in another process meanwhile.
    with compile_ahead() as warmup:
        say(STAGES[1])
        clock = time.perf_counter()
        shared = None if inputs is None else inputs.representations
        fitted = decide(config, frames, start, stop, models_dir, cache_dir, shared, executor)
        timings["representation_and_walk_forward_s"] = time.perf_counter() - clock

        say(STAGES[2])
        clock = time.perf_counter()
        warmup.wait()
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
