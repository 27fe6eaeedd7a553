"""How much to trust the best of many backtests: the Deflated Sharpe Ratio and the PBO.

``deflated_sharpe`` is the Deflated Sharpe Ratio of Bailey and López de
Prado (2014): the probability that the selected trial's true Sharpe ratio is
above the largest Sharpe ratio that ``N`` trials of no skill would be
expected to reach, given the variance of the trials' Sharpe ratios and the
skewness and kurtosis of the selected trial's returns.

``pbo`` is the Probability of Backtest Overfitting by combinatorially
symmetric cross-validation (CSCV) of Bailey, Borwein, López de Prado and Zhu
(2017): the periods are cut into ``S`` blocks; for every way of choosing
``S / 2`` of them as the in-sample set (the others out of sample), the trial
with the best in-sample Sharpe ratio is ranked among all trials out of
sample. The PBO is the share of splits in which that trial ranks at or below
the out-of-sample median (logit of its relative rank at most 0).

Sharpe ratios here are per period (mean over standard deviation, not
annualised); a series with no variation has a Sharpe ratio of 0.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: The Euler-Mascheroni constant.
EULER_GAMMA = 0.5772156649015329


def sharpe_ratios(returns: np.ndarray) -> np.ndarray:
    """Return the per-period Sharpe ratio of each column of ``returns`` (T, N)."""
    mean = returns.mean(axis=0)
    std = returns.std(axis=0, ddof=1)
    safe = np.where(std > 0, std, 1.0)
    return np.where(std > 0, mean / safe, 0.0)


def expected_max_sharpe(variance: float, trials: int) -> float:
    """Return the expected largest Sharpe ratio of ``trials`` unskilled trials.

    ``variance`` is the variance of the trials' Sharpe ratios; one trial
    has no selection, hence 0.
    """
    if trials < 2:
        return 0.0
    normal = stats.norm.ppf
    return math.sqrt(variance) * (
        (1 - EULER_GAMMA) * normal(1 - 1 / trials) + EULER_GAMMA * normal(1 - 1 / (trials * math.e))
    )


@dataclass(frozen=True)
class DeflatedSharpe:
    """The Deflated Sharpe Ratio and what it was computed from."""

    dsr: float
    sharpe: float
    expected_max_sharpe: float
    trials: int
    sharpe_variance: float
    periods: int
    skewness: float
    kurtosis: float


def deflated_sharpe(returns: np.ndarray, best: int) -> DeflatedSharpe:
    """Return the Deflated Sharpe Ratio of trial ``best`` among the columns of ``returns``.

    Parameters
    ----------
    returns : numpy.ndarray
        Per-period returns (T, N) of N trials over the same T periods.
    best : int
        The column of the selected trial.
    """
    periods, trials = returns.shape
    if periods < 3:
        raise ValueError(f"need at least 3 periods of returns, got {periods}")
    ratios = sharpe_ratios(returns)
    variance = float(ratios.var(ddof=1)) if trials > 1 else 0.0
    threshold = expected_max_sharpe(variance, trials)
    chosen = returns[:, best]
    sharpe = float(ratios[best])
    varied = chosen.std() > 0
    skewness = float(stats.skew(chosen)) if varied else 0.0
    kurtosis = float(stats.kurtosis(chosen, fisher=False)) if varied else 3.0
    spread = 1 - skewness * sharpe + (kurtosis - 1) / 4 * sharpe**2
    dsr = stats.norm.cdf((sharpe - threshold) * math.sqrt(periods - 1) / math.sqrt(spread))
    return DeflatedSharpe(
        float(dsr), sharpe, threshold, trials, variance, periods, skewness, kurtosis
    )


@dataclass(frozen=True)
class Overfitting:
    """The PBO by CSCV and the logit of the chosen trial's out-of-sample rank per split."""

    pbo: float
    logits: np.ndarray
    blocks: int


def pbo(returns: np.ndarray, blocks: int = 16) -> Overfitting:
    """Return the Probability of Backtest Overfitting of the trials in ``returns`` (T, N).

    The T periods are cut into ``blocks`` (even) contiguous blocks of near
    equal length. Ties in out-of-sample performance share their mean rank;
    ties in-sample go to the first trial.
    """
    periods, trials = returns.shape
    if blocks < 2 or blocks % 2:
        raise ValueError(f"blocks must be an even number of at least 2, got {blocks}")
    if periods < 2 * blocks:
        raise ValueError(f"need at least 2 periods per block: {periods} periods, {blocks} blocks")
    if trials < 2:
        raise ValueError(f"need at least 2 trials, got {trials}")
    parts = np.array_split(np.arange(periods), blocks)
    logits = []
    for chosen in itertools.combinations(range(blocks), blocks // 2):
        inside = np.concatenate([parts[b] for b in chosen])
        outside = np.concatenate([parts[b] for b in range(blocks) if b not in chosen])
        best = int(np.argmax(sharpe_ratios(returns[inside])))
        outcome = sharpe_ratios(returns[outside])
        # The best trial's rank out of sample, ties sharing their mean rank.
        rank = np.sum(outcome < outcome[best]) + (np.sum(outcome == outcome[best]) + 1) / 2
        share = rank / (trials + 1)
        logits.append(math.log(share / (1 - share)))
    values = np.array(logits)
    return Overfitting(float(np.mean(values <= 0)), values, blocks)
