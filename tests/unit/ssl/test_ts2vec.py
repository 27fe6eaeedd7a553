"""TS2Vec: causality, receptive field, crops, masking and the registry."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from causality import assert_future_independent, assert_one_pass_equals_windowed

from engine.errors import ConfigError
from engine.ssl import ts2vec as ts2vec_module
from engine.ssl.infer import encode_series
from engine.ssl.registry import build_encoder
from engine.ssl.ts2vec import TS2Vec


def _model(**overrides) -> TS2Vec:
    torch.manual_seed(0)
    params = {"output_dims": 16, "hidden_dims": 8, "depth": 3}
    return TS2Vec(3, **(params | overrides)).eval()


def _series(length: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, length, 3, generator=torch.Generator().manual_seed(seed))


def test_paper_architecture_has_eleven_blocks_and_about_640k_parameters():
    model = TS2Vec(4)
    assert len(model.blocks) == 11
    assert [block.conv1.dilation[0] for block in model.blocks] == [2**i for i in range(11)]
    assert model.output_dims == 320
    assert 630_000 < sum(p.numel() for p in model.parameters()) < 650_000
    assert model.receptive_field() == 8189


def test_config_rebuilds_an_equal_encoder():
    model = _model(temporal_unit=1, alpha=0.25)
    rebuilt = TS2Vec(**json.loads(json.dumps(model.config()))).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = _series(40)
    assert torch.equal(rebuilt(x), model(x))
    assert rebuilt.config() == model.config()


def test_representation_has_one_row_per_bar():
    assert _model()(torch.randn(2, 37, 3)).shape == (2, 37, 16)


def test_changing_future_bars_leaves_past_representations_bit_identical():
    model = _model()
    assert_future_independent(model, _series(160), cuts=[0, 5, 60, 61, 100, 158])


def test_forward_does_not_depend_on_train_mode():
    model = _model()
    x = _series(50)
    expected = model(x)
    model.train()
    assert torch.equal(model(x), expected)


def test_one_pass_equals_trailing_windows_of_receptive_field_length():
    model = _model()
    assert model.receptive_field() == 61
    assert_one_pass_equals_windowed(model, _series(200), positions=[0, 10, 60, 61, 130, 199])


def test_receptive_field_is_exact():
    model = _model()
    field, t = model.receptive_field(), 150
    x = _series(t + 1)
    base = model(x)[0, t]
    outside = x.clone()
    outside[0, t - field] += 5.0
    inside = x.clone()
    inside[0, t - field + 1] += 5.0
    assert torch.equal(model(outside)[0, t], base)
    assert not torch.allclose(model(inside)[0, t], base)


def test_block_encoding_equals_one_pass():
    model = _model()
    x = _series(300)
    one_pass = model(x)[0].detach().numpy()
    blocks = encode_series(model, x[0].numpy(), block_bars=47)
    np.testing.assert_allclose(blocks, one_pass, atol=1e-5, rtol=1e-4)


def test_nan_rows_are_missing_steps_that_encode_like_a_masked_latent():
    model = _model()
    x = _series(30)
    x[0, 10] = float("nan")
    out = model(x)
    assert torch.isfinite(out).all()


def test_training_loss_is_reproducible_from_the_generator():
    model = _model()
    x = torch.randn(4, 40, 3)
    first = model.training_loss(x, torch.Generator().manual_seed(1))
    again = model.training_loss(x, torch.Generator().manual_seed(1))
    other = model.training_loss(x, torch.Generator().manual_seed(2))
    assert first.ndim == 0 and torch.isfinite(first)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_crops_are_compared_on_an_overlap_of_equal_length(monkeypatch):
    seen = []

    def capture(z1, z2, alpha, temporal_unit):
        seen.append((z1.shape, z2.shape))
        return (z1 * z2).sum()

    monkeypatch.setattr(ts2vec_module, "hierarchical_contrastive_loss", capture)
    model = _model()
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        model.training_loss(torch.randn(4, 25, 3), generator)
    lengths = [z1[1] for z1, _ in seen]
    assert all(z1 == z2 for z1, z2 in seen)
    assert all(2 <= n <= 25 for n in lengths) and len(set(lengths)) > 3


def test_timestamp_masking_zeroes_about_half_of_the_latent_steps(monkeypatch):
    inputs = []
    model = _model()
    first_block = model.blocks[0]
    monkeypatch.setattr(first_block, "forward", lambda h: inputs.append(h.detach()) or h)
    model._represent(torch.randn(8, 500, 3), torch.Generator().manual_seed(0))
    zeroed = (inputs[0] == 0).all(dim=1).float().mean().item()
    assert 0.45 < zeroed < 0.55
    inputs.clear()
    model(torch.randn(8, 500, 3))
    assert not (inputs[0] == 0).all(dim=1).any()


def test_training_windows_shorter_than_two_steps_are_refused():
    with pytest.raises(ValueError, match="at least 2 steps"):
        _model().training_loss(torch.randn(2, 1, 3), torch.Generator())


def test_build_encoder_rejects_an_unknown_kind_by_name():
    with pytest.raises(ConfigError, match="unknown encoder kind 'ts3vec'.*ts2vec"):
        build_encoder("ts3vec", 3)


def test_build_encoder_rejects_unknown_hyperparameters():
    with pytest.raises(ConfigError, match="ts2vec.*invalid hyperparameters"):
        build_encoder("ts2vec", 3, hidden=4)


@pytest.mark.parametrize("length", [3, 8, 9, 40])
def test_non_causal_mode_equals_the_reference_same_padding(length):
    model = _model(causal=False)
    assert not model.causal and model.config()["causal"] is False
    x = torch.randn(2, 8, length)
    for block in model.blocks:
        conv = block.conv1
        d = conv.dilation[0]
        expected = torch.nn.functional.conv1d(x, conv.weight, conv.bias, padding=d, dilation=d)
        torch.testing.assert_close(conv(x), expected)


def test_non_causal_mode_sees_the_future_and_is_refused_for_series_encoding():
    model = _model(causal=False)
    x = _series(40)
    changed = x.clone()
    changed[0, 30:] += 1.0
    assert not torch.equal(model(changed)[0, :30], model(x)[0, :30])
    with pytest.raises(ValueError, match="non-causal ts2vec"):
        encode_series(model, x[0].numpy())


@pytest.mark.parametrize("length", [2, 9, 40])
def test_causal_taps_left_out_on_short_inputs_change_no_value(length):
    model = _model()
    x = torch.randn(2, 8, length)
    for block in model.blocks:
        conv = block.conv1
        d = conv.dilation[0]
        padded = torch.nn.functional.pad(x, (2 * d, 0))
        expected = torch.nn.functional.conv1d(padded, conv.weight, conv.bias, dilation=d)
        torch.testing.assert_close(conv(x), expected)
