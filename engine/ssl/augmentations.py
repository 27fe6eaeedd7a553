"""Seeded, shape-preserving augmentations of time-series batches.

Every function takes a batch ``x`` of shape ``(B, T, F)`` (batch, time,
features) and a ``torch.Generator``, draws all of its randomness from that
generator, and returns a new tensor of the same shape, dtype and device. The
input is never modified. Random draws are made on the CPU generator and moved
to ``x``'s device, so a seed gives the same augmentation everywhere.

Shape conventions:

- ``random_crop`` crops a random span of every sample and stretches it back to
  ``T`` steps by linear interpolation, so the output keeps the input's shape.
- ``time_warp`` resamples every sample along a smooth, monotone random time
  map from the first to the last step; the endpoints are kept.
- ``timestamp_mask`` and ``channel_dropout`` set the chosen values to zero
  without rescaling the rest.

Bad parameters (a negative ``sigma``, a ratio outside its range) raise
``ConfigError``, since they come from pretraining configuration files.
"""

from __future__ import annotations

import math

import torch

from engine.errors import ConfigError

__all__ = [
    "channel_dropout",
    "jitter",
    "random_crop",
    "sample_time_mask",
    "scaling",
    "segment_permutation",
    "time_warp",
    "timestamp_mask",
]


def _check_batch(x: torch.Tensor) -> None:
    if x.ndim != 3:
        raise ValueError(f"x must have shape (batch, time, features); got shape {tuple(x.shape)}")


def _check_range(name: str, value: float, low: float, high: float, *, closed_high: bool) -> None:
    inside = low <= value <= high if closed_high else low <= value < high
    if not inside:
        bracket = "]" if closed_high else ")"
        raise ConfigError(f"{name} must lie in [{low}, {high}{bracket}; got {value!r}")


