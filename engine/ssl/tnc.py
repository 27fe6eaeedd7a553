"""TNC: temporal neighbourhood coding.

Follows Tonekaboni et al., "Unsupervised Representation Learning for Time
Series with Temporal Neighborhood Coding" (ICLR 2021): an encoder and a
discriminator are trained together; the discriminator tells whether two
window representations come from the same temporal neighbourhood, and the
loss treats distant windows as unlabelled rather than as certain negatives
(positive-unlabelled weighting).

Encoder and windows. The encoder is the causal dilated convolution stack of
TS2Vec (``engine.ssl.ts2vec``), which gives every bar a representation that
depends on bars ``<= t`` only. The representation of the window ending at
bar t is the representation of bar t, so one forward pass over a training
window yields the representation of every window in it.

Neighbourhoods. The paper sizes each neighbourhood with an ADF stationarity
test; here its half-width is a fixed hyperparameter, ``neighbourhood`` bars.
For each of ``samples`` anchors t per training window, one neighbour is drawn
uniformly from ``t - neighbourhood .. t + neighbourhood`` (t itself
excluded; mirrored about t where it would leave the window), and one
non-neighbour uniformly from the bars at least ``4 * neighbourhood`` away
from t, on either side. Training windows must hold ``8 * neighbourhood``
bars, so every anchor has non-neighbours.

Loss. With discriminator outputs ``d`` (logits) on anchor-neighbour and
anchor-non-neighbour pairs, binary cross-entropy ``bce``, and PU weight
``w`` (``unlabelled_weight``)::

    L = (bce(d_neighbour, 1) + (1 - w) * bce(d_far, 0) + w * bce(d_far, 1)) / 2

The discriminator is a two-layer perceptron on the concatenated pair, as in
the paper, without its dropout (all training randomness must come from the
generator, and none is needed).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.errors import ConfigError
from engine.ssl.base import Encoder
from engine.ssl.ts2vec import TS2Vec

__all__ = ["TNC"]

FAR_FACTOR = 4


class TNC(Encoder):
    """TNC encoder: causal convolutions trained by neighbourhood discrimination.

    Parameters
    ----------
    input_dims : int
        Number of features per step.
    output_dims : int
        Size of each representation.
    hidden_dims : int
        Hidden channels of the convolution stack.
    depth : int
        Hidden residual blocks of the convolution stack.
    neighbourhood : int
        Half-width, in bars, of an anchor's neighbourhood.
    samples : int
        Anchors drawn per training window.
    unlabelled_weight : float
        Weight, in ``[0, 1)``, with which a distant window counts as a neighbour.
    """

    kind = "tnc"

    def __init__(
        self,
        input_dims: int,
        output_dims: int = 64,
        hidden_dims: int = 32,
        depth: int = 4,
        neighbourhood: int = 8,
        samples: int = 16,
        unlabelled_weight: float = 0.05,
    ) -> None:
        if neighbourhood < 1:
            raise ConfigError(f"tnc: neighbourhood must be at least 1; got {neighbourhood!r}")
        if samples < 1:
            raise ConfigError(f"tnc: samples must be at least 1; got {samples!r}")
        if not 0.0 <= unlabelled_weight < 1.0:
            raise ConfigError(
                f"tnc: unlabelled_weight must lie in [0, 1); got {unlabelled_weight!r}"
            )
        super().__init__(input_dims, output_dims)
        self.neighbourhood = neighbourhood
        self.samples = samples
        self.unlabelled_weight = unlabelled_weight
        self.encoder = TS2Vec(
            input_dims, output_dims=output_dims, hidden_dims=hidden_dims, depth=depth
        )
        self.discriminator = nn.Sequential(
            nn.Linear(2 * output_dims, 4 * output_dims),
            nn.ReLU(),
            nn.Linear(4 * output_dims, 1),
        )

    def config(self) -> dict[str, Any]:
        """Return the keyword arguments that rebuild this encoder."""
        return {
            "input_dims": self.input_dims,
            "output_dims": self.output_dims,
            "hidden_dims": self.encoder.hidden_dims,
            "depth": self.encoder.depth,
            "neighbourhood": self.neighbourhood,
            "samples": self.samples,
            "unlabelled_weight": self.unlabelled_weight,
        }

    def receptive_field(self) -> int:
        """Return the number of bars, the current one included, that shape a representation."""
        return self.encoder.receptive_field()

    def forward(self, x: Tensor) -> Tensor:
        """Return the causal representation ``(B, T, output_dims)`` of ``x`` ``(B, T, F)``."""
        return self.encoder(x)

    def sample_pairs(
        self, batch: int, length: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Draw anchor, neighbour and non-neighbour steps, each of shape ``(batch, samples)``.

        Raises
        ------
        ConfigError
            If a window of ``length`` steps cannot hold an anchor's far bars.
        """
        far = FAR_FACTOR * self.neighbourhood
        if length < 2 * far:
            raise ConfigError(
                f"tnc: training windows must hold at least {2 * FAR_FACTOR} * neighbourhood = "
                f"{2 * far} steps; got {length} (raise max_train_length or lower neighbourhood)"
            )
        shape = (batch, self.samples)
        anchors = torch.randint(length, shape, generator=generator)
        # Neighbour: an offset in [-n, n] without 0, mirrored if it leaves the window.
        offsets = torch.randint(2 * self.neighbourhood, shape, generator=generator)
        offsets = offsets - self.neighbourhood + (offsets >= self.neighbourhood).long()
        neighbours = anchors + offsets
        outside = (neighbours < 0) | (neighbours >= length)
        neighbours = torch.where(outside, anchors - offsets, neighbours)
        # Non-neighbour: uniform over [0, anchor - far] and [anchor + far, length - 1].
        before = (anchors - far + 1).clamp(min=0)
        after = (length - anchors - far).clamp(min=0)
        draw = (
            torch.rand(shape, generator=generator, dtype=torch.float64) * (before + after)
        ).long()
        distant = torch.where(draw < before, draw, anchors + far + draw - before)
        return anchors, neighbours, distant

    def training_loss(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Return the positive-unlabelled discrimination loss of neighbour pairs."""
        z = self.encoder(x)
        anchors, neighbours, distant = self.sample_pairs(x.shape[0], x.shape[1], generator)
        rows = torch.arange(x.shape[0]).unsqueeze(1)
        anchor_z = z[rows, anchors]
        near_logits = self.discriminator(torch.cat([anchor_z, z[rows, neighbours]], dim=-1))
        far_logits = self.discriminator(torch.cat([anchor_z, z[rows, distant]], dim=-1))
        weight = self.unlabelled_weight
        near = F.binary_cross_entropy_with_logits(near_logits, torch.ones_like(near_logits))
        far_negative = F.binary_cross_entropy_with_logits(far_logits, torch.zeros_like(far_logits))
        far_positive = F.binary_cross_entropy_with_logits(far_logits, torch.ones_like(far_logits))
        return (near + (1 - weight) * far_negative + weight * far_positive) / 2
