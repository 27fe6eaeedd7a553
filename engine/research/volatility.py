"""Realised variance, its forecast target, and the linear forecasters that predict it.

Realised variance over a window is the mean squared one-bar log return. The
target at bar t is the log realised variance of the next ``horizon`` bars;
features at bar t use bars up to and including t. A HAR-RV model (ordinary
least squares on the log realised variance of the last day, week and month)
is the benchmark a representation's ridge probe must beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

# Variances are floored here before the log, so a window without any price
# change (a halted or stale market) gives a large negative log instead of -inf.
VARIANCE_FLOOR = 1e-12


def log_returns(close: np.ndarray) -> np.ndarray:
    """Return one-bar log returns ``r_t = log(close_t / close_{t-1})``, with ``r_0 = 0``.

    Parameters
    ----------
    close : numpy.ndarray
        ``(T,)`` positive finite closing prices.

    Returns
    -------
    numpy.ndarray
        ``(T,)`` float64 returns; bar 0 has no previous close and gets 0.
    """
    close = np.asarray(close, dtype=np.float64)
    if close.ndim != 1:
        raise ValueError(f"close must be a 1-D array, got shape {close.shape}")
    if not (np.isfinite(close).all() and (close > 0).all()):
        raise ValueError("close must hold positive finite prices")
    returns = np.zeros(len(close))
    returns[1:] = np.diff(np.log(close))
    return returns


def realised_variance(close: np.ndarray, window: int) -> np.ndarray:
    """Return the mean squared one-bar log return over the last ``window`` bars.

    Row t averages ``r_s ** 2`` for ``s = t - window + 1 .. t``; rows before
    ``window`` (fewer than ``window`` returns) are NaN. Causal: the running sum
    of squared returns accumulates in bar order, so row t reads closes 0..t
    only and is bit-identical whatever the later closes.

    Parameters
    ----------
    close : numpy.ndarray
        ``(T,)`` positive closing prices.
    window : int
        Returns per average, at least 1.

    Returns
    -------
    numpy.ndarray
        ``(T,)`` float64 variances, never negative.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1 bar, got {window}")
    running = np.cumsum(log_returns(close) ** 2)
    out = np.full(len(running), np.nan)
    out[window:] = np.maximum(running[window:] - running[:-window], 0.0) / window
    return out


def future_log_variance(close: np.ndarray, horizon: int = 24) -> np.ndarray:
    """Return the log realised variance of the next ``horizon`` bars: the target.

    Row t is ``log(max(mean(r_s ** 2), 1e-12))`` over ``s = t + 1 .. t + horizon``
    (the floor keeps a window without price changes finite); the last
    ``horizon`` rows are NaN. It reads the future by design and is only a label.

    Parameters
    ----------
    close : numpy.ndarray
        ``(T,)`` positive closing prices.
    horizon : int
        Bars ahead.

    Returns
    -------
    numpy.ndarray
        ``(T,)`` float64 targets.
    """
    variance = realised_variance(close, horizon)
    out = np.full(len(variance), np.nan)
    out[: max(len(variance) - horizon, 0)] = np.log(np.maximum(variance[horizon:], VARIANCE_FLOOR))
    return out


def har_features(close: np.ndarray, windows: tuple[int, ...] = (24, 168, 720)) -> np.ndarray:
    """Return the HAR-RV features: log realised variance over trailing windows.

    Column j at row t is ``log(max(mean(r_s ** 2), 1e-12))`` over
    ``s = t - windows[j] + 1 .. t`` (a day, a week and a month of hourly bars
    by default), NaN where fewer than ``windows[j]`` returns exist. Causal: row
    t reads closes 0..t only.

    Parameters
    ----------
    close : numpy.ndarray
        ``(T,)`` positive closing prices.
    windows : tuple of int
        Window lengths in bars.

    Returns
    -------
    numpy.ndarray
        ``(T, len(windows))`` float64 features.
    """
    columns = [realised_variance(close, window) for window in windows]
    with np.errstate(invalid="ignore"):
        return np.log(np.maximum(np.column_stack(columns), VARIANCE_FLOOR))


