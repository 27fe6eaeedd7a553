"""What every encoder beyond TS2Vec promises: causality, block encoding, rebuilding, seeded loss.

TS2Vec and the hybrid have their own, more specific versions of these tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from causality import assert_future_independent, assert_one_pass_equals_windowed

from engine.ssl.cost import CoST
from engine.ssl.infer import encode_series
from engine.ssl.mae import MaskedAutoencoder
from engine.ssl.registry import build_encoder
from engine.ssl.tnc import TNC


@dataclass(frozen=True)
class Case:
    cls: type
    input_dims: int
    params: dict[str, Any]
    series_length: int
    loss_window: int
    # A hyperparameter off its default, to show config() carries it.
    changed: dict[str, Any]

    def model(self, **overrides):
        torch.manual_seed(0)
        return self.cls(self.input_dims, **(self.params | overrides))


CASES = {
    "tnc": Case(
        TNC,
        2,
        {"output_dims": 8, "hidden_dims": 8, "depth": 2, "neighbourhood": 3, "samples": 8},
        80,
        48,
        {"unlabelled_weight": 0.1},
    ),
    "cost": Case(
        CoST,
        2,
        {"output_dims": 8, "hidden_dims": 8, "depth": 1, "experts": 3, "season_window": 6},
        60,
        32,
        {"temperature": 0.2},
    ),
    "mae": Case(
        MaskedAutoencoder,
        3,
        {"output_dims": 16, "depth": 2, "heads": 2, "context": 8, "feedforward_dims": 32},
        60,
        32,
        {"mask_ratio": 0.3},
    ),
}
KINDS = sorted(CASES)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("kind", KINDS)
def test_changing_later_bars_leaves_earlier_representations_bit_identical(kind, seed):
    case = CASES[kind]
    n = case.series_length
    x = torch.randn(2, n, case.input_dims, generator=_gen(seed))
    assert_future_independent(case.model(), x, cuts=[0, 9, n // 2, n - 2, n - 1])


@pytest.mark.parametrize("kind", KINDS)
def test_one_pass_equals_encoding_each_trailing_window(kind):
    case = CASES[kind]
    model, n = case.model(), case.series_length
    x = torch.randn(1, n, case.input_dims, generator=_gen(7))
    assert model.receptive_field() < n // 2
    assert_one_pass_equals_windowed(model, x, positions=list(range(0, n, 3)) + [n - 1])


@pytest.mark.parametrize("kind", KINDS)
def test_series_encoding_in_blocks_equals_one_pass(kind):
    case = CASES[kind]
    model = case.model().eval()
    features = torch.randn(case.series_length, case.input_dims, generator=_gen(8))
    with torch.no_grad():
        one_pass = model(features.unsqueeze(0))[0].numpy()
    blocks = encode_series(model, features.numpy(), block_bars=7)
    np.testing.assert_allclose(blocks, one_pass, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_registry_builds_the_encoder(kind):
    case = CASES[kind]
    assert isinstance(build_encoder(kind, case.input_dims, **case.params), case.cls)


@pytest.mark.parametrize("kind", KINDS)
def test_config_rebuilds_an_equal_encoder(kind):
    case = CASES[kind]
    model = case.model(**case.changed).eval()
    config = json.loads(json.dumps(model.config()))
    rebuilt = type(model)(**config).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(2, 30, case.input_dims)
    assert torch.equal(rebuilt(x), model(x))
    assert rebuilt.config() == model.config()
    assert all(config[key] == value for key, value in case.changed.items())


@pytest.mark.parametrize("kind", KINDS)
def test_loss_is_a_deterministic_function_of_the_generator_seed(kind):
    case = CASES[kind]
    model = case.model()
    x = torch.randn(4, case.loss_window, case.input_dims)
    assert torch.equal(model.training_loss(x, _gen(3)), model.training_loss(x, _gen(3)))
    assert not torch.equal(model.training_loss(x, _gen(3)), model.training_loss(x, _gen(4)))
