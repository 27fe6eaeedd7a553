"""Contrastive losses of self-supervised encoders.

The hierarchical contrastive loss is the one of TS2Vec (Yue et al., 2022):
the instance and the temporal contrastive terms are taken on the two views'
representations, which are then max-pooled by 2 along time, and again, until
one step is left; the loss is the mean over the levels.

Each term is an InfoNCE loss written as ``logsumexp(similarities) - positive``
over the similarities of every other candidate, which equals the reference
implementation's ``-log_softmax`` of the similarity matrix without its
diagonal, taken at the positive pairs, without building the shifted matrices.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _paired_info_nce(z: Tensor) -> Tensor:
    # z: (G, 2K, C), rows k and K + k are a positive pair; all other rows of the
    # same group are negatives. Return the mean over both directions of all pairs.
    k = z.size(1) // 2
    sim = torch.matmul(z, z.transpose(1, 2))
    eye = torch.eye(2 * k, dtype=torch.bool, device=z.device)
    lse = torch.logsumexp(sim.masked_fill(eye, float("-inf")), dim=-1)
    positive = (z[:, :k] * z[:, k:]).sum(dim=-1)
    return lse.mean() - positive.mean()


def instance_contrastive_loss(z1: Tensor, z2: Tensor) -> Tensor:
    """Return the instance contrastive loss of two views ``(B, T, C)``.

    At each step, the other view of the same series is the positive and the
    views of the other series of the batch are the negatives. Zero when ``B == 1``.
    """
    if z1.size(0) == 1:
        return z1.new_zeros(())
    return _paired_info_nce(torch.cat([z1, z2], dim=0).transpose(0, 1))


def temporal_contrastive_loss(z1: Tensor, z2: Tensor) -> Tensor:
    """Return the temporal contrastive loss of two views ``(B, T, C)``.

    For each series, the other view at the same step is the positive and both
    views at the other steps are the negatives. Zero when ``T == 1``.
    """
    if z1.size(1) == 1:
        return z1.new_zeros(())
    return _paired_info_nce(torch.cat([z1, z2], dim=1))


def hierarchical_contrastive_loss(
    z1: Tensor, z2: Tensor, alpha: float = 0.5, temporal_unit: int = 0
) -> Tensor:
    """Return the hierarchical contrastive loss of two aligned views ``(B, T, C)``.

    Parameters
    ----------
    z1, z2 : Tensor
        Representations of the same steps under two contexts.
    alpha : float
        Weight of the instance term; the temporal term weighs ``1 - alpha``.
    temporal_unit : int
        The temporal term is left out at the first ``temporal_unit`` levels.
    """
    loss = z1.new_zeros(())
    level = 0
    while z1.size(1) > 1:
        if alpha != 0:
            loss = loss + alpha * instance_contrastive_loss(z1, z2)
        if level >= temporal_unit and alpha != 1:
            loss = loss + (1 - alpha) * temporal_contrastive_loss(z1, z2)
        level += 1
        z1 = F.max_pool1d(z1.transpose(1, 2), kernel_size=2).transpose(1, 2)
        z2 = F.max_pool1d(z2.transpose(1, 2), kernel_size=2).transpose(1, 2)
    if alpha != 0:
        loss = loss + alpha * instance_contrastive_loss(z1, z2)
    level += 1
    return loss / level


def masked_mse(prediction: Tensor, target: Tensor, scored: Tensor) -> Tensor:
    """Return the mean squared error of ``(B, T, F)`` tensors over the scored steps.

    ``scored`` ``(B, T)`` marks the steps that count; the result is zero when
    no step is scored.
    """
    error = (prediction - target).pow(2).mean(dim=-1)
    weight = scored.to(error.dtype)
    return (error * weight).sum() / weight.sum().clamp(min=1.0)
