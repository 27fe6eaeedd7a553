"""CoST: disentangled seasonal-trend representations by contrast.

Follows Woo et al., "CoST: Contrastive Learning of Disentangled Seasonal-Trend
Representations for Time Series Forecasting" (ICLR 2022):

- a backbone of causal dilated convolutions (the TS2Vec encoder,
  ``engine.ssl.ts2vec``) maps the input to ``output_dims`` channels per step;
- trend: a mixture of ``experts`` causal convolutions with kernel sizes
  ``1, 2, 4, ..., 2**(experts - 1)``, averaged, gives ``output_dims // 2``
  channels;
- season: a learnable frequency-domain layer, one complex
  ``output_dims x output_dims // 2`` weight and one complex bias per
  frequency, gives the other ``output_dims // 2`` channels;
- the representation of a step is the trend and the season, concatenated.

Training draws two views of each window (random scaling, then jitter) and
adds two contrastive losses:

- trend, in the time domain: the InfoNCE loss of the two views' trend
  vectors at one random step, through a projection head, L2-normalised, with
  temperature ``temperature``. Simplification: the paper uses a momentum
  encoder with a queue of negatives; here the negatives are the other
  windows of the batch (both views), with no momentum encoder.
- season, in the frequency domain: the seasonal vectors are L2-normalised
  per step, transformed by an FFT over the window, and the instance
  contrastive loss (``engine.ssl.losses``) is taken on their amplitudes and,
  separately, on their phases, averaged, and weighted by
  ``seasonal_weight`` (the paper's alpha).

Causality. The backbone and the trend experts are padded on the left only.
An FFT over a whole window is not causal, so the seasonal layer works on
trailing windows: the seasonal vector of step t is the last step of
``irfft(W * rfft(h[t - season_window + 1 .. t]) + b)``, with the backbone's
output ``h`` zero before the first step. That map is linear in the window,
so it is computed exactly as one causal convolution whose kernel is derived
from ``W`` each call: one pass over a long series costs one convolution and
equals encoding each trailing window separately. The receptive field is the
backbone's plus ``max(2**(experts - 1), season_window) - 1`` steps.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.errors import ConfigError
from engine.ssl.augmentations import jitter, scaling
from engine.ssl.base import Encoder
from engine.ssl.losses import instance_contrastive_loss
from engine.ssl.ts2vec import TS2Vec

__all__ = ["CoST", "TrailingFourierLayer"]

SCALE_SIGMA = 0.5
JITTER_SIGMA = 0.5


class TrailingFourierLayer(nn.Module):
    """Learnable frequency-domain layer applied to the trailing window of every step.

    Parameters
    ----------
    in_dims, out_dims : int
        Channels in and out.
    window : int
        Length of the trailing window whose FFT is taken.
    """

    def __init__(self, in_dims: int, out_dims: int, window: int) -> None:
        super().__init__()
        self.window = window
        frequencies = window // 2 + 1
        scale = 1.0 / math.sqrt(in_dims)
        self.weight_real = nn.Parameter(torch.empty(frequencies, in_dims, out_dims))
        self.weight_imag = nn.Parameter(torch.empty(frequencies, in_dims, out_dims))
        self.bias_real = nn.Parameter(torch.empty(frequencies, out_dims))
        self.bias_imag = nn.Parameter(torch.empty(frequencies, out_dims))
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -scale, scale)

    def _last_step_basis(self) -> tuple[Tensor, Tensor]:
        # Step n = window - 1 of irfft(W * rfft(x)) is sum_k x_k K_k, with
        # K_k = sum_f c_f / window * (Re W_f cos(a_fk) - Im W_f sin(a_fk)),
        # a_fk = 2 pi f (n - k) / window, c_f = 1 at DC and Nyquist, else 2.
        # Return c_f / window * cos(a_fk) and c_f / window * sin(a_fk), rows k.
        frequencies = torch.arange(self.weight_real.shape[0], dtype=torch.float64)
        lag = self.window - 1 - torch.arange(self.window, dtype=torch.float64)
        angle = 2.0 * math.pi * lag[:, None] * frequencies[None, :] / self.window
        count = torch.full_like(frequencies, 2.0)
        count[0] = 1.0
        if self.window % 2 == 0:
            count[-1] = 1.0
        count = count / self.window
        cos, sin = torch.cos(angle) * count, torch.sin(angle) * count
        return cos.to(self.weight_real.dtype), sin.to(self.weight_real.dtype)

    def kernel(self) -> tuple[Tensor, Tensor]:
        """Return the equivalent causal convolution: weight ``(out, in, window)`` and bias.

        The imaginary parts at DC (and at Nyquist for an even window) meet a
        sine of zero, which matches ``irfft`` dropping them.
        """
        cos, sin = self._last_step_basis()
        weight = torch.einsum("kf,fio->oik", cos, self.weight_real) - torch.einsum(
            "kf,fio->oik", sin, self.weight_imag
        )
        bias = cos[0] @ self.bias_real - sin[0] @ self.bias_imag
        return weight, bias

    def forward(self, h: Tensor) -> Tensor:
        """Return the seasonal channels ``(B, T, out_dims)`` of ``h`` ``(B, T, in_dims)``."""
        weight, bias = self.kernel()
        padded = F.pad(h.transpose(1, 2), (self.window - 1, 0))
        return F.conv1d(padded, weight, bias).transpose(1, 2)


class _CausalExpert(nn.Conv1d):
    # A convolution padded on the left only, so output t sees inputs <= t.
    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, (self.kernel_size[0] - 1, 0)))


class CoST(Encoder):
    """CoST encoder: causal trend experts and a trailing-window seasonal layer.

    Parameters
    ----------
    input_dims : int
        Number of features per step.
    output_dims : int
        Size of each representation, even: half trend, half season.
    hidden_dims : int
        Hidden channels of the backbone.
    depth : int
        Hidden residual blocks of the backbone.
    experts : int
        Trend experts; expert i has kernel size ``2**i``.
    season_window : int
        Length of the trailing window of the seasonal layer, at least 2.
    temperature : float
        Temperature of the trend InfoNCE loss.
    seasonal_weight : float
        Weight of the seasonal loss against the trend loss.
    """

    kind = "cost"

    def __init__(
        self,
        input_dims: int,
        output_dims: int = 64,
        hidden_dims: int = 32,
        depth: int = 4,
        experts: int = 6,
        season_window: int = 32,
        temperature: float = 0.07,
        seasonal_weight: float = 5e-4,
    ) -> None:
        if output_dims < 2 or output_dims % 2:
            raise ConfigError(f"cost: output_dims must be even and >= 2; got {output_dims!r}")
        if experts < 1:
            raise ConfigError(f"cost: experts must be at least 1; got {experts!r}")
        if season_window < 2:
            raise ConfigError(f"cost: season_window must be at least 2; got {season_window!r}")
        if temperature <= 0:
            raise ConfigError(f"cost: temperature must be positive; got {temperature!r}")
        if seasonal_weight < 0:
            raise ConfigError(f"cost: seasonal_weight must be >= 0; got {seasonal_weight!r}")
        super().__init__(input_dims, output_dims)
        self.experts = experts
        self.season_window = season_window
        self.temperature = temperature
        self.seasonal_weight = seasonal_weight
        self.backbone = TS2Vec(
            input_dims, output_dims=output_dims, hidden_dims=hidden_dims, depth=depth
        )
        half = output_dims // 2
        self.trend = nn.ModuleList(
            _CausalExpert(output_dims, half, kernel_size=2**i) for i in range(experts)
        )
        self.season = TrailingFourierLayer(output_dims, half, season_window)
        self.trend_head = nn.Sequential(nn.Linear(half, half), nn.ReLU(), nn.Linear(half, half))

    def config(self) -> dict[str, Any]:
        """Return the keyword arguments that rebuild this encoder."""
        return {
            "input_dims": self.input_dims,
            "output_dims": self.output_dims,
            "hidden_dims": self.backbone.hidden_dims,
            "depth": self.backbone.depth,
            "experts": self.experts,
            "season_window": self.season_window,
            "temperature": self.temperature,
            "seasonal_weight": self.seasonal_weight,
        }

    def receptive_field(self) -> int:
        """Return the number of bars, the current one included, that shape a representation."""
        widest = max(2 ** (self.experts - 1), self.season_window)
        return self.backbone.receptive_field() + widest - 1

    def _components(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # Trend (B, T, D/2) and season (B, T, D/2) of x (B, T, F).
        h = self.backbone(x)
        channels = h.transpose(1, 2)
        trend = torch.stack([expert(channels) for expert in self.trend]).mean(dim=0)
        return trend.transpose(1, 2), self.season(h)

    def forward(self, x: Tensor) -> Tensor:
        """Return the causal representation ``(B, T, output_dims)``: trend, then season."""
        return torch.cat(self._components(x), dim=-1)

    def training_loss(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Return the trend InfoNCE loss plus the weighted seasonal frequency loss."""
        views = [jitter(scaling(x, generator, SCALE_SIGMA), generator, JITTER_SIGMA) for _ in "ab"]
        (trend_a, season_a), (trend_b, season_b) = (self._components(view) for view in views)
        step = int(torch.randint(x.shape[1], (1,), generator=generator))
        scale = 1.0 / math.sqrt(self.temperature)
        query, key = (
            F.normalize(self.trend_head(trend[:, step]), dim=-1).unsqueeze(1) * scale
            for trend in (trend_a, trend_b)
        )
        trend_loss = instance_contrastive_loss(query, key)
        spectra = [torch.fft.rfft(F.normalize(s, dim=-1), dim=1) for s in (season_a, season_b)]
        amplitude_loss = instance_contrastive_loss(spectra[0].abs(), spectra[1].abs())
        phase_loss = instance_contrastive_loss(spectra[0].angle(), spectra[1].angle())
        return trend_loss + self.seasonal_weight * (amplitude_loss + phase_loss) / 2
