"""The Deflated Sharpe Ratio and the PBO against hand-computed cases and synthetic trials."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.research.overfitting import (
    deflated_sharpe,
    expected_max_sharpe,
    pbo,
    sharpe_ratios,
)


def test_sharpe_ratio_of_four_returns_matches_the_hand_computation():
    returns = np.array([[0.01], [-0.02], [0.03], [0.0]])
    # mean 0.005; squared deviations 2.5e-5 + 6.25e-4 + 6.25e-4 + 2.5e-5 = 1.3e-3 over 3.
    assert sharpe_ratios(returns)[0] == pytest.approx(0.005 / math.sqrt(1.3e-3 / 3), rel=1e-12)


def test_a_flat_series_has_a_sharpe_ratio_of_zero():
    assert sharpe_ratios(np.zeros((5, 2))).tolist() == [0.0, 0.0]


def test_expected_max_sharpe_of_ten_trials_matches_normal_tables():
    # Phi^-1(1 - 1/10) = 1.28155 and Phi^-1(1 - 1/(10 e)) = Phi^-1(0.963212) = 1.78968.
    gamma = 0.5772156649
    by_hand = 0.2 * ((1 - gamma) * 1.28155 + gamma * 1.78968)
    assert expected_max_sharpe(0.04, 10) == pytest.approx(by_hand, abs=1e-4)
    assert expected_max_sharpe(0.04, 1) == 0.0


def test_deflated_sharpe_of_one_trial_is_the_probabilistic_sharpe_ratio():
    chosen = np.array([0.01, -0.02, 0.03, 0.0, 0.02, 0.01])
    result = deflated_sharpe(chosen[:, None], 0)
    mean, std = chosen.mean(), chosen.std(ddof=1)
    centred = chosen - mean
    skew = (centred**3).mean() / (centred**2).mean() ** 1.5
    kurt = (centred**4).mean() / (centred**2).mean() ** 2
    sr = mean / std
    z = sr * math.sqrt(5) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    assert result.expected_max_sharpe == 0.0
    assert result.dsr == pytest.approx(0.5 * (1 + math.erf(z / math.sqrt(2))), rel=1e-12)


def test_pbo_of_two_trials_that_swap_places_is_one():
    # Blocks are periods 0-1 and 2-3. Trial 0 wins the first block (Sharpe 2.12 vs 0.71)
    # and loses the second (0 vs 1.41), so the in-sample winner always ranks last out of
    # sample: relative rank 1/3, logit ln(1/2).
    returns = np.array([[0.02, 0.00], [0.04, 0.02], [-0.01, 0.01], [0.01, 0.03]])
    result = pbo(returns, blocks=2)
    assert result.pbo == 1.0
    np.testing.assert_allclose(result.logits, [math.log(0.5)] * 2, rtol=1e-12)


def test_pbo_of_a_trial_better_in_every_block_is_zero():
    returns = np.array([[0.02, 0.00], [0.04, 0.02], [0.02, 0.00], [0.04, 0.02]])
    result = pbo(returns, blocks=2)
    assert result.pbo == 0.0
    np.testing.assert_allclose(result.logits, [math.log(2)] * 2, rtol=1e-12)


def test_pure_noise_trials_give_pbo_near_one_half_and_no_significant_dsr():
    values = []
    for seed in range(3):
        returns = np.random.default_rng(seed).normal(0.0, 0.01, size=(600, 20))
        values.append(pbo(returns, blocks=10).pbo)
        best = int(np.argmax(sharpe_ratios(returns)))
        assert deflated_sharpe(returns, best).dsr < 0.95
    assert 0.35 < np.mean(values) < 0.65


def test_a_planted_edge_gives_a_low_pbo_and_a_significant_dsr():
    returns = np.random.default_rng(7).normal(0.0, 0.01, size=(600, 20))
    returns[:, 3] += 0.002
    result = pbo(returns, blocks=10)
    assert result.pbo < 0.1
    assert deflated_sharpe(returns, 3).dsr > 0.95


@pytest.mark.parametrize("blocks", [1, 3])
def test_pbo_refuses_an_odd_number_of_blocks(blocks):
    with pytest.raises(ValueError, match="even"):
        pbo(np.zeros((40, 3)), blocks=blocks)
