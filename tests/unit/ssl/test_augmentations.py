"""Augmentations: seeded, shape-preserving, and doing what their names say."""

from __future__ import annotations

import pytest
import torch

from engine.errors import ConfigError
from engine.ssl import augmentations as aug

ALL = [
    aug.jitter,
    aug.scaling,
    aug.time_warp,
    aug.random_crop,
    aug.timestamp_mask,
    aug.segment_permutation,
    aug.channel_dropout,
]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(batch: int = 4, length: int = 50, features: int = 3) -> torch.Tensor:
    return torch.randn(batch, length, features, generator=_gen(123))


@pytest.mark.parametrize("augment", ALL, ids=lambda f: f.__name__)
def test_augmentation_keeps_shape_dtype_and_input(augment):
    x = _batch()
    before = x.clone()
    out = augment(x, _gen(0))
    assert out.shape == x.shape
    assert out.dtype == x.dtype
    assert torch.equal(x, before)


@pytest.mark.parametrize("augment", ALL, ids=lambda f: f.__name__)
def test_same_seed_gives_same_output_and_other_seed_differs(augment):
    x = _batch()
    assert torch.equal(augment(x, _gen(7)), augment(x, _gen(7)))
    assert not torch.equal(augment(x, _gen(7)), augment(x, _gen(8)))


@pytest.mark.parametrize("augment", ALL, ids=lambda f: f.__name__)
def test_augmentation_rejects_a_batch_without_three_axes(augment):
    with pytest.raises(ValueError, match="shape"):
        augment(torch.zeros(10, 3), _gen(0))


def test_jitter_noise_has_the_requested_standard_deviation():
    x = torch.zeros(8, 1000, 2)
    noise = aug.jitter(x, _gen(1), sigma=0.5)
    assert abs(noise.std().item() - 0.5) < 0.01
    assert abs(noise.mean().item()) < 0.01


def test_scaling_uses_one_factor_per_sample_and_channel():
    x = torch.rand(16, 30, 3) + 1.0
    ratio = aug.scaling(x, _gen(2), sigma=0.2) / x
    assert torch.allclose(ratio, ratio[:, :1, :].expand_as(ratio))
    assert 0.1 < ratio[:, 0, :].std().item() < 0.3


def test_time_warp_keeps_endpoints_and_order_of_a_rising_series():
    ramp = torch.linspace(0.0, 1.0, 100).reshape(1, 100, 1).repeat(5, 1, 2)
    warped = aug.time_warp(ramp, _gen(3), sigma=0.5)
    assert torch.allclose(warped[:, 0], ramp[:, 0])
    assert torch.allclose(warped[:, -1], ramp[:, -1])
    assert (warped.diff(dim=1) >= 0).all()
    assert not torch.allclose(warped, ramp, atol=1e-3)


def test_time_warp_without_variance_is_the_identity():
    x = _batch()
    assert torch.allclose(aug.time_warp(x, _gen(4), sigma=0.0), x, atol=1e-6)


def test_random_crop_stretches_a_span_of_at_least_the_minimum_ratio():
    ramp = torch.arange(100.0).reshape(1, 100, 1).repeat(64, 1, 1)
    cropped = aug.random_crop(ramp, _gen(5), min_ratio=0.6)
    spans = cropped[:, -1, 0] - cropped[:, 0, 0]
    assert (spans >= 59 - 1e-4).all()
    assert (spans <= 99 + 1e-4).all()
    assert (cropped.diff(dim=1) >= 0).all()
    assert spans.unique().numel() > 10


def test_random_crop_with_full_ratio_is_the_identity():
    x = _batch()
    assert torch.allclose(aug.random_crop(x, _gen(6), min_ratio=1.0), x, atol=1e-6)


def test_timestamp_mask_zeroes_whole_steps_at_the_requested_ratio():
    x = torch.rand(20, 2000, 3) + 1.0
    out = aug.timestamp_mask(x, _gen(7), ratio=0.3)
    zeroed = out == 0
    assert torch.equal(zeroed.all(dim=-1), zeroed.any(dim=-1))
    assert abs(zeroed.all(dim=-1).float().mean().item() - 0.3) < 0.01
    kept = ~zeroed.any(dim=-1)
    assert torch.equal(out[kept], x[kept])


def test_sample_time_mask_extremes():
    assert not aug.sample_time_mask(3, 40, 0.0, _gen(8)).any()
    assert aug.sample_time_mask(3, 40, 1.0, _gen(8)).all()


def test_segment_permutation_moves_whole_steps_and_keeps_every_value():
    x = torch.arange(40.0).reshape(1, 40, 1).repeat(6, 1, 2)
    x[..., 1] *= -1
    out = aug.segment_permutation(x, _gen(9), max_segments=4)
    assert torch.equal(out[..., 1], -out[..., 0])
    assert torch.equal(out.sort(dim=1).values[..., 0], x[..., 0])
    jumps = (out[..., 0].diff(dim=1) != 1).sum(dim=1)
    assert (jumps >= 1).all()
    assert (jumps <= 3).all()


def test_channel_dropout_zeroes_whole_channels_at_the_requested_rate():
    x = torch.rand(500, 20, 4) + 1.0
    out = aug.channel_dropout(x, _gen(10), p=0.25)
    zeroed = out == 0
    assert torch.equal(zeroed.all(dim=1), zeroed.any(dim=1))
    assert abs(zeroed.all(dim=1).float().mean().item() - 0.25) < 0.03


@pytest.mark.parametrize(
    ("augment", "kwargs"),
    [
        (aug.jitter, {"sigma": -0.1}),
        (aug.scaling, {"sigma": -1.0}),
        (aug.time_warp, {"knots": -1}),
        (aug.random_crop, {"min_ratio": 0.0}),
        (aug.timestamp_mask, {"ratio": 1.5}),
        (aug.segment_permutation, {"max_segments": 1}),
        (aug.channel_dropout, {"p": -0.1}),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_bad_parameter_raises_config_error_naming_it(augment, kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ConfigError, match=name):
        augment(_batch(), _gen(0), **kwargs)
