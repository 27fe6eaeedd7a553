"""One-pass chunked inference: bounded and unbounded receptive fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from causality import assert_future_independent, assert_one_pass_equals_windowed

from engine.ssl.base import Encoder
from engine.ssl.infer import encode_series
from engine.ssl.ts2vec import TS2Vec


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


def test_unbounded_encoder_is_encoded_in_one_pass_whatever_the_chunk_length():
    features = np.random.default_rng(0).standard_normal((50, 2)).astype(np.float32)
    out = encode_series(_RunningSum(2), features, chunk_length=7)
    np.testing.assert_allclose(out, features.cumsum(axis=0), rtol=1e-5, atol=1e-5)


def test_causality_helpers_use_the_whole_prefix_for_an_unbounded_encoder():
    x = torch.randn(1, 30, 2)
    assert_future_independent(_RunningSum(2), x, cuts=[0, 10, 28])
    assert_one_pass_equals_windowed(_RunningSum(2), x, positions=[0, 15, 29])


@pytest.mark.parametrize("chunk_length", [1, 13, 61, 62, 500])
def test_chunks_of_any_length_reproduce_the_one_pass_encoding(chunk_length):
    torch.manual_seed(0)
    encoder = TS2Vec(3, output_dims=8, hidden_dims=8, depth=3).eval()
    features = np.random.default_rng(1).standard_normal((130, 3)).astype(np.float32)
    with torch.inference_mode():
        expected = encoder(torch.from_numpy(features)[None])[0].numpy()
    out = encode_series(encoder, features, chunk_length=chunk_length)
    assert out.dtype == np.float32 and out.shape == (130, 8)
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-4)


def test_features_of_the_wrong_width_are_refused():
    with pytest.raises(ValueError, match=r"shape \(T, 3\)"):
        encode_series(TS2Vec(3, output_dims=8, hidden_dims=8, depth=1), np.zeros((10, 2)))
