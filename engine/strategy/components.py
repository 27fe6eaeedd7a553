"""The self-supervised strategy components: signal, sizing, risk and execution timing.

Each turns the causal representations z_t of a pretrained encoder into
per-bar outputs, after fitting on a window of past bars only (see
``engine.strategy.base``). Representations are standardised with the fitting
window's statistics before any probe, prototype or anomaly score.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from engine.scaling import Standardiser
from engine.strategy.base import FitContext, History, Risk, Signal, Sizing, Timing
from engine.strategy.features import (
    DOWN,
    UP,
    cosine_to,
    direction_labels,
    forward_return,
    realised_volatility,
)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _labelled(labels: np.ndarray, train: slice) -> np.ndarray:
    rows = labels[train]
    if (rows < 0).any():
        raise ValueError(
            "training rows reach past the last closed bar: the walk-forward embargo must be "
            "at least the label horizon"
        )
    return rows


def _prototype(
    context: FitContext, move: np.ndarray, threshold: float
) -> tuple[Standardiser, np.ndarray | None]:
    # The standardiser of the training rows, and the mean standardised
    # representation of the rows where the signal's direction (the move's own
    # sign without a signal) was followed by a move beyond threshold that way.
    rows = context.past.z[context.train]
    scale = Standardiser.fit(rows)
    direction = context.signal if context.signal is not None else np.sign(move)
    chosen = (direction != 0) & (direction * move > threshold)
    return scale, scale(rows)[chosen].mean(axis=0) if chosen.any() else None


class ProbeSignal(Signal):
    """Predict the direction over ``horizon`` bars with a probe on z_t.

    Three classes split by a return threshold (down, flat, up). The score is
    p_up - p_down in [-1, 1], turned into a direction with the hysteresis of
    ``Signal``.

    Parameters
    ----------
    horizon : int
        Bars ahead that the label looks (default 5).
    threshold : float
        Return beyond which a move is up or down (default 0.005, 0.5%).
    probe : {"linear", "mlp"}
        Multinomial logistic regression, or a one-hidden-layer MLP.
    entry, exit : float
        Score thresholds of the hysteresis.
    allow_short : bool
        If false, negative scores flatten instead of going short.
    regularisation : float
        Inverse L2 strength of the linear probe (scikit-learn's ``C``); strong by
        default, as suits hundreds of correlated representation dimensions.
    seed : int
        Seed of the MLP's initialisation.
    """

    def __init__(
        self,
        horizon: int = 5,
        threshold: float = 0.005,
        probe: str = "linear",
        entry: float = 0.2,
        exit: float = 0.05,
        allow_short: bool = True,
        regularisation: float = 0.01,
        seed: int = 0,
    ) -> None:
        _check(horizon >= 1, f"horizon must be >= 1, got {horizon}")
        _check(threshold > 0, f"threshold must be > 0, got {threshold}")
        _check(probe in ("linear", "mlp"), f"probe must be 'linear' or 'mlp', got {probe!r}")
        _check(0 <= exit <= entry <= 1, f"need 0 <= exit <= entry <= 1, got {exit}, {entry}")
        self.horizon, self.threshold, self.probe = horizon, threshold, probe
        self.entry, self.exit, self.allow_short = entry, exit, allow_short
        self.regularisation, self.seed = regularisation, seed

    def fit(self, context: FitContext) -> None:
        """Fit the standardiser and the probe on the training rows' labels."""
        past, train = context.past, context.train
        labels = _labelled(direction_labels(past.close, self.horizon, self.threshold), train)
        self._scale = Standardiser.fit(past.z[train])
        x = self._scale(past.z[train])
        self._classes = np.unique(labels)
        if len(self._classes) == 1:
            self._model = None
            return
        if self.probe == "linear":
            model = LogisticRegression(C=self.regularisation, max_iter=500)
        else:
            model = MLPClassifier(
                hidden_layer_sizes=(64,), alpha=1e-3, max_iter=200, random_state=self.seed
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x, labels)
        self._model = model

    def probabilities(self, z: np.ndarray) -> np.ndarray:
        """Return (n, 3) probabilities of down, flat and up for representations ``z``."""
        proba = np.zeros((len(z), 3))
        if self._model is None:
            proba[:, self._classes[0]] = 1.0
        else:
            proba[:, self._model.classes_] = self._model.predict_proba(self._scale(z))
        return proba

    def transform(self, history: History, rows: slice) -> dict[str, np.ndarray]:
        """Return ``score`` = p_up - p_down for each row."""
        proba = self.probabilities(history.z[rows])
        return {"score": proba[:, UP] - proba[:, DOWN]}


class PrototypeSizing(Sizing):
    """Size by similarity to the signal's profitable setups, scaled to a volatility target.

    The prototype is the mean standardised representation of the fitting
    window's profitable setups: rows where the fitted signal took a direction
    and the price moved that way over ``horizon`` bars by more than the fees of
    a round trip at market (the strategy's ``costs``). conviction_t =
    base_size * max(cos(z_t, prototype), 0) * target_vol / realised_vol_t,
    capped at ``max_leverage``.

    Parameters
    ----------
    horizon : int
        Bars over which a setup's profit is measured.
    base_size : float
        Exposure, as a fraction of equity, at similarity 1 and target volatility.
    target_vol : float
        Per-bar volatility at which the size equals base_size * similarity.
    vol_window : int
        Bars of one-bar log returns in the realised volatility.
    max_leverage : float
        Cap of the absolute exposure.
    """

    def __init__(
        self,
        horizon: int = 5,
        base_size: float = 1.0,
        target_vol: float = 0.01,
        vol_window: int = 48,
        max_leverage: float = 1.0,
    ) -> None:
        _check(horizon >= 1, f"horizon must be >= 1, got {horizon}")
        _check(base_size > 0, f"base_size must be > 0, got {base_size}")
        _check(target_vol > 0, f"target_vol must be > 0, got {target_vol}")
        _check(vol_window >= 2, f"vol_window must be >= 2, got {vol_window}")
        _check(max_leverage > 0, f"max_leverage must be > 0, got {max_leverage}")
        self.horizon, self.base_size, self.target_vol = horizon, base_size, target_vol
        self.vol_window, self.max_leverage = vol_window, max_leverage

    def fit(self, context: FitContext) -> None:
        """Fit the prototype of profitable setups."""
        past, train = context.past, context.train
        ret = forward_return(past.close, self.horizon)[train]
        _check(not np.isnan(ret).any(), "sizing labels reach past the last closed bar")
        self._scale, self._prototype = _prototype(context, ret, context.costs.round_trip_fee)

    def transform(self, history: History, rows: slice) -> dict[str, np.ndarray]:
        """Return ``size``, the capped conviction of each row."""
        similarity = np.maximum(cosine_to(self._scale(history.z[rows]), self._prototype), 0.0)
        vol = realised_volatility(history.close[: rows.stop], self.vol_window)[rows]
        with np.errstate(invalid="ignore", divide="ignore"):
            size = self.base_size * similarity * self.target_vol / vol
        size = np.where(np.isfinite(size), size, 0.0)
        return {"size": np.minimum(size, self.max_leverage)}


class AnomalyRisk(Risk):
    """Scale exposure down when z_t is far from the fitting window's representations.

    The anomaly score is the largest absolute z-score of z_t over dimensions,
    with the fitting window's mean and standard deviation. Above
    ``threshold`` the risk scale is ``scale`` (or 0 when ``action`` is
    "flatten"), else 1.

    The optional drawdown brake watches the market: while the close is more
    than ``drawdown_brake`` (a fraction) below its highest close of the last
    ``brake_window`` bars, the risk scale is multiplied by ``brake_scale``.
    """

    def __init__(
        self,
        threshold: float = 3.0,
        action: str = "scale",
        scale: float = 0.5,
        drawdown_brake: float | None = None,
        brake_window: int = 720,
        brake_scale: float = 0.0,
    ) -> None:
        _check(threshold > 0, f"threshold must be > 0, got {threshold}")
        _check(
            action in ("scale", "flatten"), f"action must be 'scale' or 'flatten', got {action!r}"
        )
        _check(0 <= scale <= 1, f"scale must be in [0, 1], got {scale}")
        _check(
            drawdown_brake is None or 0 < drawdown_brake < 1,
            f"drawdown_brake must be in (0, 1) or null, got {drawdown_brake}",
        )
        _check(brake_window >= 1, f"brake_window must be >= 1, got {brake_window}")
        _check(0 <= brake_scale <= 1, f"brake_scale must be in [0, 1], got {brake_scale}")
        self.threshold, self.action, self.scale = threshold, action, scale
        self.drawdown_brake, self.brake_window = drawdown_brake, brake_window
        self.brake_scale = brake_scale

    @property
    def outputs(self) -> tuple[str, ...]:
        """Return ``anomaly`` and ``risk_scale``, and ``drawdown`` with the brake."""
        brake = () if self.drawdown_brake is None else ("drawdown",)
        return ("anomaly", "risk_scale", *brake)

    def fit(self, context: FitContext) -> None:
        """Fit the mean and standard deviation of the training representations."""
        self._scale = Standardiser.fit(context.past.z[context.train])

    def transform(self, history: History, rows: slice) -> dict[str, np.ndarray]:
        """Return ``anomaly``, ``risk_scale`` and, with the brake, ``drawdown`` for each row."""
        anomaly = np.abs(self._scale(history.z[rows])).max(axis=1)
        reduced = 0.0 if self.action == "flatten" else self.scale
        out = {"anomaly": anomaly, "risk_scale": np.where(anomaly > self.threshold, reduced, 1.0)}
        if self.drawdown_brake is not None:
            close = history.close[: rows.stop]
            peak = pd.Series(close).rolling(self.brake_window, min_periods=1).max().to_numpy()
            drawdown = 1.0 - close[rows] / peak[rows]
            braked = drawdown > self.drawdown_brake
            out["drawdown"] = drawdown
            out["risk_scale"] = np.where(
                braked, out["risk_scale"] * self.brake_scale, out["risk_scale"]
            )
        return out


class SimilarityTiming(Timing):
    """Choose how to execute from the similarity of z_t to favourable execution patterns.

    A fitting-window row is a favourable pattern for acting at once when the
    signal took a direction there and the price then ran that way: from the
    next bar's open to the close ``horizon`` bars later it moved more than
    ``offset``, so a limit order ``offset`` away, or waiting, would have cost
    more than it saved. When a new target arrives, the mode is market if the
    similarity exceeds ``market_above``, a limit order ``offset`` away from the
    close if it exceeds ``limit_above``, else wait, at most ``max_wait`` bars
    before going to market (see ``Timing``).
    """

    def __init__(
        self,
        horizon: int = 3,
        market_above: float = 0.8,
        limit_above: float = 0.5,
        offset: float = 0.001,
        max_wait: int = 3,
    ) -> None:
        _check(horizon >= 1, f"horizon must be >= 1, got {horizon}")
        super().__init__(market_above, limit_above, offset, max_wait)
        self.horizon = horizon

    def fit(self, context: FitContext) -> None:
        """Fit the prototype of favourable immediate executions."""
        past, train = context.past, context.train
        start, stop = train.start, train.stop
        _check(stop + self.horizon <= len(past), "timing labels reach past the last closed bar")
        run = (
            past.close[start + self.horizon : stop + self.horizon] / past.open[start + 1 : stop + 1]
        )
        self._scale, self._prototype = _prototype(context, run - 1.0, self.offset)

    def transform(self, history: History, rows: slice) -> dict[str, np.ndarray]:
        """Return ``similarity`` of each row to the favourable-execution prototype."""
        return {"similarity": cosine_to(self._scale(history.z[rows]), self._prototype)}
