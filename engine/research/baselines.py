"""Baseline representations that need no pretraining: indicators and a supervised LSTM.

Both are causal: the row of bar t uses bars 0..t only.

- ``indicator_representations``: a technical-indicator set, the inputs of
  classic rule-based strategies (RSI, close over its simple moving average,
  realised volatility, multi-horizon log returns).
- ``train_lstm`` and ``lstm_representations``: a one-layer LSTM trained from
  scratch on the training labels; the representation of bar t is the LSTM's
  last hidden state after reading the ``window`` bars that end at t (zeros
  before the first bar), so it does not depend on where the series starts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from engine.data.features import compute_features
from engine.errors import DataError
from engine.ssl.threads import one_torch_thread

#: Extra features of the indicator set, computed by ``engine.data.features``.
INDICATOR_EXTRAS = (
    "rsi_14",
    "volatility_24",
    "volatility_168",
    "log_return_5",
    "log_return_24",
    "log_return_120",
)
#: Windows of the close-over-SMA ratios.
SMA_WINDOWS = (20, 50, 200)


def _sma_ratio(close: np.ndarray, window: int) -> np.ndarray:
    # close_t over the mean of the last `window` closes (fewer at the start), minus 1,
    # summed explicitly over each window so a row does not depend on the series' start.
    padded = np.concatenate([np.zeros(window - 1), close])
    total = np.lib.stride_tricks.sliding_window_view(padded, window).sum(axis=1)
    count = np.minimum(np.arange(1, len(close) + 1), window)
    return close / (total / count) - 1.0


def indicator_representations(candles: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Return the indicator set of every bar (T x 10) and the name of each column.

    One-bar return, RSI 14, realised volatility over 24 and 168 bars, log
    returns over 5, 24 and 120 bars, and close over its 20-, 50- and 200-bar
    simple moving average minus one.
    """
    features, names = compute_features(candles, INDICATOR_EXTRAS)
    keep = [names.index("return_1"), *(names.index(name) for name in INDICATOR_EXTRAS)]
    close = candles["close"].to_numpy(dtype=np.float64)
    ratios = [_sma_ratio(close, window) for window in SMA_WINDOWS]
    columns = np.column_stack([features[:, keep], *ratios])
    return columns, [*(names[i] for i in keep), *(f"sma_ratio_{w}" for w in SMA_WINDOWS)]


class _Lstm(torch.nn.Module):
    def __init__(self, inputs: int, hidden: int) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(inputs, hidden, batch_first=True)
        self.head = torch.nn.Linear(hidden, 3)

    def encode(self, windows: torch.Tensor) -> torch.Tensor:
        return self.lstm(windows)[0][:, -1]


def _windows(features: np.ndarray, window: int) -> np.ndarray:
    # (T, window, F): the `window` rows ending at each row, zeros before the first row.
    padded = np.vstack([np.zeros((window - 1, features.shape[1]), np.float32), features])
    return np.lib.stride_tricks.sliding_window_view(padded, window, axis=0).transpose(0, 2, 1)


def train_lstm(
    scaled: np.ndarray,
    labels: np.ndarray,
    rows: slice,
    *,
    window: int,
    hidden: int,
    iters: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> _Lstm:
    """Return an LSTM trained with cross-entropy on the labels of ``rows``.

    ``scaled`` holds normalised features (T x F); each training example is
    the ``window`` rows ending at a row of ``rows`` (its label must be known,
    >= 0), drawn at random with replacement, ``batch_size`` per step.
    """
    start, stop = rows.start or 0, rows.stop
    if stop - start < batch_size:
        raise DataError(f"the LSTM needs at least {batch_size} labelled bars, got {stop - start}")
    if (labels[start:stop] < 0).any():
        raise DataError("LSTM training rows reach past the last labelled bar")
    windows = _windows(np.asarray(scaled, np.float32), window)
    with one_torch_thread():
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        model = _Lstm(scaled.shape[1], hidden)
        optimiser = torch.optim.Adam(model.parameters(), lr=lr)
        y_all = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        for _ in range(iters):
            picked = torch.randint(start, stop, (batch_size,), generator=generator)
            x = torch.from_numpy(np.ascontiguousarray(windows[picked.numpy()]))
            loss = torch.nn.functional.cross_entropy(model.head(model.encode(x)), y_all[picked])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model.eval()


def lstm_representations(model: _Lstm, scaled: np.ndarray, window: int) -> np.ndarray:
    """Return the trained LSTM's hidden state after the ``window`` bars ending at each bar."""
    windows = _windows(np.asarray(scaled, np.float32), window)
    out = np.empty((len(windows), model.lstm.hidden_size), np.float32)
    with one_torch_thread(), torch.inference_mode():
        for first in range(0, len(windows), 4096):
            chunk = np.ascontiguousarray(windows[first : first + 4096])
            out[first : first + len(chunk)] = model.encode(torch.from_numpy(chunk)).numpy()
    return out
