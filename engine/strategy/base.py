"""What a strategy component sees and returns, and how one is loaded by name.

A component is fitted on the past and then maps each bar's representation to
per-bar outputs for the event loop. It never sees a bar that has not closed:

- ``fit(past, train)`` gets a ``History`` that ends at the last closed bar
  before the bars it will act on, and the rows of that history to learn from.
  Labels that look ``h`` bars ahead are computable only for rows whose horizon
  ends inside ``past``: the walk-forward driver leaves an embargo of at least
  the label horizon so every training row has its label.
- ``transform(history, rows)`` returns outputs for ``rows`` computed from the
  rows' own representations and earlier bars only (the lookahead audit checks
  this by changing later bars).

Each role has a base class that declares what the engine reads from it: the
outputs a component of that role must return (``Signal``: ``score``;
``Sizing``: ``size``; ``Risk``: ``risk_scale`` and optionally ``stop_loss`` and
``take_profit``; ``Timing``: ``similarity``) and, for timing, the thresholds
and the limit order's time to live. Every component lists the outputs its
``transform`` returns in ``outputs``; ``load_component`` refuses a component
whose outputs lack its role's, and the runner refuses a ``transform`` that
returns other names than the listed ones.

Components are named in strategy files as ``package.module:ClassName`` with
keyword parameters, so a user adds one without touching the engine.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pydantic import TypeAdapter, ValidationError

from engine.errors import ConfigError


@dataclass(frozen=True)
class History:
    """Closed bars of one asset up to some bar, with their representations.

    Attributes
    ----------
    timestamp : int64 array (T,)
        Bar open times in milliseconds, UTC.
    open, high, low, close, volume : float64 arrays (T,)
        The candles.
    z : float32 or float64 array (T, D)
        The causal representation of every bar (row t depends on bars <= t).
    """

    timestamp: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    z: np.ndarray

    @classmethod
    def from_candles(cls, candles, z: np.ndarray) -> History:
        """Return the history of a candle frame (store schema) with representations ``z``."""
        columns = ("timestamp", "open", "high", "low", "close", "volume")
        return cls(**{c: candles[c].to_numpy() for c in columns}, z=z)

    def __len__(self) -> int:
        return len(self.close)

    def upto(self, stop: int) -> History:
        """Return bars ``0 .. stop - 1``: what is known at the close of bar ``stop - 1``."""
        return History(*(getattr(self, name)[:stop] for name in self.__dataclass_fields__))


@dataclass(frozen=True)
class Costs:
    """The strategy's trading costs, as fractions of notional, for components that weigh them.

    Attributes
    ----------
    maker_fee, taker_fee : float
        Fee per side of a limit (maker) and a market (taker) fill.
    """

    maker_fee: float
    taker_fee: float

    @property
    def round_trip_fee(self) -> float:
        """Return the fees of entering and leaving a position at market (two taker fills)."""
        return 2.0 * self.taker_fee


@dataclass(frozen=True)
class FitContext:
    """What a component learns from: the known past, the rows to train on and the costs.

    ``signal`` holds the fitted signal's in-sample direction (-1, 0, +1) on the
    training rows, for components that learn from the signal's setups; it is
    ``None`` when the signal itself is being fitted.
    """

    past: History
    train: slice
    costs: Costs
    signal: np.ndarray | None = None


class Component(ABC):
    """A strategy component: fitted on the past, applied bar by bar.

    Subclasses derive from their role's class (``Signal``, ``Sizing``,
    ``Risk``, ``Timing``), take their parameters as keyword arguments, list
    their outputs in ``outputs``, and return from ``transform`` a mapping of
    exactly those names to arrays with one entry per requested row.
    """

    role: ClassVar[str]
    #: The outputs every component of the role returns; the runner decides from them.
    required: ClassVar[tuple[str, ...]] = ()
    #: Outputs of the role that the runner reads when a component returns them.
    optional: ClassVar[tuple[str, ...]] = ()
    #: Bars after a bar that its training label looks at (0: no forward label).
    horizon: int = 0

    @property
    def outputs(self) -> tuple[str, ...]:
        """Return the names ``transform`` returns: the role's required outputs by default."""
        return self.required

    @abstractmethod
    def fit(self, context: FitContext) -> None:
        """Learn from ``context.past`` rows ``context.train`` only."""

    @abstractmethod
    def transform(self, history: History, rows: slice) -> dict[str, np.ndarray]:
        """Return the per-bar outputs for ``rows`` of ``history``."""


class Signal(Component):
    """A signal: a per-bar ``score`` in [-1, 1] and a direction with hysteresis.

    The direction enters long (short) when the score rises above ``entry``
    (falls below ``-entry``), goes flat when ``|score|`` falls below ``exit``,
    and otherwise keeps the previous direction. ``allow_short = False`` turns
    a short entry into flat.
    """

    role = "signal"
    required = ("score",)
    entry: float = 0.5
    exit: float = 0.5
    allow_short: bool = True

    def direction(self, score: np.ndarray) -> np.ndarray:
        """Return the direction (-1, 0, +1) of each bar, starting flat."""
        out = np.empty(len(score), dtype=np.int64)
        state = 0
        for i, s in enumerate(score):
            state = out[i] = self.next_direction(state, s)
        return out

    def next_direction(self, previous: int, score: float) -> int:
        """Return the direction of a bar with ``score``, given the previous bar's direction."""
        if score > self.entry:
            return 1
        if score < -self.entry:
            return -1 if self.allow_short else 0
        if abs(score) < self.exit:
            return 0
        return previous


