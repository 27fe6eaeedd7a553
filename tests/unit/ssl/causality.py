"""Causality checks shared by the tests of every encoder.

Two properties define a causal encoder here (see ``engine.ssl.base``):

- future independence: change the bars after t, and the representations of
  bars 0..t are bit-identical;
- one pass equals windowed: the representation of bar t from one pass over
  the whole series equals, to float tolerance, the last row of encoding the
  trailing window that ends at t on its own. The window holds
  ``receptive_field()`` bars (fewer at the start of the series, where it is
  the whole prefix); for an encoder with an unbounded receptive field it is
  the whole prefix ``0..t``.

And what ``engine.ssl.infer.encode_series`` builds on them, bit for bit:
encoding bar t alone from the bars up to it, as a paper session does, equals
encoding the whole series, and changing the bars after t changes no row up to t.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.ssl.base import Encoder
from engine.ssl.infer import encode_series, window_bars


def _encode(encoder: Encoder, x: torch.Tensor) -> torch.Tensor:
    encoder.eval()
    with torch.inference_mode():
        return encoder(x)


def assert_future_independent(encoder: Encoder, x: torch.Tensor, cuts: list[int]) -> None:
    """Assert that replacing ``x[:, t + 1:]`` leaves rows ``0..t`` bit-identical, for each cut t.

    The replaced bars are drawn at random (fixed seed), and the rows after t
    must change, which shows the check is not vacuous.
    """
    base = _encode(encoder, x)
    noise = torch.Generator().manual_seed(12345)
    for t in cuts:
        changed = x.clone()
        changed[:, t + 1 :] = torch.randn(changed[:, t + 1 :].shape, generator=noise) * 3.0
        out = _encode(encoder, changed)
        assert torch.equal(out[:, : t + 1], base[:, : t + 1]), f"rows <= {t} changed"
        if t + 1 < x.size(1):
            assert not torch.equal(out[:, t + 1 :], base[:, t + 1 :]), f"rows > {t} unchanged"


def assert_one_pass_equals_windowed(
    encoder: Encoder, x: torch.Tensor, positions: list[int], atol: float = 1e-5
) -> None:
    """Assert that one pass over ``x`` (1, T, F) matches each trailing window's last row."""
    field = encoder.receptive_field()
    one_pass = _encode(encoder, x)[0]
    for t in positions:
        start = 0 if field is None else max(0, t + 1 - field)
        windowed = _encode(encoder, x[:, start : t + 1])[0, -1]
        np.testing.assert_allclose(
            windowed.numpy(), one_pass[t].numpy(), atol=atol, rtol=1e-4, err_msg=f"bar {t}"
        )


def assert_bar_by_bar_equals_series(
    encoder: Encoder, features: np.ndarray, bars: np.ndarray, positions: list[int], block_bars: int
) -> None:
    """Assert that each bar t encoded from bars up to t only equals the series encoding bitwise.

    Bar t is encoded from its trailing ``window_bars`` bars (the whole prefix
    near the start), as a paper session does; the series, whole and with the
    bars after t replaced by random ones (fixed seed), must give row t, and
    every row before it, bit-identical.
    """
    series = encode_series(encoder, features, bars, block_bars=block_bars)
    window = window_bars(encoder, block_bars)
    noise = np.random.default_rng(12345)
    for t in positions:
        first = 0 if window is None else max(0, t + 1 - window)
        rows = slice(first, t + 1)
        alone = encode_series(encoder, features[rows], bars[rows], t - first, block_bars)
        assert np.array_equal(alone[0], series[t]), f"bar {t} alone differs from the series"
        changed = features.copy()
        changed[t + 1 :] = noise.standard_normal(changed[t + 1 :].shape) * 3.0
        out = encode_series(encoder, changed, bars, block_bars=block_bars)
        assert np.array_equal(out[: t + 1], series[: t + 1]), f"rows <= {t} changed"
        if t + 1 < len(features):
            assert not np.array_equal(out[t + 1 :], series[t + 1 :]), f"rows > {t} unchanged"
