"""The one mapping from component outputs to the event loop's decisions.

Each role's outputs have one meaning (see ``engine.strategy.base``):

- direction from the signal's ``score`` (with its hysteresis), times the
  sizing's ``size`` fixed when the position is entered (1 without sizing), is
  the target exposure (a signed fraction of equity), times a scale such as a
  portfolio weight;
- the risk's ``risk_scale`` (1 without risk) multiplies the exposure; its
  ``stop_loss`` and ``take_profit``, when it returns them, are the stops;
- while the exposure does not change the mode is WAIT, so the book is not
  rebalanced every bar; when it changes, the timing's thresholds on its
  ``similarity`` pick MARKET, LIMIT (``offset`` from the close) or WAIT, and
  after ``max_wait`` bars of waiting the order goes to market. Without a
  timing component every change is a market order.

This policy is sequential (the hysteresis, the size fixed at entry and the
timing's wait carry over from bar to bar), so it is written once, as a stepper:
``decide_bar`` takes one bar's outputs and a ``DecisionState`` and returns the
bar's ``Decision`` and the next state. A backtest loops it over the
out-of-sample bars and a paper session calls it once per closed bar.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

import numpy as np

from engine.errors import ConfigError, EngineError
from engine.sim.enums import Mode
from engine.strategy.base import (
    ROLE_CLASSES,
    Component,
    Costs,
    FitContext,
    History,
    Risk,
    Signal,
    Sizing,
    Timing,
)


@dataclass(frozen=True)
class Pipeline:
    """The components of a single-asset strategy; only the signal is required."""

    signal: Signal
    sizing: Sizing | None = None
    risk: Risk | None = None
    timing: Timing | None = None

    def __post_init__(self) -> None:
        owner: dict[str, str] = {}
        for role, component in self.components().items():
            for name in component.outputs:
                if name in owner:
                    raise ConfigError(
                        f"components.{role}: output {name!r} is also an output of the "
                        f"{owner[name]} component; output names must be unique"
                    )
                owner[name] = role
        for role, cls in ROLE_CLASSES.items():
            for name in (*cls.required, *cls.optional):
                if owner.get(name, role) != role:
                    raise ConfigError(
                        f"components.{owner[name]}: output {name!r} is read as the {role} "
                        "role's; give it another name"
                    )

    def components(self) -> dict[str, Component]:
        """Return the present components by role, signal first."""
        roles = {"signal": self.signal, "sizing": self.sizing, "risk": self.risk}
        roles["timing"] = self.timing
        return {role: c for role, c in roles.items() if c is not None}

    def horizon(self) -> int:
        """Return the longest label horizon of the components."""
        return max(c.horizon for c in self.components().values())

    @property
    def limit_ttl(self) -> int:
        """Return the bars a limit order rests: the timing's, else 1."""
        return 1 if self.timing is None else self.timing.limit_ttl


@dataclass(frozen=True)
class Decision:
    """One bar's decision for one asset, as the event loop takes it.

    Attributes
    ----------
    target : float
        Target exposure, a signed fraction of equity.
    risk_scale : float
        Multiplier of the target in [0, 1].
    mode : int
        ``engine.sim.enums.Mode``: market, limit or wait.
    limit_offset : float
        Distance of a limit order from the close.
    stop_loss, take_profit : float
        Distances from the entry price (NaN: none).
    """

    target: float
    risk_scale: float
    mode: int
    limit_offset: float
    stop_loss: float
    take_profit: float


#: The decision's fields, in order: the event loop's per-bar inputs.
DECISION_FIELDS = tuple(f.name for f in fields(Decision))


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


def refit(pipeline: Pipeline, past: History, train: slice, costs: Costs) -> np.ndarray:
    """Fit every component of ``pipeline`` on rows ``train`` of ``past``, the signal first.

    The other components get the fitted signal's in-sample direction on the
    training rows. Returns the signal's in-sample scores on those rows.
    """
    signal = pipeline.signal
    signal.fit(FitContext(past, train, costs))
    scores = signal.transform(past, train)["score"]
    in_sample = signal.direction(scores)
    for role, component in pipeline.components().items():
        if role != "signal":
            component.fit(FitContext(past, train, costs, in_sample))
    return scores


def transform(pipeline: Pipeline, history: History, rows: slice) -> dict[str, np.ndarray]:
    """Return every component's outputs for ``rows`` of ``history``, by output name.

    Raises
    ------
    EngineError
        If a component returns other outputs than it lists, or not one value per row.
    """
    outputs = {}
    for role, component in pipeline.components().items():
        values = component.transform(history, rows)
        if sorted(values) != sorted(component.outputs):
            raise EngineError(
                f"components.{role}: {type(component).__name__}.transform returned "
                f"{sorted(values)}; it lists the outputs {sorted(component.outputs)}"
            )
        for name, column in values.items():
            if len(column) != rows.stop - rows.start:
                raise EngineError(
                    f"components.{role}: output {name!r} has {len(column)} values for "
                    f"{rows.stop - rows.start} rows"
                )
        outputs |= values
    return outputs


def decide_bar(
    pipeline: Pipeline,
    state: DecisionState,
    outputs: Mapping[str, float],
    scale: float | None = None,
) -> tuple[Decision, DecisionState]:
    """Return one bar's decision from its component outputs, and the state for the next bar.

    Parameters
    ----------
    pipeline : Pipeline
        The fitted components; the signal's hysteresis and the timing's
        thresholds are read from them.
    state : DecisionState
        The state after the previous bar (``DecisionState()`` before the first).
    outputs : mapping of str to float
        The bar's outputs of every component, by name (as ``transform`` returns them).
    scale : float, optional
        A multiplier of the target, such as a portfolio weight.
    """
    direction = pipeline.signal.next_direction(state.direction, outputs["score"])
    size = 1.0 if pipeline.sizing is None else outputs["size"]
    entry_size = size if direction != 0 and direction != state.direction else state.entry_size
    target = direction * entry_size
    if scale is not None:
        target = target * scale
    risk_scale = 1.0 if pipeline.risk is None else outputs["risk_scale"]
    similarity = float("nan") if pipeline.timing is None else outputs["similarity"]
    mode, offset, state = time_bar(pipeline.timing, state, target * risk_scale, similarity)
    decision = Decision(
        target=target,
        risk_scale=risk_scale,
        mode=mode,
        limit_offset=offset,
        stop_loss=outputs.get("stop_loss", float("nan")),
        take_profit=outputs.get("take_profit", float("nan")),
    )
    return decision, replace(state, direction=direction, entry_size=entry_size)


def time_bar(
    timing: Timing | None, state: DecisionState, exposure: float, similarity: float
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