def _normal(shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    draw = torch.randn(shape, generator=generator, dtype=torch.float64)
    return draw.to(dtype=like.dtype, device=like.device)


def _uniform(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=generator, dtype=torch.float64)


def _resample(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    # Linear interpolation of x (B, T, F) at fractional time positions (B, T') in [0, T - 1].
    positions = positions.to(device=x.device, dtype=torch.float64)
    left = positions.floor().long().clamp(0, x.shape[1] - 1)
    right = (left + 1).clamp(max=x.shape[1] - 1)
    weight = (positions - left).to(x.dtype).unsqueeze(-1)
    index_shape = (-1, -1, x.shape[2])
    x_left = x.gather(1, left.unsqueeze(-1).expand(index_shape))
    x_right = x.gather(1, right.unsqueeze(-1).expand(index_shape))
    return x_left + weight * (x_right - x_left)


def jitter(x: torch.Tensor, generator: torch.Generator, sigma: float = 0.03) -> torch.Tensor:
    """Add independent Gaussian noise to every value.

    Parameters
    ----------
    x : torch.Tensor
        Batch of shape ``(B, T, F)``.
    generator : torch.Generator
        Source of all randomness.
    sigma : float
        Standard deviation of the noise, ``>= 0``.

    Returns
    -------
    torch.Tensor
        ``x + N(0, sigma^2)``, same shape as ``x``.
    """
    _check_batch(x)
    _check_range("sigma", sigma, 0.0, float("inf"), closed_high=False)
    return x + sigma * _normal(tuple(x.shape), generator, x)


def scaling(x: torch.Tensor, generator: torch.Generator, sigma: float = 0.1) -> torch.Tensor:
    """Multiply every channel of every sample by one random factor.

    Parameters
    ----------
    x : torch.Tensor
        Batch of shape ``(B, T, F)``.
    generator : torch.Generator
        Source of all randomness.
    sigma : float
        Standard deviation of the factors, which are drawn from ``N(1, sigma^2)``.

    Returns
    -------
    torch.Tensor
        Scaled batch, same shape as ``x``.
    """
    _check_batch(x)
    _check_range("sigma", sigma, 0.0, float("inf"), closed_high=False)
    factors = 1.0 + sigma * _normal((x.shape[0], 1, x.shape[2]), generator, x)
    return x * factors


def time_warp(
    x: torch.Tensor, generator: torch.Generator, sigma: float = 0.2, knots: int = 4
) -> torch.Tensor:
    """Resample every sample along a smooth random monotone time map.

    The local speed of time is drawn at ``knots + 2`` evenly spaced knots from
    ``N(1, sigma^2)`` (clipped below at 0.1), interpolated linearly to every
    step, integrated and rescaled so the map runs from step 0 to step
    ``T - 1``. Values are read off the map by linear interpolation.

    Parameters
    ----------
    x : torch.Tensor
        Batch of shape ``(B, T, F)``.
    generator : torch.Generator
        Source of all randomness.
    sigma : float
        Standard deviation of the speed at each knot, ``>= 0``.
    knots : int
        Number of interior knots, ``>= 0``.

    Returns
    -------
    torch.Tensor
        Warped batch, same shape as ``x``.
    """
    _check_batch(x)
    _check_range("sigma", sigma, 0.0, float("inf"), closed_high=False)
    if knots < 0:
        raise ConfigError(f"knots must be >= 0; got {knots!r}")
    batch, length = x.shape[0], x.shape[1]
    if length < 2:
        return x.clone()
    draw = torch.randn((batch, knots + 2, 1), generator=generator, dtype=torch.float64)
    speeds = (1.0 + sigma * draw).clamp(min=0.1)
    knot_positions = torch.linspace(0.0, knots + 1.0, length, dtype=torch.float64)
    speed = _resample(speeds, knot_positions.expand(batch, -1)).squeeze(-1)
    elapsed = torch.cumsum(speed, dim=1) - speed[:, :1]
    positions = elapsed / elapsed[:, -1:] * (length - 1)
    return _resample(x, positions)


def random_crop(
    x: torch.Tensor, generator: torch.Generator, min_ratio: float = 0.5
) -> torch.Tensor:
    """Crop a random span of every sample and stretch it back to full length.

    Each sample gets its own span of ``L`` steps, with ``L`` uniform in
    ``[ceil(min_ratio * T), T]`` and a uniform start; the span is resized to
    ``T`` steps by linear interpolation, so the output keeps the input's shape.

    Parameters
    ----------
    x : torch.Tensor
        Batch of shape ``(B, T, F)``.
    generator : torch.Generator
        Source of all randomness.
    min_ratio : float
        Shortest span as a fraction of ``T``, in ``(0, 1]``.

    Returns
    -------
    torch.Tensor
        Cropped and resized batch, same shape as ``x``.
    """
    _check_batch(x)
    if not 0.0 < min_ratio <= 1.0:
        raise ConfigError(f"min_ratio must lie in (0, 1]; got {min_ratio!r}")
    batch, length = x.shape[0], x.shape[1]
    shortest = max(1, math.ceil(min_ratio * length))
    spans = shortest + (_uniform((batch,), generator) * (length - shortest + 1)).long()
    spans = spans.clamp(max=length)
    starts = (_uniform((batch,), generator) * (length - spans + 1)).long()
    fraction = torch.linspace(0.0, 1.0, length, dtype=torch.float64)
    positions = starts.unsqueeze(1) + fraction.unsqueeze(0) * (spans - 1).unsqueeze(1)
    return _resample(x, positions)


def sample_time_mask(
    batch: int, length: int, ratio: float, generator: torch.Generator
) -> torch.Tensor:
    """Draw a boolean mask of time steps, each masked with probability ``ratio``.

    Parameters
    ----------
    batch, length : int
        Shape of the mask.
    ratio : float
        Probability that a step is masked, in ``[0, 1]``.
    generator : torch.Generator
        Source of all randomness.

    Returns
    -------
    torch.Tensor
        Boolean tensor of shape ``(batch, length)``; ``True`` marks a masked step.
    """
    _check_range("ratio", ratio, 0.0, 1.0, closed_high=True)
    return _uniform((batch, length), generator) < ratio


def timestamp_mask(x: torch.Tensor, generator: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero every feature of randomly chosen time steps.

    Parameters
    ----------
    x : torch.Tensor
        Batch of shape ``(B, T, F)``.
    generator : torch.Generator
        Source of all randomness.
    ratio : float
        Probability that a step is masked, in ``[0, 1]``.

    Returns
    -------
    torch.Tensor
        Masked batch, same shape as ``x``.
    """
    _check_batch(x)
    mask = sample_time_mask(x.shape[0], x.shape[1], ratio, generator).to(x.device)
    return x.masked_fill(mask.unsqueeze(-1), 0.0)


def segment_permutation(
    x: torch.Tensor, generator: torch.Generator, max_segments: int = 5
) -> torch.Tensor:
    """Cut every sample into random segments and shuffle their order.

    Each sample is cut at ``n - 1`` distinct random points into ``n``
    contiguous segments, ``n`` uniform in ``[2, min(max_segments, T)]``; the
    segments are reordered by a random permutation other than the identity.
    Every value is kept.

    Parameters
    ----------
    x : torch.Tensor
        Batch of shape ``(B, T, F)``.
    generator : torch.Generator
        Source of all randomness.
    max_segments : int
        Largest number of segments, ``>= 2``.

    Returns
    -------
    torch.Tensor
        Permuted batch, same shape as ``x``.
    """
    _check_batch(x)
    if max_segments < 2:
        raise ConfigError(f"max_segments must be >= 2; got {max_segments!r}")
    batch, length = x.shape[0], x.shape[1]
    if length < 2:
        return x.clone()
    most = min(max_segments, length)
    order = []
    for _ in range(batch):
        count = 2 + int(torch.randint(most - 1, (1,), generator=generator))
        cuts = (torch.randperm(length - 1, generator=generator)[: count - 1] + 1).sort().values
        segments = torch.tensor_split(torch.arange(length), cuts)
        permutation = torch.randperm(count, generator=generator)
        if torch.equal(permutation, torch.arange(count)):
            # The identity would leave the sample unchanged; rotate it instead.
            permutation = permutation.roll(1)
        order.append(torch.cat([segments[i] for i in permutation]))
    index = torch.stack(order).to(x.device).unsqueeze(-1).expand(-1, -1, x.shape[2])
    return x.gather(1, index)


def channel_dropout(x: torch.Tensor, generator: torch.Generator, p: float = 0.2) -> torch.Tensor:
    """Zero whole channels of each sample, each with probability ``p``.

    Parameters
    ----------
    x : torch.Tensor
        Batch of shape ``(B, T, F)``.
    generator : torch.Generator
        Source of all randomness.
    p : float
        Probability that a channel of a sample is zeroed, in ``[0, 1]``.

    Returns
    -------
    torch.Tensor
        Batch with dropped channels set to zero, same shape as ``x``.
    """
    _check_batch(x)
    _check_range("p", p, 0.0, 1.0, closed_high=True)
    dropped = (_uniform((x.shape[0], 1, x.shape[2]), generator) < p).to(x.device)
    return x.masked_fill(dropped, 0.0)
