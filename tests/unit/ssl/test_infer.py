"""Encoding series in fixed-shape blocks: bit-identical bar by bar, for every encoder kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from causality import (
    assert_bar_by_bar_equals_series,
    assert_future_independent,
    assert_one_pass_equals_windowed,
)

from engine.data.features import compute_features
from engine.models.registry import Registry
from engine.ssl.base import Encoder
from engine.ssl.infer import BLOCK_BARS, encode_series, window_bars
from engine.ssl.registry import ENCODERS, build_encoder
from engine.ssl.ts2vec import TS2Vec

REPO_ROOT = Path(__file__).resolve().parents[3]
# Small random models of every kind, with receptive fields of 7 to 61 bars.
SMALL = {
    "ts2vec": {"output_dims": 8, "hidden_dims": 8, "depth": 3},
    "tnc": {"output_dims": 8, "hidden_dims": 8, "depth": 2, "neighbourhood": 3, "samples": 8},
    "cost": {"output_dims": 8, "hidden_dims": 8, "depth": 1, "experts": 3, "season_window": 6},
    "mae": {"output_dims": 16, "depth": 2, "heads": 2, "context": 4, "feedforward_dims": 32},
    "hybrid": {
        "inner_kind": "cost",
        "inner_params": {"output_dims": 8, "hidden_dims": 8, "depth": 1, "season_window": 4},
    },
}


def _small(kind: str) -> Encoder:
    torch.manual_seed(0)
    return build_encoder(kind, 3, **SMALL[kind]).eval()


def _series(length: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((length, 3)).astype(np.float32)


def _bars(length: int) -> np.ndarray:
    # Bar numbers that start in the middle of a block and skip ten bars (a dropped gap).
    numbers = 1_000_003 + np.arange(length + 10)
    return np.delete(numbers, np.arange(60, 70))


class _RunningSum(Encoder):
    # A recurrent-like encoder: row t is the sum of rows 0..t (unbounded field).
    kind = "running_sum"

    def __init__(self, input_dims: int) -> None:
        super().__init__(input_dims, input_dims)

    def config(self) -> dict:
        return {"input_dims": self.input_dims}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.cumsum(dim=1)

    def training_loss(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return x.sum()

    def receptive_field(self) -> None:
        return None


def test_every_encoder_kind_is_covered():
    assert set(SMALL) == set(ENCODERS)


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_each_bar_encoded_from_its_past_alone_equals_the_series_bit_for_bit(kind):
    encoder, features = _small(kind), _series(150, 1)
    assert encoder.receptive_field() < 16 * 4
    positions = [0, 1, 12, 13, 59, 60, 61, *range(70, 150, 9), 149]
    assert_bar_by_bar_equals_series(encoder, features, _bars(150), positions, block_bars=16)


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_a_bar_does_not_depend_on_where_its_series_starts(kind):
    encoder, features, bars = _small(kind), _series(200, 2), _bars(200)
    whole = encode_series(encoder, features, bars, block_bars=16)
    for first in (1, 37):
        later = encode_series(encoder, features[first:], bars[first:], block_bars=16)
        settled = first + window_bars(encoder, 16)
        assert np.array_equal(later[settled - first :], whole[settled:])


@pytest.mark.parametrize("block_bars", [1, 13, 61, 62, 500])
def test_blocks_of_any_length_reproduce_the_one_pass_encoding(block_bars):
    torch.manual_seed(0)
    encoder = TS2Vec(3, output_dims=8, hidden_dims=8, depth=3).eval()
    features = _series(130, 1)
    with torch.inference_mode():
        expected = encoder(torch.from_numpy(features)[None])[0].numpy()
    out = encode_series(encoder, features, block_bars=block_bars)
    assert out.dtype == np.float32 and out.shape == (130, 8)
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-4)


def test_start_returns_the_rows_from_it_on_only():
    encoder, features = _small("ts2vec"), _series(100, 3)
    whole = encode_series(encoder, features, block_bars=16)
    assert np.array_equal(encode_series(encoder, features, start=70, block_bars=16), whole[70:])
    assert encode_series(encoder, features, start=100).shape == (0, 8)


def test_the_callers_thread_count_changes_no_bit_and_is_restored():
    # A model wide enough that two threads split its sums differently from one.
    torch.manual_seed(0)
    encoder = TS2Vec(3, output_dims=320, hidden_dims=64, depth=3).eval()
    features = _series(600, 4)
    threads = torch.get_num_threads()
    try:
        out = {}
        for count in (1, 2):
            torch.set_num_threads(count)
            with torch.inference_mode():
                out[f"forward {count}"] = encoder(torch.from_numpy(features)[None])[0].numpy()
            out[count] = encode_series(encoder, features, block_bars=600)
            assert torch.get_num_threads() == count
    finally:
        torch.set_num_threads(threads)
    assert not np.array_equal(out["forward 1"], out["forward 2"])
    assert np.array_equal(out[1], out[2])


def test_unbounded_encoder_is_encoded_in_one_pass_whatever_the_block_length():
    features = _series(50, 0)[:, :2]
    out = encode_series(_RunningSum(2), features, block_bars=7)
    np.testing.assert_allclose(out, features.cumsum(axis=0), rtol=1e-5, atol=1e-5)
    assert window_bars(_RunningSum(2)) is None


def test_causality_helpers_use_the_whole_prefix_for_an_unbounded_encoder():
    x = torch.randn(1, 30, 2)
    assert_future_independent(_RunningSum(2), x, cuts=[0, 10, 28])
    assert_one_pass_equals_windowed(_RunningSum(2), x, positions=[0, 15, 29])
    features = x[0].numpy()
    assert_bar_by_bar_equals_series(_RunningSum(2), features, np.arange(30), [0, 15, 29], 4)


def test_features_of_the_wrong_width_are_refused():
    with pytest.raises(ValueError, match=r"shape \(T, 3\)"):
        encode_series(TS2Vec(3, output_dims=8, hidden_dims=8, depth=1), np.zeros((10, 2)))


@pytest.mark.parametrize(
    ("bars", "start", "message"),
    [
        (np.array([0, 1, 1, 2]), 0, "strictly increasing"),
        (np.arange(3), 0, "strictly increasing"),
        (None, 5, r"start must be in 0\.\.4"),
    ],
)
def test_bad_bar_numbers_or_start_are_refused(bars, start, message):
    encoder = TS2Vec(3, output_dims=8, hidden_dims=8, depth=1)
    with pytest.raises(ValueError, match=message):
        encode_series(encoder, np.zeros((4, 3)), bars, start)


@pytest.mark.parametrize("name", ["ts2vec_bybit_1h", "cost_bybit_1h"])
def test_shipped_models_encode_each_real_bar_alone_as_the_series_does(name, shared_data):
    model = Registry(REPO_ROOT / "models").load(name)
    candles = pd.read_parquet(shared_data / "bybit_linear_BTCUSDT_1h.parquet").head(6000)
    features, _ = compute_features(candles, model.card["features"]["extras"])
    bars = candles["timestamp"].to_numpy() // 3_600_000
    boundary = int(np.flatnonzero(bars % BLOCK_BARS == 0)[1])
    positions = [0, boundary - 1, boundary, boundary + 1, 5999]
    assert_bar_by_bar_equals_series(
        model.encoder, model.normalise(features), bars, positions, BLOCK_BARS
    )
