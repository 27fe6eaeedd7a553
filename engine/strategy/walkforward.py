"""Walk-forward fitting of a strategy's components, and the per-bar decisions they make.

The out-of-sample bars ``[start, stop)`` are cut into blocks of
``refit_every`` bars. Before block ``[r, r + refit_every)`` every component is
refitted on the ``fit_bars`` rows that end ``embargo`` bars before r, using a
history that ends at bar r - 1, the last bar closed when the block begins. The
embargo must be at least every component's label horizon, so each training
label is known at bar r - 1. Windows roll forward; they never look back in.

Decisions turn the components' outputs into the event loop's inputs:

- direction from the signal (with its hysteresis), times the size fixed by the
  sizing component when the position is entered, times the risk scale, is the
  target exposure (a signed fraction of equity);
- while the target does not change the mode is WAIT, so the book is not
  rebalanced every bar; when it changes, the timing component picks MARKET,
  LIMIT (``offset`` from the close) or WAIT, and after ``max_wait`` bars of
  waiting the order goes to market. Without a timing component every change is
  a market order.

This policy is sequential (the hysteresis, the size fixed at entry and the
timing's wait carry over from bar to bar), so it is written once, as a stepper:
``decide_bar`` takes one bar's outputs and a ``DecisionState`` and returns the
bar's decision and the next state. ``walk_forward`` loops it over the
out-of-sample bars; a paper session calls it once per closed bar, which is what
makes the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from engine.errors import ConfigError, DataError
from engine.sim.enums import Mode
from engine.strategy.base import Component, FitContext, History, Portfolio


@dataclass(frozen=True)
class Pipeline:
    """The components of a single-asset strategy; only the signal is required."""

    signal: Component
    sizing: Component | None = None
    risk: Component | None = None
    timing: Component | None = None

    def components(self) -> dict[str, Component]:
        """Return the present components by role, signal first."""
        roles = {"signal": self.signal, "sizing": self.sizing, "risk": self.risk}
        roles["timing"] = self.timing
        return {role: c for role, c in roles.items() if c is not None}

    def horizon(self) -> int:
        """Return the longest label horizon of the components."""
        return max(c.horizon for c in self.components().values())


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


def check_windows(
    pipeline: Pipeline, start: int, fit_bars: int, refit_every: int, embargo: int
) -> None:
    """Raise a clear error if the walk-forward windows cannot be honest or cannot fit."""
    horizon = pipeline.horizon()
    if embargo < horizon:
        raise ConfigError(
            f"walk_forward.embargo_bars is {embargo}; expected at least the longest label "
            f"horizon of the components ({horizon} bars), or training labels would leak"
        )
    if refit_every < 1 or fit_bars < 1:
        raise ConfigError("walk_forward.fit_bars and refit_every must be at least 1")
    if start - embargo - fit_bars < 0:
        raise DataError(
            f"the out-of-sample range starts at bar {start} of the history, but fitting needs "
            f"fit_bars + embargo_bars = {fit_bars + embargo} bars before it"
        )


def _blocks(start: int, stop: int, fit_bars: int, refit_every: int, embargo: int):
    # (block of bars acted on, training rows), rolling forward.
    for r in range(start, stop, refit_every):
        yield slice(r, min(r + refit_every, stop)), slice(r - embargo - fit_bars, r - embargo)


def portfolio_weights(
    histories: Sequence[History],
    portfolio: Portfolio,
    start: int,
    stop: int,
    fit_bars: int,
    refit_every: int,
    embargo: int,
) -> np.ndarray:
    """Fit the portfolio walk-forward over the same blocks as the components.

    Returns the weights (stop - start, N) of N assets, constant within a block.
    """
    weights = np.zeros((stop - start, len(histories)))
    for block, train in _blocks(start, stop, fit_bars, refit_every, embargo):
        portfolio.fit([FitContext(h.upto(block.start), train) for h in histories])
        weights[block.start - start : block.stop - start] = portfolio.weights()
    return weights


def walk_forward(
    history: History,
    pipeline: Pipeline,
    start: int,
    stop: int,
    fit_bars: int,
    refit_every: int,
    embargo: int,
    scale: np.ndarray | None = None,
) -> Decisions:
    """Fit the pipeline walk-forward and return its decisions for bars ``start .. stop - 1``.

    ``scale`` (one value per decided bar, e.g. a portfolio weight) multiplies
    the target exposure before the timing decides when to act on it.
    """
    check_windows(pipeline, start, fit_bars, refit_every, embargo)
    components = pipeline.components()
    n = stop - start
    outputs: dict[str, np.ndarray] = {}
    refits = []
    for block, train in _blocks(start, stop, fit_bars, refit_every, embargo):
        refit(pipeline, history.upto(block.start), train)
        visible = history.upto(block.stop)
        for component in components.values():
            for name, values in component.transform(visible, block).items():
                out = outputs.setdefault(name, np.full(n, np.nan))
                out[block.start - start : block.stop - start] = values
        refits.append((block.start, train.start, train.stop))
    return _decide(pipeline, outputs, start, stop, refits, scale)


def refit(pipeline: Pipeline, past: History, train: slice) -> None:
    """Fit every component of ``pipeline`` on rows ``train`` of ``past``, the signal first.

    The other components get the fitted signal's in-sample direction on the
    training rows.
    """
    signal = pipeline.signal
    signal.fit(FitContext(past, train))
    in_sample = signal.direction(signal.transform(past, train)["score"])
    for role, component in pipeline.components().items():
        if role != "signal":
            component.fit(FitContext(past, train, in_sample))


@dataclass(frozen=True)
class DecisionState:
    """What the decision policy carries from one bar to the next; the default is flat.

    Attributes
    ----------
    direction : int
        The signal's direction at the last bar (-1, 0, +1).
    entry_size : float
        The size fixed when the current direction was entered.
    exposure : float
        The last target exposure (target times risk scale).
    waited : int
        Bars since the exposure last changed.
    open_change : bool
        The last change of exposure has not been sent to market yet.
    limit_placed : bool
        A limit order was placed for the open change.
    """

    direction: int = 0
    entry_size: float = 0.0
    exposure: float = 0.0
    waited: int = 0
    open_change: bool = False
    limit_placed: bool = False


def decide_bar(
    pipeline: Pipeline,
    state: DecisionState,
    score: float,
    size: float = 1.0,
    risk_scale: float = 1.0,
    similarity: float = float("nan"),
    scale: float | None = None,
) -> tuple[float, int, float, DecisionState]:
    """Return one bar's target, mode and limit offset, and the state for the next bar.

    Parameters
    ----------
    pipeline : Pipeline
        The fitted components; the signal's hysteresis and the timing's
        thresholds are read from them.
    state : DecisionState
        The state after the previous bar (``DecisionState()`` before the first).
    score, size, risk_scale, similarity : float
        The bar's component outputs (size 1 without sizing, risk scale 1
        without risk, similarity unused without timing).
    scale : float, optional
        A multiplier of the target, such as a portfolio weight.
    """
    direction = pipeline.signal.next_direction(state.direction, score)
    entry_size = size if direction != 0 and direction != state.direction else state.entry_size
    target = direction * entry_size
    if scale is not None:
        target = target * scale
    mode, offset, state = time_bar(pipeline.timing, state, target * risk_scale, similarity)
    return target, mode, offset, replace(state, direction=direction, entry_size=entry_size)


def time_bar(
    timing: Component | None, state: DecisionState, exposure: float, similarity: float
) -> tuple[int, float, DecisionState]:
    """Return the execution mode and limit offset of one bar's exposure, and the next state."""
    if exposure != state.exposure:
        state = replace(state, exposure=exposure, waited=0, open_change=True, limit_placed=False)
    elif state.open_change:
        state = replace(state, waited=state.waited + 1)
    if not state.open_change:
        return int(Mode.WAIT), 0.0, state
    if timing is None or similarity > timing.market_above or state.waited >= timing.max_wait:
        return int(Mode.MARKET), 0.0, replace(state, open_change=False)
    if similarity > timing.limit_above and not state.limit_placed:
        # The limit order rests until it fills or the market fallback replaces it.
        return int(Mode.LIMIT), timing.offset, replace(state, limit_placed=True)
    return int(Mode.WAIT), 0.0, state


def _decide(
    pipeline: Pipeline,
    outputs: dict[str, np.ndarray],
    start: int,
    stop: int,
    refits: list[tuple[int, int, int]],
    scale: np.ndarray | None,
) -> Decisions:
    n = stop - start
    size = outputs.get("size", np.ones(n))
    risk_scale = outputs.get("risk_scale", np.ones(n))
    similarity = outputs.get("similarity", np.full(n, np.nan))
    target = np.zeros(n)
    mode = np.full(n, int(Mode.WAIT), dtype=np.int64)
    offset = np.zeros(n)
    state = DecisionState()
    for i, score in enumerate(outputs["score"]):
        target[i], mode[i], offset[i], state = decide_bar(
            pipeline,
            state,
            score,
            size[i],
            risk_scale[i],
            similarity[i],
            None if scale is None else scale[i],
        )
    stops = {name: outputs.get(name, np.full(n, np.nan)) for name in ("stop_loss", "take_profit")}
    return Decisions(
        start=start,
        stop=stop,
        target=target,
        risk_scale=risk_scale,
        mode=mode,
        limit_offset=offset,
        stop_loss=stops["stop_loss"],
        take_profit=stops["take_profit"],
        outputs=outputs,
        refits=refits,
    )
