"""A causal masked autoencoder of time series.

Each step's features are projected to ``output_dims`` and passed through a
pre-norm transformer; the final hidden state of a step is its representation.
In training, a fixed share (``mask_ratio``, default one half) of the steps of
every window is replaced by a learned mask token, a linear head reconstructs
the inputs from the hidden states, and the loss is the mean squared error on
the masked steps only.

Causality and bounded context: attention is causal and banded, so step ``t``
attends to steps ``t - context + 1 .. t`` only, in training as in inference
(no train/inference mismatch). Positions enter through a learned bias per
head and per distance (``0 .. context - 1``), not through absolute position
embeddings, so a representation depends on relative offsets alone. Together
these make the representation of bar ``t`` a function of the trailing
``depth * (context - 1) + 1`` bars, and one pass over a long series (computed
in chunks of queries) equals encoding each trailing window separately.

Missing steps (rows holding a NaN) are embedded as the mask token: the
model is trained to represent steps it cannot see. They are never
reconstruction targets.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional

from engine.errors import ConfigError
from engine.ssl.base import Encoder
from engine.ssl.losses import masked_mse

__all__ = ["MaskedAutoencoder"]

_QUERY_CHUNK = 512


class _BandedSelfAttention(nn.Module):
    # Multi-head self-attention of each step over the `context` steps ending at it.
    def __init__(self, dims: int, heads: int, context: int) -> None:
        super().__init__()
        self.heads = heads
        self.context = context
        self.qkv = nn.Linear(dims, 3 * dims)
        self.out = nn.Linear(dims, dims)
        self.distance_bias = nn.Parameter(torch.zeros(heads, context))

    def forward(self, h: Tensor) -> Tensor:
        batch, length, dims = h.shape
        q, k, v = (
            part.reshape(batch, length, self.heads, -1).transpose(1, 2)
            for part in self.qkv(h).chunk(3, dim=-1)
        )
        chunks = []
        for start in range(0, length, _QUERY_CHUNK):
            stop = min(start + _QUERY_CHUNK, length)
            first_key = max(0, start - self.context + 1)
            distance = torch.arange(start, stop).unsqueeze(1) - torch.arange(first_key, stop)
            inside = (distance >= 0) & (distance < self.context)
            bias = self.distance_bias[:, distance.clamp(0, self.context - 1)]
            bias = bias.masked_fill(~inside, float("-inf"))
            chunks.append(
                functional.scaled_dot_product_attention(
                    q[:, :, start:stop],
                    k[:, :, first_key:stop],
                    v[:, :, first_key:stop],
                    attn_mask=bias.to(h.dtype),
                )
            )
        attended = torch.cat(chunks, dim=2).transpose(1, 2).reshape(batch, length, dims)
        return self.out(attended)


class _Block(nn.Module):
    # Pre-norm transformer block: banded attention, then a feed-forward layer.
    def __init__(self, dims: int, heads: int, context: int, feedforward_dims: int) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(dims)
        self.attention = _BandedSelfAttention(dims, heads, context)
        self.feedforward_norm = nn.LayerNorm(dims)
        self.feedforward = nn.Sequential(
            nn.Linear(dims, feedforward_dims), nn.GELU(), nn.Linear(feedforward_dims, dims)
        )

    def forward(self, h: Tensor) -> Tensor:
        h = h + self.attention(self.attention_norm(h))
        return h + self.feedforward(self.feedforward_norm(h))


class MaskedAutoencoder(Encoder):
    """Causal transformer trained to reconstruct masked steps.

    Parameters
    ----------
    input_dims : int
        Number of features per step.
    output_dims : int
        Width of the transformer and size of each representation.
    depth : int
        Number of transformer blocks.
    heads : int
        Attention heads; must divide ``output_dims``.
    context : int
        Steps each attention layer sees, the current one included.
    feedforward_dims : int
        Hidden width of each block's feed-forward layer.
    mask_ratio : float
        Share of the steps of a training window that are masked, in ``(0, 1)``.
    """

    kind = "mae"

    def __init__(
        self,
        input_dims: int,
        output_dims: int = 64,
        depth: int = 2,
        heads: int = 4,
        context: int = 64,
        feedforward_dims: int = 128,
        mask_ratio: float = 0.5,
    ) -> None:
        for name, value in {
            "output_dims": output_dims,
            "depth": depth,
            "heads": heads,
            "context": context,
            "feedforward_dims": feedforward_dims,
        }.items():
            if value < 1:
                raise ConfigError(f"mae: {name} must be at least 1; got {value!r}")
        if output_dims % heads:
            raise ConfigError(
                f"mae: heads must divide output_dims; got heads={heads}, output_dims={output_dims}"
            )
        if not 0.0 < mask_ratio < 1.0:
            raise ConfigError(f"mae: mask_ratio must lie in (0, 1); got {mask_ratio!r}")
        super().__init__(input_dims, output_dims)
        self.depth = depth
        self.heads = heads
        self.context = context
        self.feedforward_dims = feedforward_dims
        self.mask_ratio = mask_ratio
        self.embed = nn.Linear(input_dims, output_dims)
        self.mask_token = nn.Parameter(torch.zeros(output_dims))
        self.blocks = nn.ModuleList(
            _Block(output_dims, heads, context, feedforward_dims) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(output_dims)
        self.reconstruct = nn.Linear(output_dims, input_dims)
        nn.init.normal_(self.mask_token, std=0.02)

    def config(self) -> dict[str, Any]:
        """Return the keyword arguments that rebuild this encoder."""
        return {
            "input_dims": self.input_dims,
            "output_dims": self.output_dims,
            "depth": self.depth,
            "heads": self.heads,
            "context": self.context,
            "feedforward_dims": self.feedforward_dims,
            "mask_ratio": self.mask_ratio,
        }

    def receptive_field(self) -> int:
        """Return the number of bars, the current one included, that shape a representation."""
        return self.depth * (self.context - 1) + 1

    def _encode(self, x: Tensor, hidden: Tensor) -> Tensor:
        # Embed x, put the mask token where `hidden` (B, T) is set, and run the blocks.
        h = self.embed(x)
        h = torch.where(hidden.unsqueeze(-1), self.mask_token.to(h.dtype), h)
        for block in self.blocks:
            h = block(h)
        return self.norm(h)

    def forward(self, x: Tensor) -> Tensor:
        """Return the causal representation ``(B, T, output_dims)`` of ``x`` ``(B, T, F)``."""
        missing = torch.isnan(x).any(dim=-1)
        return self._encode(torch.nan_to_num(x), missing)

    def sample_mask(self, batch: int, length: int, generator: torch.Generator) -> Tensor:
        """Draw the masked steps of a batch: ``max(1, round(mask_ratio * length))`` per row.

        Returns
        -------
        Tensor
            Boolean tensor of shape ``(batch, length)``; ``True`` marks a masked step.
        """
        masked_count = max(1, round(self.mask_ratio * length))
        ranks = torch.rand(batch, length, generator=generator).argsort(dim=1).argsort(dim=1)
        return ranks < masked_count

    def training_loss(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Return the reconstruction MSE on the steps drawn by ``sample_mask``.

        Missing steps are hidden too but never scored.
        """
        masked = self.sample_mask(x.shape[0], x.shape[1], generator).to(x.device)
        missing = torch.isnan(x).any(dim=-1)
        target = torch.nan_to_num(x)
        hidden = self._encode(target, masked | missing)
        return masked_mse(self.reconstruct(hidden), target, masked & ~missing)
