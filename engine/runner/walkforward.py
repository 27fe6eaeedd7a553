"""Walk-forward over a whole history: the backtest's block-vectorised path.

Before each block of the ``RefitSchedule`` the components are refitted on its
training rows; they then transform the whole block at once (one call per
component per block, not per bar), and ``decide_bar`` is looped over the
block's outputs. A paper session takes the same refits and calls
``decide_bar`` once per closed bar (``engine.runner.stepper``); the parity
tests check that the two paths agree.
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
from engine.runner.schedule import RefitSchedule
from engine.strategy.base import Costs, FitContext, History, Portfolio


@dataclass(frozen=True)
class Decisions:
    """Per-bar decisions for the out-of-sample bars ``start .. stop - 1``.

    ``outputs`` holds every component output by name (score, size, anomaly,
    risk_scale, similarity, ...); ``refits`` the bar at which each refit took
    effect with its training rows.
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
    fit_blocks: FitBlocks | None = None,
) -> Decisions:
    """Fit the pipeline over the schedule and return its decisions for bars ``anchor .. stop - 1``.

    ``scale`` (one value per decided bar, e.g. a portfolio weight) multiplies
    the target exposure before the timing decides when to act on it.
    ``fit_blocks`` (history, blocks, costs) returns every block's outputs,
    each from a pipeline refitted for that block alone (for example on
    several workers); by default the blocks are fitted here, one after
    another, on ``pipeline``. A refit replaces everything a component
    learned, so the two give the same outputs. The caller checks the
    schedule (``RefitSchedule.check``) once.
    """
    start = schedule.anchor
    n = stop - start
    outputs: dict[str, np.ndarray] = {}
    refits = []
    blocks = list(schedule.blocks(stop))
    if fit_blocks is None:
        fitted = [block_outputs(history, pipeline, block, train, costs) for block, train in blocks]
    else:
        fitted = fit_blocks(history, blocks, costs)
    for (block, train), block_values in zip(blocks, fitted, strict=True):
        for name, values in block_values.items():
            out = outputs.setdefault(name, np.full(n, np.nan))
            out[block.start - start : block.stop - start] = values
        refits.append((block.start, train.start, train.stop))
    names = list(outputs)
    state = DecisionState()
    decided = []
    for i, row in enumerate(zip(*outputs.values(), strict=True)):
        decision, state = decide_bar(
            pipeline, state, dict(zip(names, row, strict=True)), None if scale is None else scale[i]
        )
        decided.append(decision)
    columns = {name: np.array([getattr(d, name) for d in decided]) for name in DECISION_FIELDS}
    columns["mode"] = columns["mode"].astype(np.int64)
    return Decisions(start=start, stop=stop, **columns, outputs=outputs, refits=refits)
