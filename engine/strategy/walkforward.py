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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

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
        past = history.upto(block.start)
        signal = pipeline.signal
        signal.fit(FitContext(past, train))
        in_sample = signal.direction(signal.transform(past, train)["score"])
        for role, component in components.items():
            if role != "signal":
                component.fit(FitContext(past, train, in_sample))
        visible = history.upto(block.stop)
        for component in components.values():
            for name, values in component.transform(visible, block).items():
                out = outputs.setdefault(name, np.full(n, np.nan))
                out[block.start - start : block.stop - start] = values
        refits.append((block.start, train.start, train.stop))
    return _decide(pipeline, outputs, start, stop, refits, scale)


def _decide(
    pipeline: Pipeline,
    outputs: dict[str, np.ndarray],
    start: int,
    stop: int,
    refits: list[tuple[int, int, int]],
    scale: np.ndarray | None,
) -> Decisions:
    n = stop - start
    direction = pipeline.signal.direction(outputs["score"])
    size = outputs.get("size", np.ones(n))
    risk_scale = outputs.get("risk_scale", np.ones(n))
    target = np.zeros(n)
    entry_size = 0.0
    for i in range(n):
        if direction[i] != 0 and (i == 0 or direction[i] != direction[i - 1]):
            entry_size = size[i]
        target[i] = direction[i] * entry_size
    if scale is not None:
        target = target * scale
    mode, offset = _timing(pipeline.timing, target * risk_scale, outputs.get("similarity"))
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


def _timing(
    timing: Component | None, exposure: np.ndarray, similarity: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    n = len(exposure)
    mode = np.full(n, int(Mode.WAIT), dtype=np.int64)
    offset = np.zeros(n)
    current, since = 0.0, 0
    open_change = limit_placed = False
    for i in range(n):
        if exposure[i] != current:
            current, since, open_change, limit_placed = exposure[i], i, True, False
        if not open_change:
            continue
        if timing is None or similarity[i] > timing.market_above or i - since >= timing.max_wait:
            mode[i] = Mode.MARKET
            open_change = False
        elif similarity[i] > timing.limit_above and not limit_placed:
            # The limit order rests until it fills or the market fallback replaces it.
            mode[i] = Mode.LIMIT
            offset[i] = timing.offset
            limit_placed = True
    return mode, offset
