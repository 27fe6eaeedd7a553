"""CoST: trend experts, the trailing-window Fourier layer and the two losses."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from causality import assert_future_independent, assert_one_pass_equals_windowed

from engine.data.features import compute_features
from engine.errors import ConfigError
from engine.models.registry import Registry
from engine.ssl.cost import CoST, TrailingFourierLayer
from engine.ssl.folder import open_model

SERIES_LENGTH = 60
SHIPPED = Registry(Path(__file__).resolve().parents[3] / "models").resolve("cost_bybit_1h").path


def _model(**overrides) -> CoST:
    torch.manual_seed(0)
    params = {"output_dims": 8, "hidden_dims": 8, "depth": 1, "experts": 3, "season_window": 6}
    return CoST(2, **(params | overrides))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("window", [7, 8])
def test_fourier_layer_equals_fft_of_each_trailing_window(window):
    torch.manual_seed(1)
    layer = TrailingFourierLayer(4, 3, window)
    h = torch.randn(2, 30, 4)
    weight = torch.complex(layer.weight_real, layer.weight_imag)
    bias = torch.complex(layer.bias_real, layer.bias_imag)
    windows = F.pad(h, (0, 0, window - 1, 0)).unfold(1, window, 1)
    spectrum = torch.einsum("btif,fio->btfo", torch.fft.rfft(windows, dim=-1), weight) + bias
    expected = torch.fft.irfft(spectrum, n=window, dim=2)[:, :, -1]
    assert torch.allclose(layer(h), expected, atol=1e-5)


def test_representation_is_trend_then_season():
    model = _model().eval()
    x = torch.randn(1, 20, 2)
    z = model(x)
    season = model.season(model.backbone(x))
    assert z.shape == (1, 20, 8)
    assert torch.equal(z[..., 4:], season)


def test_receptive_field_adds_the_widest_of_experts_and_season_window():
    model = _model(experts=4, season_window=6)
    assert model.receptive_field() == model.backbone.receptive_field() + 8 - 1
    model = _model(experts=2, season_window=6)
    assert model.receptive_field() == model.backbone.receptive_field() + 6 - 1


def test_seasonal_weight_scales_only_the_seasonal_term():
    x = torch.randn(4, 32, 2)
    trend_only = _model(seasonal_weight=0.0).training_loss(x, _gen(1))
    light = _model(seasonal_weight=1.0).training_loss(x, _gen(1))
    heavy = _model(seasonal_weight=3.0).training_loss(x, _gen(1))
    assert (heavy - trend_only).item() == pytest.approx(3 * (light - trend_only).item(), rel=1e-4)
    assert (light - trend_only).item() > 0


@pytest.mark.slow
def test_a_few_steps_reduce_the_loss_on_noisy_sines():
    model = _model(seasonal_weight=0.1)
    generator = _gen(5)
    steps = torch.arange(48.0)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        periods = 3 + 10 * torch.rand(8, 1, generator=generator)
        clean = torch.sin(steps / periods).unsqueeze(-1)
        batch = torch.cat([clean, clean.cumsum(dim=1) / 10], dim=-1)
        loss = model.training_loss(batch, generator)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.9 * sum(losses[:5])


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"output_dims": 7}, "output_dims"),
        ({"experts": 0}, "experts"),
        ({"season_window": 1}, "season_window"),
        ({"temperature": 0.0}, "temperature"),
        ({"seasonal_weight": -1.0}, "seasonal_weight"),
    ],
)
def test_bad_hyperparameters_raise_config_error(overrides, name):
    with pytest.raises(ConfigError, match=name):
        _model(**overrides)


def test_shipped_model_is_small_and_was_pretrained_before_2025():
    model = open_model(SHIPPED)
    assert isinstance(model.encoder, CoST)
    assert (SHIPPED / "weights.safetensors").stat().st_size < 10_000_000
    data = model.card["data"]
    assert dt.date.fromisoformat(data["end"]) < dt.date(2025, 1, 1)
    assert data["unseen_from_utc"] <= "2025-01-01T00:00:00Z"
    assert data["last_bar_utc"] < "2025-01-01T00:00:00Z"


def test_shipped_model_is_causal_on_real_candles(shared_data):
    model = open_model(SHIPPED)
    candles = pd.read_parquet(shared_data / "bybit_linear_BTCUSDT_1h.parquet")
    candles = candles[candles["timestamp"] >= 1_735_689_600_000].head(260).reset_index(drop=True)
    features, _ = compute_features(candles, model.card["features"]["extras"])
    x = torch.from_numpy(model.normalise(features)).unsqueeze(0)
    assert_future_independent(model.encoder, x, cuts=[171, 258])
    assert_one_pass_equals_windowed(model.encoder, x, positions=[5, 172, 259])
