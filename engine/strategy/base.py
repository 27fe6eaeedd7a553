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

ROLES = ("signal", "sizing", "risk", "timing", "portfolio")


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
class FitContext:
    """What a component learns from: the known past and the rows to train on.

    ``signal`` holds the fitted signal's in-sample direction (-1, 0, +1) on the
    training rows, for components that learn from the signal's setups; it is
    ``None`` when the signal itself is being fitted.
    """

    past: History
    train: slice
    signal: np.ndarray | None = None


class Component(ABC):
    """A strategy component: fitted on the past, applied bar by bar.

    Subclasses set ``role`` to one of ``ROLES``, take their parameters as
    keyword arguments, and return from ``transform`` a mapping of output names
    to arrays with one entry per requested row.
    """

    role: ClassVar[str]
    #: Bars after a bar that its training label looks at (0: no forward label).
    horizon: int = 0

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
        ``role``, or rejects the parameters.
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
    if cls.role != role:
        raise ConfigError(
            f"components.{role}: {path!r} is a {cls.role} component; expected a {role} component"
        )
    _check_params(cls, params, f"components.{role}.params")
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"components.{role}.params: {exc}") from None


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
