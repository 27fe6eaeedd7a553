"""Masked autoencoder: causal banded attention, masking and the masked-step loss."""

from __future__ import annotations

import pytest
import torch
from causality import assert_future_independent, assert_one_pass_equals_windowed

from engine.errors import ConfigError
from engine.ssl.mae import MaskedAutoencoder

SERIES_LENGTH = 60


def _model(**overrides) -> MaskedAutoencoder:
    torch.manual_seed(0)
    params = {"output_dims": 16, "depth": 2, "heads": 2, "context": 8, "feedforward_dims": 32}
    return MaskedAutoencoder(3, **(params | overrides))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_receptive_field_spans_every_layers_context():
    assert _model().receptive_field() == 2 * 7 + 1


def test_bars_beyond_the_receptive_field_change_nothing():
    model = _model().eval()
    x = torch.randn(1, 60, 3)
    far_past = x.clone()
    far_past[:, : 59 - model.receptive_field() + 1] += 5.0
    near_past = x.clone()
    near_past[:, 59 - model.receptive_field() + 1] += 5.0
    with torch.no_grad():
        assert torch.equal(model(far_past)[:, -1], model(x)[:, -1])
        assert not torch.allclose(model(near_past)[:, -1], model(x)[:, -1])


def test_attention_in_query_chunks_is_causal_and_equals_windows(monkeypatch):
    monkeypatch.setattr("engine.ssl.mae._QUERY_CHUNK", 5)
    x = torch.randn(1, 23, 3, generator=_gen(9))
    assert_future_independent(_model(), x, cuts=[3, 4, 5, 11, 21])
    assert_one_pass_equals_windowed(_model(), x, positions=[0, 4, 5, 6, 14, 22])


def test_sample_mask_hides_the_requested_share_of_every_row():
    mask = _model(mask_ratio=0.3).sample_mask(5, 40, _gen(1))
    assert mask.shape == (5, 40)
    assert (mask.sum(dim=1) == 12).all()
    assert not torch.equal(mask[0], mask[1])


def test_loss_is_taken_on_masked_steps_only():
    model = _model()
    torch.nn.init.zeros_(model.reconstruct.weight)
    torch.nn.init.zeros_(model.reconstruct.bias)
    masked = model.sample_mask(4, 32, _gen(2))
    x = torch.where(masked.unsqueeze(-1), 1.0, 3.0).expand(-1, -1, 3)
    assert model.training_loss(x, _gen(2)).item() == pytest.approx(1.0)


def test_missing_steps_are_encoded_and_never_scored():
    model = _model()
    x = torch.randn(2, 20, 3)
    x[:, 5] = float("nan")
    assert torch.isfinite(model.eval()(x)).all()
    all_missing = torch.full((2, 20, 3), float("nan"))
    assert model.training_loss(all_missing, _gen(3)).item() == 0.0


@pytest.mark.slow
def test_a_few_steps_reduce_the_loss_on_a_sine():
    model = _model()
    steps = torch.arange(64.0)
    x = torch.stack([torch.sin(steps / 4 + phase) for phase in range(8)]).unsqueeze(-1)
    x = x.expand(-1, -1, 3)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for seed in range(30):
        loss = model.training_loss(x, _gen(seed))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"heads": 3}, "heads"),
        ({"mask_ratio": 1.0}, "mask_ratio"),
        ({"mask_ratio": 0.0}, "mask_ratio"),
        ({"context": 0}, "context"),
        ({"depth": 0}, "depth"),
    ],
)
def test_bad_hyperparameters_raise_config_error(overrides, name):
    with pytest.raises(ConfigError, match=name):
        _model(**overrides)
