"""Walk-forward over a whole history: the backtest's block-vectorised path.

Before each block of the ``RefitSchedule`` the components are refitted on its
training rows; they then transform the whole block at once (one call per
component per block, not per bar), and ``decide_bar`` is looped over the
block's outputs. A paper session takes the same refits and calls
``decide_bar`` once per closed bar (``engine.runner.stepper``); the parity
tests check that the two paths agree.

With a drift monitor (``engine.runner.drift``) every bar of a block is
observed after the block is transformed, in order: its reading can flatten
the bars from it on, or end the block after it (the rest of the block's
outputs are dropped and the next block starts at the following bar).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.runner.decisions import (
    DECISION_FIELDS,
    DecisionState,
    Pipeline,
    decide_bar,
    refit,
    transform,
)
from engine.runner.drift import DriftMonitor, Reading, flat_after
from engine.runner.encoders import BlockHistories, EncoderVersion
from engine.runner.schedule import RefitSchedule
from engine.strategy.base import Costs, FitContext, History, Portfolio


@dataclass(frozen=True)
class Decisions:
    """Per-bar decisions for the out-of-sample bars ``start .. stop - 1``.

    ``outputs`` holds every component output by name (score, size, anomaly,
    risk_scale, similarity, ...); ``refits`` the bar at which each refit took
    effect with its training rows; ``drift`` the drift readings by bar;
    ``encoders`` the encoder versions tuned walk-forward.
    """

    start: int
    stop: int
    target: np.ndarray
    risk_scale: np.ndarray
    mode: np.ndarray
    limit_offset: np.ndarray
    stop_loss: np.ndarray
    take_profit: np.ndarray
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    refits: list[tuple[int, int, int]] = field(default_factory=list)
    drift: dict[int, Reading] = field(default_factory=dict)
    encoders: list[EncoderVersion] = field(default_factory=list)


@dataclass(frozen=True)
class Fitted:
    """The representations and walk-forward decisions of every asset."""

    histories: list[History]
    decisions: list[Decisions]
    weights: np.ndarray
    sources: list[dict]


def portfolio_weights(
    histories: Sequence[History],
    portfolio: Portfolio,
    schedule: RefitSchedule,
    stop: int,
    costs: Costs,
) -> np.ndarray:
    """Fit the portfolio over the schedule's blocks before ``stop``.

    Returns the weights (stop - anchor, N) of N assets, constant within a block.
    """
    start = schedule.anchor
    weights = np.zeros((stop - start, len(histories)))
    for block, train in schedule.blocks(stop):
        portfolio.fit([FitContext(h.upto(block.start), train, costs) for h in histories])
        weights[block.start - start : block.stop - start] = portfolio.weights()
    return weights


#: Fits every block of a walk-forward: (history, [(block, train)], costs) -> outputs per block.
FitBlocks = Callable[[History, list[tuple[slice, slice]], Costs], list[dict[str, np.ndarray]]]


def block_outputs(
    history: History, pipeline: Pipeline, block: slice, train: slice, costs: Costs
) -> dict[str, np.ndarray]:
    """Refit ``pipeline`` on the rows ``train``; return its outputs for the rows ``block``."""
    refit(pipeline, history.upto(block.start), train, costs)
    return transform(pipeline, history.upto(block.stop), block)


def walk_forward(
    history: History,
    pipeline: Pipeline,
    schedule: RefitSchedule,
    stop: int,
    costs: Costs,
    scale: np.ndarray | None = None,
    monitor: DriftMonitor | None = None,
    tuned: BlockHistories | None = None,
    fit_blocks: FitBlocks | None = None,
) -> Decisions:
    """Fit the pipeline over the schedule and return its decisions for bars ``anchor .. stop - 1``.

    ``scale`` (one value per decided bar, e.g. a portfolio weight) multiplies
    the target exposure before the timing decides when to act on it; a drift
    ``monitor``'s policy may flatten bars and end blocks early; with ``tuned``
    each block sees the history of its encoder version (``tuned.at``).
    ``fit_blocks`` (history, blocks, costs) returns every block's outputs,
    each from a pipeline refitted for that block alone (for example on
    several workers). A refit replaces everything a component learned, so
    the two give the same outputs. It is used only without a monitor and
    without ``tuned``: those make each block depend on the one before, so
    their blocks are fitted here, one after another, on ``pipeline``. The
    caller checks the schedule (``RefitSchedule.check``) once.
    """
    start = schedule.anchor
    n = stop - start
    outputs: dict[str, np.ndarray] = {}
    refits = []
    readings: dict[int, Reading] = {}
    scale = np.ones(n) if scale is None else np.array(scale, dtype=np.float64)
    on_blocks = fit_blocks is not None and monitor is None and tuned is None
    if on_blocks:
        blocks = list(schedule.blocks(stop))
        for (block, train), values in zip(blocks, fit_blocks(history, blocks, costs), strict=True):
            _keep(outputs, values, block.start - start, block.stop - start, n)
            refits.append((block.start, train.start, train.stop))
    block, retrain = (stop if on_blocks else start), False
    while block < stop:
        if tuned is not None:
            history = tuned.at(block, retrain)
        train = schedule.train(block)
        end = min(schedule.next_block(block), stop)
        past = history.upto(block)
        in_sample = refit(pipeline, past, train, costs)
        values = transform(pipeline, history.upto(end), slice(block, end))
        if monitor is not None:
            monitor.fit(past, train, in_sample)
            ended_after = _observe(
                monitor, history, (block, end), values["score"], readings, scale[block - start :]
            )
            retrain = ended_after is not None and monitor.config.policy == "retrain_encoder"
            end = min(schedule.next_block(block, ended_after), stop)
        _keep(outputs, values, block - start, end - start, n)
        refits.append((block, train.start, train.stop))
        block = end
    names = list(outputs)
    state = DecisionState()
    decided = []
    for i, row in enumerate(zip(*outputs.values(), strict=True)):
        decision, state = decide_bar(pipeline, state, dict(zip(names, row, strict=True)), scale[i])
        decided.append(decision)
    columns = {name: np.array([getattr(d, name) for d in decided]) for name in DECISION_FIELDS}
    columns["mode"] = columns["mode"].astype(np.int64)
    return Decisions(
        start=start,
        stop=stop,
        **columns,
        outputs=outputs,
        refits=refits,
        drift=readings,
        encoders=[] if tuned is None else tuned.versions,
    )


def _keep(outputs: dict[str, np.ndarray], values: dict, first: int, end: int, n: int) -> None:
    # Write a block's outputs into the rows first .. end - 1 of the n decided bars.
    for name, column in values.items():
        out = outputs.setdefault(name, np.full(n, np.nan))
        out[first:end] = column[: end - first]


def _observe(
    monitor: DriftMonitor,
    history: History,
    rows: tuple[int, int],
    scores: np.ndarray,
    readings: dict[int, Reading],
    scale: np.ndarray,
) -> int | None:
    # Observe the block's bars in order, keeping their readings and zeroing `scale` (from the
    # block's first bar) while the policy flattens; return the bar the policy ends the block
    # after, else None.
    block, end = rows
    flat = False
    for t in range(block, end):
        reading = monitor.observe(history, t, block, scores[: t - block + 1])
        flat = flat_after(flat, reading)
        scale[t - block] *= monitor.scale(flat)
        if reading is not None:
            readings[t] = reading
            if monitor.ends_block(reading):
                return t
    return None