@dataclass(frozen=True)
class LinearForecast:
    """A fitted linear forecaster of log variance.

    Attributes
    ----------
    model : sklearn regressor
        The fitted estimator (a standardiser and ridge, or least squares).
    alpha : float or None
        The ridge penalty chosen on the validation rows; None for least squares.
    """

    model: RegressorMixin
    alpha: float | None

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Return the forecasts for the rows of ``x``."""
        return self.model.predict(np.asarray(x, dtype=np.float64))


def _training_rows(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Check the training rows: x (n, p) and y (n,), all finite.
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.shape != (len(x),):
        raise ValueError(f"need x of shape (n, p) and y of shape (n,), got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("training rows must be finite; drop the rows with NaN first")
    return x, y


def fit_ridge(
    x_train: np.ndarray,
    y_train: np.ndarray,
    alphas: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1000.0),
    validation_share: float = 0.2,
    gap: int = 0,
) -> LinearForecast:
    """Fit a ridge regression on standardised features, choosing the penalty in time order.

    The training rows are taken in time order. The last
    ``round(validation_share * n)`` rows (at least one) are the validation
    part; the ``gap`` rows before them are dropped; the rows before the gap are
    the fit part. For each alpha, a standardiser and ``sklearn`` ``Ridge`` are
    fitted on the fit part and scored by mean squared error on the validation
    part; the first alpha with the lowest error is kept, and the standardiser
    and ridge are refitted with it on all training rows. Nothing after the
    training rows is read, and the validation part never informs the fit
    part's scaling.

    Parameters
    ----------
    x_train : numpy.ndarray
        ``(n, p)`` finite features, in time order.
    y_train : numpy.ndarray
        ``(n,)`` finite targets.
    alphas : tuple of float
        Candidate penalties.
    validation_share : float
        Share of the training rows held out to choose alpha, in (0, 1).
    gap : int
        Rows dropped between the fit and validation parts (the label horizon,
        so no fit label overlaps a validation bar).

    Returns
    -------
    LinearForecast
        The refitted model and the chosen alpha.
    """
    x, y = _training_rows(x_train, y_train)
    if not 0.0 < validation_share < 1.0:
        raise ValueError(
            f"validation_share must lie strictly between 0 and 1, got {validation_share}"
        )
    if gap < 0 or not alphas:
        raise ValueError(f"need gap >= 0 and at least one alpha, got gap={gap}, alphas={alphas}")
    validation = max(int(round(validation_share * len(y))), 1)
    fitted = len(y) - validation - gap
    if fitted < 2:
        raise ValueError(
            f"{len(y)} training rows leave {fitted} to fit after {validation} validation "
            f"and {gap} gap rows; need at least 2"
        )
    errors = []
    for alpha in alphas:
        model = make_pipeline(StandardScaler(), Ridge(alpha=alpha))
        model.fit(x[:fitted], y[:fitted])
        errors.append(np.mean((model.predict(x[-validation:]) - y[-validation:]) ** 2))
    alpha = float(alphas[int(np.argmin(errors))])
    return LinearForecast(make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(x, y), alpha)


def fit_har(har_train: np.ndarray, y_train: np.ndarray) -> LinearForecast:
    """Fit the HAR-RV model: ordinary least squares with an intercept.

    Parameters
    ----------
    har_train : numpy.ndarray
        ``(n, p)`` finite HAR features (``har_features``) of the training rows.
    y_train : numpy.ndarray
        ``(n,)`` finite targets (``future_log_variance``).

    Returns
    -------
    LinearForecast
        The fitted model, with ``alpha`` None.
    """
    x, y = _training_rows(har_train, y_train)
    return LinearForecast(LinearRegression().fit(x, y), None)


def _finite_pairs(y: np.ndarray, yhat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # The rows where both the target and the forecast are finite.
    y = np.asarray(y, dtype=np.float64)
    yhat = np.asarray(yhat, dtype=np.float64)
    if y.ndim != 1 or y.shape != yhat.shape:
        raise ValueError(
            f"y and yhat must be 1-D of the same length, got {y.shape} and {yhat.shape}"
        )
    finite = np.isfinite(y) & np.isfinite(yhat)
    return y[finite], yhat[finite]


def r2(y: np.ndarray, yhat: np.ndarray) -> float:
    """Return the coefficient of determination on the rows where both are finite.

    ``1 - sum((y - yhat) ** 2) / sum((y - mean(y)) ** 2)``, with ``mean(y)``
    over the same rows: below 0 when the forecast is worse than that mean.
    NaN with fewer than two rows or a constant ``y``.
    """
    y, yhat = _finite_pairs(y, yhat)
    total = np.sum((y - y.mean()) ** 2) if y.size >= 2 else 0.0
    return float(1.0 - np.sum((y - yhat) ** 2) / total) if total > 0 else float("nan")


def qlike_losses(y_log_var: np.ndarray, yhat_log_var: np.ndarray) -> np.ndarray:
    """Return each row's QLIKE loss ``v / vh - log(v / vh) - 1`` (NaN where either is not finite).

    ``v = exp(y)`` is the realised and ``vh = exp(yhat)`` the forecast
    variance; a row's loss is 0 for a perfect forecast and positive
    otherwise, and it punishes under-forecasting variance more than
    over-forecasting.
    """
    y = np.asarray(y_log_var, dtype=np.float64)
    yhat = np.asarray(yhat_log_var, dtype=np.float64)
    if y.ndim != 1 or y.shape != yhat.shape:
        raise ValueError(
            f"y and yhat must be 1-D of the same length, got {y.shape} and {yhat.shape}"
        )
    log_ratio = y - yhat
    return np.where(np.isfinite(log_ratio), np.exp(log_ratio) - log_ratio - 1.0, np.nan)


def qlike(y_log_var: np.ndarray, yhat_log_var: np.ndarray) -> float:
    """Return the mean ``qlike_losses`` on the rows where both are finite (NaN without rows)."""
    losses = qlike_losses(y_log_var, yhat_log_var)
    finite = losses[np.isfinite(losses)]
    return float(finite.mean()) if finite.size else float("nan")
