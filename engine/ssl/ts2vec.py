"""TS2Vec: universal time-series representations by hierarchical contrast.

Follows Yue et al., "TS2Vec: Towards Universal Representation of Time Series"
(AAAI 2022) and the design of its reference implementation:

- a linear input projection to ``hidden_dims`` channels;
- during training, timestamp masking: each step's latent vector is zeroed with
  probability 0.5 (Bernoulli), then dropout 0.1 on the output representation;
- a dilated convolutional encoder of ``depth + 1`` residual blocks (``depth``
  of ``hidden_dims`` channels, one projecting to ``output_dims``), each block
  ``GELU -> conv -> GELU -> conv`` plus a residual (a 1x1 projection where the
  width changes and on the last block), kernel 3, dilation ``2**i`` in block i;
- two random overlapping crops of each training window per batch, with the
  hierarchical contrastive loss (``engine.ssl.losses``) on their overlap.

Causality. The reference pads every convolution symmetrically ("same"
padding), so a step sees the future. Here every convolution is causal in
training and in inference alike: it is padded on the left only, by
``2 * dilation`` zeros, so the representation of step t depends on steps
``<= t`` only. Training with the same convolutions that encode avoids a
train/inference mismatch; the contextual-consistency task keeps its meaning
(the overlap is seen with two different left contexts; the right context,
which causal convolutions cannot see, is not computed). The receptive field is
``1 + 4 * (2**(depth + 1) - 1)`` steps (8,189 for depth 10). ``causal=False``
restores the reference's symmetric padding, to reproduce the paper's
whole-series classification protocol (``benchmarks/ucr.py``); such an encoder
is refused for pretraining and bar-by-bar encoding.

Missing steps. A step whose features hold a NaN is treated as missing, as in
the reference: its input is zeroed and its latent vector masked.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.ssl.base import Encoder
from engine.ssl.losses import hierarchical_contrastive_loss

MASK_PROBABILITY = 0.5
DROPOUT = 0.1


class _DilatedConv(nn.Conv1d):
    # A kernel-3 dilated convolution, causal (padded on the left only: output t
    # sees inputs <= t) or "same" (padded on both sides, as in the reference).
    # Taps that reach further than the input is long would meet padding zeros
    # only; they are left out, which changes no value but saves most of the
    # work of the widest dilations on short inputs.
    def __init__(self, in_channels: int, out_channels: int, dilation: int, causal: bool) -> None:
        super().__init__(in_channels, out_channels, kernel_size=3, dilation=dilation)
        self.causal = causal

    def forward(self, x: Tensor) -> Tensor:
        dilation = self.dilation[0]
        if not self.causal:
            if x.size(-1) <= dilation:
                return F.conv1d(x, self.weight[..., 1:2].contiguous(), self.bias)
            return F.conv1d(x, self.weight, self.bias, padding=dilation, dilation=dilation)
        reach = min(2, (x.size(-1) - 1) // dilation)
        if reach == 2:
            return F.conv1d(F.pad(x, (2 * dilation, 0)), self.weight, self.bias, dilation=dilation)
        weight = self.weight[..., 2 - reach :].contiguous()
        if reach == 0:
            return F.conv1d(x, weight, self.bias)
        return F.conv1d(F.pad(x, (reach * dilation, 0)), weight, self.bias, dilation=dilation)


class _ConvBlock(nn.Module):
    def __init__(
        self, in_channels: int, out_channels: int, dilation: int, final: bool, causal: bool
    ) -> None:
        super().__init__()
        self.conv1 = _DilatedConv(in_channels, out_channels, dilation, causal)
        self.conv2 = _DilatedConv(out_channels, out_channels, dilation, causal)
        project = in_channels != out_channels or final
        self.projector = nn.Conv1d(in_channels, out_channels, 1) if project else None

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.projector is None else self.projector(x)
        x = self.conv1(F.gelu(x))
        x = self.conv2(F.gelu(x))
        return x + residual


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    # One integer drawn uniformly from [low, high).
    return int(torch.randint(low, high, (1,), generator=generator))


def _take_per_row(x: Tensor, starts: Tensor, length: int) -> Tensor:
    # Row b of the result is x[b, starts[b] : starts[b] + length].
    index = starts[:, None] + torch.arange(length)
    return x[torch.arange(x.size(0))[:, None], index]


class TS2Vec(Encoder):
    """TS2Vec encoder with causal dilated convolutions.

    Parameters
    ----------
    input_dims : int
        Number of features per step.
    output_dims : int
        Size of each step's representation.
    hidden_dims : int
        Channels of the input projection and of the hidden blocks.
    depth : int
        Number of hidden residual blocks (one more block projects to the output).
    temporal_unit : int
        The temporal contrastive term is left out at the first ``temporal_unit``
        levels of the hierarchy, and crops are at least ``2**(temporal_unit + 1)`` long.
    alpha : float
        Weight of the instance contrastive term; the temporal term weighs ``1 - alpha``.
    causal : bool
        True (the default, and the only mode ``engine pretrain`` and
        ``engine.ssl.infer`` accept): causal convolutions. False: the
        reference's symmetric padding, for reproducing the paper's
        whole-series benchmarks only; ``forward`` then sees the future.
    """

    kind = "ts2vec"

    def __init__(
        self,
        input_dims: int,
        output_dims: int = 320,
        hidden_dims: int = 64,
        depth: int = 10,
        temporal_unit: int = 0,
        alpha: float = 0.5,
        causal: bool = True,
    ) -> None:
        super().__init__(input_dims, output_dims)
        if hidden_dims < 1:
            raise ValueError(f"hidden_dims must be at least 1, got {hidden_dims}")
        if depth < 0:
            raise ValueError(f"depth must be at least 0, got {depth}")
        if temporal_unit < 0:
            raise ValueError(f"temporal_unit must be at least 0, got {temporal_unit}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        self.hidden_dims = int(hidden_dims)
        self.depth = int(depth)
        self.temporal_unit = int(temporal_unit)
        self.alpha = float(alpha)
        self._causal = bool(causal)
        self.input_fc = nn.Linear(input_dims, hidden_dims)
        channels = [hidden_dims] * depth + [output_dims]
        self.blocks = nn.Sequential(
            *(
                _ConvBlock(
                    channels[i - 1] if i > 0 else hidden_dims,
                    channels[i],
                    dilation=2**i,
                    final=i == len(channels) - 1,
                    causal=self._causal,
                )
                for i in range(len(channels))
            )
        )

    def config(self) -> dict[str, Any]:
        """Return the keyword arguments that rebuild this encoder."""
        return {
            "input_dims": self.input_dims,
            "output_dims": self.output_dims,
            "hidden_dims": self.hidden_dims,
            "depth": self.depth,
            "temporal_unit": self.temporal_unit,
            "alpha": self.alpha,
            "causal": self._causal,
        }

    @property
    def causal(self) -> bool:
        """Return whether ``forward`` is causal."""
        return self._causal

    def receptive_field(self) -> int:
        """Return the number of steps, the current one included, a representation sees.

        When ``causal`` is False, a representation sees as many steps again
        after its own, less one.
        """
        span = 4 * (2 ** (self.depth + 1) - 1)
        return 1 + (span if self._causal else span // 2)

    def forward(self, x: Tensor) -> Tensor:
        """Return the representation ``(B, T, output_dims)`` of ``x`` ``(B, T, F)``."""
        return self._represent(x, None)

    def training_loss(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Return the hierarchical contrastive loss of two random crops of each window.

        One crop length and two overlapping segments ``[a1, b1)`` and
        ``[a2, b2)`` with ``a1 <= a2 < b1 <= b2`` are drawn per batch, shifted by
        a random offset per window; the loss compares the two crops'
        representations on their overlap ``[a2, b1)``.
        """
        length = x.size(1)
        shortest = 2 ** (self.temporal_unit + 1)
        if length < shortest:
            raise ValueError(f"training windows must be at least {shortest} steps, got {length}")
        crop_length = _randint(shortest, length + 1, generator)
        crop_left = _randint(0, length - crop_length + 1, generator)
        crop_right = crop_left + crop_length
        crop_eleft = _randint(0, crop_left + 1, generator)
        crop_eright = _randint(crop_right, length + 1, generator)
        offsets = torch.randint(
            -crop_eleft, length - crop_eright + 1, (x.size(0),), generator=generator
        )
        view1 = _take_per_row(x, offsets + crop_eleft, crop_right - crop_eleft)
        # The second crop runs to crop_eright, but with causal convolutions its
        # steps after the overlap cannot reach the overlap: encode only up to it.
        end2 = crop_right if self._causal else crop_eright
        view2 = _take_per_row(x, offsets + crop_left, end2 - crop_left)
        out1 = self._represent(view1, generator)[:, -crop_length:]
        out2 = self._represent(view2, generator)[:, :crop_length]
        return hierarchical_contrastive_loss(out1, out2, self.alpha, self.temporal_unit)

    def _represent(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        # With a generator: the training representation (timestamp masking and
        # dropout drawn from it). Without: the deterministic inference one.
        missing = x.isnan().any(dim=-1)
        h = self.input_fc(x.masked_fill(missing[..., None], 0.0))
        drop = missing
        if generator is not None:
            keep = torch.rand(missing.shape, generator=generator) < MASK_PROBABILITY
            drop = drop | ~keep
        h = h.masked_fill(drop[..., None], 0.0)
        z = self.blocks(h.transpose(1, 2)).transpose(1, 2)
        if generator is not None:
            keep = torch.rand(z.shape, generator=generator) >= DROPOUT
            z = z * keep / (1.0 - DROPOUT)
        return z