class Sizing(Component):
    """A sizing component: ``size``, the exposure (a fraction of equity) of a new position.

    The size is fixed when a position is entered and held until the direction
    changes.
    """

    role = "sizing"
    required = ("size",)


class Risk(Component):
    """A risk component: ``risk_scale`` in [0, 1] multiplies the exposure on each bar.

    It may also return ``stop_loss`` and ``take_profit``: distances from the
    entry price, as fractions, or NaN for none.
    """

    role = "risk"
    required = ("risk_scale",)
    optional = ("stop_loss", "take_profit")


class Timing(Component):
    """An execution-timing component: when and how a change of exposure is sent.

    It returns ``similarity`` on each bar. When the exposure changes, the
    order goes to market if the similarity exceeds ``market_above``, rests as
    a limit order ``offset`` from the close if it exceeds ``limit_above``, and
    otherwise waits, at most ``max_wait`` bars before going to market. A limit
    order rests for ``limit_ttl`` bars.

    Parameters
    ----------
    market_above, limit_above : float
        Similarity thresholds, ``-1 <= limit_above <= market_above <= 1``.
    offset : float
        Distance of the limit price from the close, a fraction in (0, 0.1).
    max_wait : int
        Bars to wait before a change goes to market.
    """

    role = "timing"
    required = ("similarity",)

    def __init__(
        self, market_above: float, limit_above: float, offset: float, max_wait: int
    ) -> None:
        if not -1 <= limit_above <= market_above <= 1:
            raise ValueError(
                f"need -1 <= limit_above <= market_above <= 1, got {limit_above}, {market_above}"
            )
        if not 0 < offset < 0.1:
            raise ValueError(f"offset must be in (0, 0.1), got {offset}")
        if max_wait < 0:
            raise ValueError(f"max_wait must be >= 0, got {max_wait}")
        self.market_above, self.limit_above = market_above, limit_above
        self.offset, self.max_wait = offset, max_wait

    @property
    def limit_ttl(self) -> int:
        """Return the bars a limit order rests: until the wait ends in a market order."""
        return max(1, self.max_wait)


ROLE_CLASSES: dict[str, type[Component]] = {
    "signal": Signal,
    "sizing": Sizing,
    "risk": Risk,
    "timing": Timing,
}


class Portfolio(ABC):
    """Weights of several assets, fitted on every asset's past at once.

    ``fit`` gets one ``FitContext`` per asset (the same bars and training
    rows for all); ``weights`` returns one non-negative weight per asset,
    summing to 1, which scales each asset's target exposure until the next
    refit.
    """

    role: ClassVar[str] = "portfolio"
    horizon: int = 0

    @abstractmethod
    def fit(self, contexts: Sequence[FitContext]) -> None:
        """Learn from the training rows of every asset's past."""

    @abstractmethod
    def weights(self) -> np.ndarray:
        """Return the fitted weight of each asset, in the order of the contexts."""


def load_component(path: str, params: dict[str, Any], role: str) -> Component | Portfolio:
    """Import ``package.module:ClassName`` and build it with ``params``.

    Each parameter must be one the class takes, of the type its signature
    annotates (an int where an int is annotated; a float also takes an int).

    Raises
    ------
    ConfigError
        If the module or class does not exist, is not a concrete component of
        ``role``, rejects the parameters, or does not list its role's required
        outputs.
    """
    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"components.{role}: cannot import module {module_name!r} ({exc})"
        ) from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Component | Portfolio)):
        raise ConfigError(
            f"components.{role}: {path!r} is not a strategy component; expected a subclass "
            "of engine.strategy.base.Component or Portfolio"
        )
    if inspect.isabstract(cls) or not isinstance(getattr(cls, "role", None), str):
        raise ConfigError(
            f"components.{role}: {path!r} is an abstract base class; expected a concrete "
            f"{role} component that implements every method"
        )
    expected = ROLE_CLASSES.get(role, Portfolio)
    if not issubclass(cls, expected):
        raise ConfigError(
            f"components.{role}: {path!r} is a {cls.role} component; expected a {role} component "
            f"(a subclass of {expected.__module__}.{expected.__name__})"
        )
    _check_params(cls, params, f"components.{role}.params")
    try:
        component = cls(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"components.{role}.params: {exc}") from None
    if isinstance(component, Component):
        missing = [name for name in component.required if name not in component.outputs]
        if missing:
            raise ConfigError(
                f"components.{role}: {path!r} lists the outputs {list(component.outputs)}; "
                f"a {role} component must output {list(component.required)}"
            )
    return component


def _check_params(cls: type, params: dict[str, Any], where: str) -> None:
    # Refuse a parameter the constructor does not take, or one whose value is
    # not of its annotated type (checked strictly: no string for a number).
    signature = inspect.signature(cls)
    try:
        signature.bind(**params)
    except TypeError as exc:
        taken = ", ".join(signature.parameters) or "none"
        raise ConfigError(f"{where}: {exc}; {cls.__name__} takes: {taken}") from None
    try:
        hints = typing.get_type_hints(cls.__init__)
    except (NameError, TypeError):
        return
    for name, value in params.items():
        if name not in hints:
            continue
        try:
            TypeAdapter(hints[name]).validate_python(value, strict=True)
        except ValidationError:
            expected = getattr(hints[name], "__name__", None) or str(hints[name])
            raise ConfigError(
                f"{where}.{name}: got {value!r} ({type(value).__name__}); expected {expected}"
            ) from None
