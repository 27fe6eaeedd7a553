"""Causal encoding of series in fixed-shape blocks, bit-identical bar by bar.

Every encoder's ``forward`` is causal, so a pass over a window gives the
representation of each of its bars. A forward pass is not bit-for-bit
independent of its input's length, though: convolution and matrix kernels sum
in an order that depends on the shape, so the same bar encoded in windows of
different lengths differs in the last bits (about 1e-6). Encoding is
therefore laid out so that every pass has one shape and a bar's pass does not
depend on where the series starts or ends:

- bars are numbered absolutely (``timestamp // interval``), and block k holds
  the bars numbered ``k * block_bars`` to ``(k + 1) * block_bars - 1``;
- each block is encoded in one pass over a window of ``R + block_bars`` rows,
  with ``R = receptive_field() - 1``: the R bars before the block (fewer at
  the start of the series), then the block's bars, then zeros up to the
  window's length (after the end of the series, and where a gap left the
  block short);
- the representation of a bar is its row of its block's pass.

A bar's row depends on the bars before it only (the encoder is causal), so
filling the window after bar t with zeros instead of the later bars leaves
row t bit-identical: a paper session encodes its newest bar t with the block
window that ends at t and gets exactly what a backtest gets by encoding the
whole series (``encode_series(..., start=...)``; the bars it needs are
``window_bars``). Only the first block of a series sees less context, on both
sides alike. ``block_bars`` trades the backtest's extra work (each pass
encodes ``R + block_bars`` rows to keep ``block_bars``) against a session's
per-bar pass: with the shipped TS2Vec (R = 1,020) and 1,024-bar blocks, a
session's pass takes about 33 ms on one thread, and the 23,177 hourly bars of
a backtest take 0.72 s against 0.45 s in one plain pass. The bits of a pass
also depend on how many threads share it, so every pass runs on one torch
thread, whatever the caller's setting. An encoder with an unbounded receptive
field is run in one pass over the whole series instead, which is
bit-identical only for series of the same length.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.ssl.base import Encoder
from engine.ssl.card import BLOCK_BARS
from engine.ssl.threads import one_torch_thread


def window_bars(encoder: Encoder, block_bars: int = BLOCK_BARS) -> int | None:
    """Return how many trailing bars, the bar itself included, determine its representation.

    That is ``receptive_field() - 1 + block_bars``: the bars of its block up to
    it and the context before the block. ``None`` means the whole series (an
    unbounded receptive field).
    """
    field = encoder.receptive_field()
    return None if field is None else field - 1 + block_bars


def encode_series(
    encoder: Encoder,
    features: np.ndarray,
    bars: np.ndarray | None = None,
    start: int = 0,
    block_bars: int = BLOCK_BARS,
) -> np.ndarray:
    """Return the causal representation (float32) of rows ``start`` on of one series.

    Parameters
    ----------
    encoder : Encoder
        The encoder; it is switched to eval mode.
    features : np.ndarray
        The (already normalised) features of consecutive bars of one series,
        one row per bar (T x F). Row 0 is taken as the first bar of the series.
    bars : np.ndarray, optional
        The absolute number of each row's bar (``timestamp // interval``),
        strictly increasing; by default ``0 .. T - 1``.
    start : int
        The first row to return; earlier rows are read as context only. To
        encode bar t exactly as a pass over the whole series does, give at
        least the ``window_bars(encoder, block_bars)`` bars that end at t (or
        the whole series) and ``start`` = t's row.
    block_bars : int
        Bars per block (see the module docstring).

    Returns
    -------
    np.ndarray
        (T - start) x D.
    """
    if not encoder.causal:
        raise ValueError(f"a non-causal {encoder.kind} encoder cannot encode series bar by bar")
    if block_bars < 1:
        raise ValueError(f"block_bars must be at least 1, got {block_bars}")
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or features.shape[1] != encoder.input_dims:
        raise ValueError(
            f"expected features of shape (T, {encoder.input_dims}), got {features.shape}"
        )
    length = features.shape[0]
    if not 0 <= start <= length:
        raise ValueError(f"start must be in 0..{length}, got {start}")
    bars = np.arange(length) if bars is None else np.asarray(bars, dtype=np.int64)
    if bars.shape != (length,) or (np.diff(bars) <= 0).any():
        raise ValueError(f"bars must be {length} strictly increasing bar numbers")
    encoder.eval()
    out = np.empty((length - start, encoder.output_dims), dtype=np.float32)
    series = torch.from_numpy(features)
    field = encoder.receptive_field()
    with one_torch_thread(), torch.inference_mode():
        if field is None:
            out[:] = encoder(series.unsqueeze(0))[0, start:].numpy()
            return out
        context = field - 1
        window = torch.empty(1, context + block_bars, encoder.input_dims)
        blocks = bars // block_bars
        firsts = np.flatnonzero(np.diff(blocks, prepend=blocks[:1] - 1))
        for first, stop in zip(firsts, [*firsts[1:], length], strict=True):
            if stop <= start:
                continue
            lead = min(first, context)
            filled = lead + stop - first
            window[0, :filled] = series[first - lead : stop]
            window[0, filled:] = 0.0
            keep = max(first, start)
            rows = encoder(window)[0, lead + keep - first : filled]
            out[keep - start : stop - start] = rows.numpy()
    return out
