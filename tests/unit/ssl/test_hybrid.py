"""Hybrid objective: alpha * contrastive + beta * masked reconstruction, any contrastive inner."""

from __future__ import annotations

import json

import pytest
import torch
from causality import assert_future_independent, assert_one_pass_equals_windowed

from engine.errors import ConfigError
from engine.ssl.augmentations import sample_time_mask
from engine.ssl.hybrid import CONTRASTIVE_KINDS, Hybrid
from engine.ssl.registry import build_encoder

INNER_PARAMS = {
    "ts2vec": {"output_dims": 8, "hidden_dims": 8, "depth": 1},
    "tnc": {"output_dims": 8, "hidden_dims": 8, "depth": 1, "neighbourhood": 2, "samples": 4},
    "cost": {"output_dims": 8, "hidden_dims": 8, "depth": 1, "experts": 2, "season_window": 4},
}


def _model(inner_kind: str = "ts2vec", **overrides) -> Hybrid:
    torch.manual_seed(0)
    return Hybrid(2, inner_kind=inner_kind, inner_params=INNER_PARAMS[inner_kind], **overrides)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _zero_head(model: Hybrid) -> None:
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)


def test_every_contrastive_kind_is_covered():
    assert set(INNER_PARAMS) == set(CONTRASTIVE_KINDS)


@pytest.mark.parametrize("inner_kind", CONTRASTIVE_KINDS)
def test_changing_later_bars_leaves_earlier_representations_bit_identical(inner_kind):
    x = torch.randn(2, 60, 2, generator=_gen(0))
    assert_future_independent(_model(inner_kind), x, cuts=[0, 9, 30, 58, 59])


@pytest.mark.parametrize("inner_kind", CONTRASTIVE_KINDS)
def test_one_pass_equals_encoding_each_trailing_window(inner_kind):
    x = torch.randn(1, 60, 2, generator=_gen(1))
    assert_one_pass_equals_windowed(_model(inner_kind), x, positions=[0, 5, 17, 31, 44, 59])


def test_registry_builds_a_hybrid():
    model = build_encoder("hybrid", 2, inner_kind="tnc", inner_params=INNER_PARAMS["tnc"])
    assert isinstance(model, Hybrid)
    assert model.inner.kind == "tnc"


@pytest.mark.parametrize("inner_kind", CONTRASTIVE_KINDS)
def test_config_rebuilds_an_equal_encoder(inner_kind):
    model = _model(inner_kind, alpha=0.5, beta=2.0, mask_ratio=0.25).eval()
    rebuilt = type(model)(**json.loads(json.dumps(model.config()))).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(2, 40, 2)
    assert torch.equal(rebuilt(x), model(x))
    assert rebuilt.config() == model.config()


@pytest.mark.parametrize("inner_kind", CONTRASTIVE_KINDS)
def test_inference_is_the_inner_encoders(inner_kind):
    model = _model(inner_kind).eval()
    x = torch.randn(1, 40, 2)
    assert torch.equal(model(x), model.inner(x))
    assert model.receptive_field() == model.inner.receptive_field()
    assert model.output_dims == model.inner.output_dims


@pytest.mark.parametrize("inner_kind", CONTRASTIVE_KINDS)
def test_loss_is_alpha_contrastive_plus_beta_reconstruction(inner_kind):
    model = _model(inner_kind, alpha=0.3, beta=2.0)
    x = torch.randn(4, 40, 2)
    generator = _gen(1)
    contrastive = model.inner.training_loss(x, generator)
    reconstruction = model.reconstruction_loss(x, generator)
    expected = 0.3 * contrastive + 2.0 * reconstruction
    assert torch.allclose(model.training_loss(x, _gen(1)), expected)


def test_reconstruction_is_scored_on_hidden_steps_only():
    model = _model(mask_ratio=0.4)
    _zero_head(model)
    hidden = sample_time_mask(3, 50, 0.4, _gen(2))
    x = torch.where(hidden.unsqueeze(-1), 1.0, 3.0).expand(-1, -1, 2)
    assert model.reconstruction_loss(x, _gen(2)).item() == pytest.approx(1.0)


def test_without_masking_every_present_step_is_scored():
    model = _model(mask_ratio=0.0)
    _zero_head(model)
    x = torch.full((2, 30, 2), 2.0)
    x[:, 7] = float("nan")
    assert model.reconstruction_loss(x, _gen(3)).item() == pytest.approx(4.0)


class _Recorder(torch.nn.Module):
    # A reconstruction head that keeps the representations it is given.
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.seen = z
        return torch.zeros(*z.shape[:-1], 2)


@pytest.mark.parametrize("inner_kind", CONTRASTIVE_KINDS)
def test_hidden_steps_are_invisible_to_the_reconstruction(inner_kind):
    model = _model(inner_kind, mask_ratio=0.5)
    model.head = _Recorder()
    x = torch.randn(2, 40, 2)
    hidden = sample_time_mask(2, 40, 0.5, _gen(4))
    model.reconstruction_loss(x, _gen(4))
    seen = model.head.seen
    model.reconstruction_loss(x + 10.0 * hidden.unsqueeze(-1), _gen(4))
    assert torch.equal(model.head.seen, seen)
    model.reconstruction_loss(x + 10.0 * ~hidden.unsqueeze(-1), _gen(4))
    assert not torch.equal(model.head.seen, seen)


def test_loss_is_a_deterministic_function_of_the_generator_seed():
    model = _model()
    x = torch.randn(4, 40, 2)
    assert torch.equal(model.training_loss(x, _gen(5)), model.training_loss(x, _gen(5)))
    assert not torch.equal(model.training_loss(x, _gen(5)), model.training_loss(x, _gen(6)))


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"inner_kind": "mae"}, "inner_kind"),
        ({"inner_kind": "hybrid"}, "inner_kind"),
        ({"alpha": -1.0}, "alpha"),
        ({"beta": -0.1}, "beta"),
        ({"mask_ratio": 1.0}, "mask_ratio"),
    ],
)
def test_bad_hyperparameters_raise_config_error(overrides, name):
    with pytest.raises(ConfigError, match=name):
        Hybrid(2, **overrides)


def test_bad_inner_hyperparameters_raise_config_error():
    with pytest.raises(ConfigError, match="cost"):
        Hybrid(2, inner_kind="cost", inner_params={"output_dims": 7})
