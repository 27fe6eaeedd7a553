"""A hybrid objective: a contrastive encoder plus masked reconstruction.

``Hybrid`` wraps any contrastive encoder of the registry (TS2Vec, TNC, CoST)
and trains it on::

    L = alpha * contrastive + beta * reconstruction

where ``contrastive`` is the inner encoder's own ``training_loss`` and
``reconstruction`` is the mean squared error of a linear head that maps each
step's representation back to that step's features. Before reconstruction, a
share ``mask_ratio`` of the steps (each step independently) is hidden from
the encoder by setting it to NaN, which every encoder treats as a missing
step; the error is taken on the hidden steps only, so the representation of
bar t must predict bar t from bars before it. With ``mask_ratio = 0`` nothing
is hidden and the error is taken on every step. Steps missing in the input
are never scored.

Inference is the inner encoder's: ``forward`` and ``receptive_field`` pass
through, so causality is the inner encoder's. The wrapper is itself an
``Encoder`` and is saved, loaded and pretrained like any other.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from engine.errors import ConfigError
from engine.ssl.augmentations import sample_time_mask
from engine.ssl.base import Encoder
from engine.ssl.losses import masked_mse

__all__ = ["CONTRASTIVE_KINDS", "Hybrid"]

CONTRASTIVE_KINDS = ("ts2vec", "tnc", "cost")


class Hybrid(Encoder):
    """A contrastive encoder trained with an added reconstruction loss.

    Parameters
    ----------
    input_dims : int
        Number of features per step.
    inner_kind : str
        Kind of the contrastive encoder, one of ``CONTRASTIVE_KINDS``.
    inner_params : dict, optional
        Hyperparameters of the contrastive encoder, ``input_dims`` excluded.
    alpha : float
        Weight of the contrastive loss, ``>= 0``.
    beta : float
        Weight of the reconstruction loss, ``>= 0``.
    mask_ratio : float
        Probability, in ``[0, 1)``, that a step is hidden for reconstruction.
    """

    kind = "hybrid"

    def __init__(
        self,
        input_dims: int,
        inner_kind: str = "ts2vec",
        inner_params: dict[str, Any] | None = None,
        alpha: float = 1.0,
        beta: float = 1.0,
        mask_ratio: float = 0.5,
    ) -> None:
        if inner_kind not in CONTRASTIVE_KINDS:
            raise ConfigError(
                f"hybrid: inner_kind must be one of {', '.join(CONTRASTIVE_KINDS)}; "
                f"got {inner_kind!r}"
            )
        for name, weight in (("alpha", alpha), ("beta", beta)):
            if weight < 0:
                raise ConfigError(f"hybrid: {name} must be >= 0; got {weight!r}")
        if not 0.0 <= mask_ratio < 1.0:
            raise ConfigError(f"hybrid: mask_ratio must lie in [0, 1); got {mask_ratio!r}")
        # The registry lists this class, so it is imported here, not at the top.
        from engine.ssl.registry import build_encoder

        inner = build_encoder(inner_kind, input_dims, **(inner_params or {}))
        super().__init__(input_dims, inner.output_dims)
        self.inner = inner
        self.alpha = alpha
        self.beta = beta
        self.mask_ratio = mask_ratio
        self.head = nn.Linear(inner.output_dims, input_dims)

    def config(self) -> dict[str, Any]:
        """Return the keyword arguments that rebuild this encoder."""
        inner_params = self.inner.config()
        del inner_params["input_dims"]
        return {
            "input_dims": self.input_dims,
            "inner_kind": self.inner.kind,
            "inner_params": inner_params,
            "alpha": self.alpha,
            "beta": self.beta,
            "mask_ratio": self.mask_ratio,
        }

    def receptive_field(self) -> int | None:
        """Return the inner encoder's receptive field."""
        return self.inner.receptive_field()

    def forward(self, x: Tensor) -> Tensor:
        """Return the inner encoder's causal representation of ``x``."""
        return self.inner(x)

    def reconstruction_loss(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Return the MSE of reconstructing the hidden steps from their representations."""
        missing = x.isnan().any(dim=-1)
        if self.mask_ratio > 0:
            hidden = sample_time_mask(x.shape[0], x.shape[1], self.mask_ratio, generator)
            hidden = hidden.to(x.device)
            scored = hidden & ~missing
        else:
            hidden = missing
            scored = ~missing
        prediction = self.head(self.inner(x.masked_fill(hidden.unsqueeze(-1), float("nan"))))
        return masked_mse(prediction, torch.nan_to_num(x), scored)

    def training_loss(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Return ``alpha * contrastive + beta * reconstruction`` on a batch of windows."""
        contrastive = self.inner.training_loss(x, generator)
        return self.alpha * contrastive + self.beta * self.reconstruction_loss(x, generator)
