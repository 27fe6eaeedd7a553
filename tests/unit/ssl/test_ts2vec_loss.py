"""The hierarchical contrastive loss: hand-checked values and the reference formulation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from engine.ssl.losses import (
    hierarchical_contrastive_loss,
    instance_contrastive_loss,
    temporal_contrastive_loss,
)


def _reference_pairs(sim: torch.Tensor, k: int) -> torch.Tensor:
    # The reference implementation: drop the diagonal by shifting the lower and
    # upper triangles, then take -log_softmax at the positive pairs.
    logits = torch.tril(sim, diagonal=-1)[:, :, :-1]
    logits = logits + torch.triu(sim, diagonal=1)[:, :, 1:]
    logits = -F.log_softmax(logits, dim=-1)
    i = torch.arange(k)
    return (logits[:, i, k + i - 1].mean() + logits[:, k + i, i].mean()) / 2


def _reference_hierarchical(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 0.5):
    loss, level = torch.tensor(0.0, dtype=z1.dtype), 0
    while z1.size(1) > 1:
        z = torch.cat([z1, z2], dim=0).transpose(0, 1)
        loss += alpha * _reference_pairs(z @ z.transpose(1, 2), z1.size(0))
        z = torch.cat([z1, z2], dim=1)
        loss += (1 - alpha) * _reference_pairs(z @ z.transpose(1, 2), z1.size(1))
        level += 1
        z1 = F.max_pool1d(z1.transpose(1, 2), kernel_size=2).transpose(1, 2)
        z2 = F.max_pool1d(z2.transpose(1, 2), kernel_size=2).transpose(1, 2)
    z = torch.cat([z1, z2], dim=0).transpose(0, 1)
    loss += alpha * _reference_pairs(z @ z.transpose(1, 2), z1.size(0))
    return loss / (level + 1)


def test_all_zero_representations_give_log_three_over_four():
    # B = 1: no instance term. Level 0 (T = 2): the temporal term sees 3
    # equally similar candidates, -log(1/3); level 1 (T = 1) adds nothing.
    # Mean over 2 levels of 0.5 * log 3.
    z = torch.zeros(1, 2, 3)
    assert hierarchical_contrastive_loss(z, z).item() == pytest.approx(math.log(3) / 4)


def test_orthogonal_series_give_the_hand_computed_instance_loss():
    # B = 2, T = 1: one level with the instance term only. Each row has the
    # positive at similarity s^2 and two negatives at 0.
    s = 2.0
    z = torch.tensor([[[s, 0.0]], [[0.0, s]]], dtype=torch.float64)
    expected = 0.5 * math.log(1 + 2 * math.exp(-(s**2)))
    assert hierarchical_contrastive_loss(z, z.clone()).item() == pytest.approx(expected)


def test_single_series_and_single_step_terms_are_zero():
    z = torch.randn(1, 5, 4)
    assert instance_contrastive_loss(z, z).item() == 0.0
    z = torch.randn(3, 1, 4)
    assert temporal_contrastive_loss(z, z).item() == 0.0


@pytest.mark.parametrize(("batch", "length"), [(2, 2), (3, 7), (4, 16), (5, 33)])
def test_matches_the_reference_formulation(batch, length):
    generator = torch.Generator().manual_seed(batch * length)
    z1 = torch.randn(batch, length, 6, generator=generator, dtype=torch.float64)
    z2 = torch.randn(batch, length, 6, generator=generator, dtype=torch.float64)
    ours = hierarchical_contrastive_loss(z1, z2)
    torch.testing.assert_close(ours, _reference_hierarchical(z1, z2))


def test_gradients_are_finite_and_match_the_reference():
    generator = torch.Generator().manual_seed(0)
    z1 = torch.randn(3, 9, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(3, 9, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    ours = torch.autograd.grad(hierarchical_contrastive_loss(z1, z2), (z1, z2))
    theirs = torch.autograd.grad(_reference_hierarchical(z1, z2), (z1, z2))
    for a, b in zip(ours, theirs, strict=True):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b)


def test_temporal_unit_skips_the_temporal_term_at_the_first_levels():
    generator = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(2, 8, 3, generator=generator), torch.randn(2, 8, 3, generator=generator)
    instance_only = hierarchical_contrastive_loss(z1, z2, temporal_unit=10)
    expected, a, b = 0.0, z1, z2
    for level in range(4):
        expected += 0.5 * instance_contrastive_loss(a, b).item()
        if level < 3:
            a = F.max_pool1d(a.transpose(1, 2), 2).transpose(1, 2)
            b = F.max_pool1d(b.transpose(1, 2), 2).transpose(1, 2)
    assert instance_only.item() == pytest.approx(expected / 4, rel=1e-6)
