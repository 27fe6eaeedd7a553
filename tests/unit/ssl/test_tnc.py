"""TNC: neighbourhood sampling, the positive-unlabelled loss and training."""

from __future__ import annotations

import math

import pytest
import torch

from engine.errors import ConfigError
from engine.ssl.tnc import TNC

SERIES_LENGTH = 80


def _model(**overrides) -> TNC:
    torch.manual_seed(0)
    params = {"output_dims": 8, "hidden_dims": 8, "depth": 2, "neighbourhood": 3, "samples": 8}
    return TNC(2, **(params | overrides))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_neighbours_are_close_and_non_neighbours_far_inside_the_window():
    model = _model(samples=500)
    anchors, neighbours, distant = model.sample_pairs(4, 24, _gen(1))
    near = (neighbours - anchors).abs()
    far = (distant - anchors).abs()
    assert ((near >= 1) & (near <= 3)).all()
    assert (far >= 12).all()
    for steps in (anchors, neighbours, distant):
        assert steps.min() >= 0
        assert steps.max() <= 23
    assert (distant < anchors).any()
    assert (distant > anchors).any()
    assert set(distant.flatten().tolist()) == set(range(24))


def test_window_too_short_for_far_bars_is_refused():
    with pytest.raises(ConfigError, match="8 \\* neighbourhood"):
        _model().sample_pairs(2, 23, _gen(0))


def test_loss_weights_unlabelled_pairs_as_the_paper_does():
    weight = 0.2
    model = _model(unlabelled_weight=weight)
    last = model.discriminator[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.constant_(last.bias, 1.5)
    softplus = torch.nn.functional.softplus
    minus, plus = softplus(torch.tensor(-1.5)).item(), softplus(torch.tensor(1.5)).item()
    expected = (minus + (1 - weight) * plus + weight * minus) / 2
    loss = model.training_loss(torch.randn(3, 30, 2), _gen(2))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.slow
def test_a_few_steps_reduce_the_loss_on_a_regime_switching_series():
    model = _model(samples=16)
    steps = torch.arange(2000.0)
    regime = (steps // 100) % 2
    series = torch.stack([torch.sin(steps / (3 + 9 * regime)), regime - 0.5], dim=-1)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = _gen(5)
    losses = []
    for _ in range(20):
        starts = torch.randint(0, 2000 - 64, (8,), generator=generator)
        batch = torch.stack([series[s : s + 64] for s in starts.tolist()])
        loss = model.training_loss(batch, generator)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(math.log(2), abs=0.05)
    assert sum(losses[-5:]) < 0.9 * sum(losses[:5])


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"neighbourhood": 0}, "neighbourhood"),
        ({"samples": 0}, "samples"),
        ({"unlabelled_weight": 1.0}, "unlabelled_weight"),
    ],
)
def test_bad_hyperparameters_raise_config_error(overrides, name):
    with pytest.raises(ConfigError, match=name):
        _model(**overrides)
