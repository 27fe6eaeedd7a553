"""Baselines without pretraining: the indicator set and the supervised LSTM are causal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.research.baselines import (
    indicator_representations,
    lstm_representations,
    train_lstm,
)


def _candles(length: int = 900, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, length)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    spread = np.abs(rng.normal(0, 0.004, length)) * close
    return pd.DataFrame(
        {
            "timestamp": np.arange(length, dtype=np.int64) * 3_600_000,
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": rng.uniform(10, 100, length),
        }
    )


def _future_changed(candles: pd.DataFrame, t: int) -> pd.DataFrame:
    changed = candles.copy()
    later = changed.index > t
    for column in ("open", "high", "low", "close"):
        changed.loc[later, column] *= 1.5
    changed.loc[later, "volume"] *= 7.0
    return changed


def test_indicators_are_named_and_match_hand_computed_values():
    candles = _candles()
    values, names = indicator_representations(candles)
    assert values.shape == (900, 10)
    assert names[0] == "return_1" and names[-3:] == [
        "sma_ratio_20",
        "sma_ratio_50",
        "sma_ratio_200",
    ]
    close = candles["close"].to_numpy()
    t = 500
    assert values[t, names.index("sma_ratio_20")] == pytest.approx(
        close[t] / close[t - 19 : t + 1].mean() - 1
    )
    assert values[t, names.index("log_return_24")] == pytest.approx(
        np.log(close[t] / close[t - 24])
    )
    assert values[3, names.index("sma_ratio_50")] == pytest.approx(close[3] / close[:4].mean() - 1)


@pytest.mark.parametrize("t", [50, 400, 898])
def test_indicators_do_not_look_ahead(t):
    candles = _candles()
    base = indicator_representations(candles)[0]
    changed = indicator_representations(_future_changed(candles, t))[0]
    assert np.array_equal(base[: t + 1], changed[: t + 1])
    assert not np.array_equal(base[t + 1 :], changed[t + 1 :])


def _lstm_inputs(length: int = 1200, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((length, 3)).astype(np.float32)
    labels = np.where(x[:, 0] + x[:, 1] > 0.8, 2, np.where(x[:, 0] + x[:, 1] < -0.8, 0, 1))
    return x, labels.astype(np.int64)


def test_lstm_learns_a_planted_label_and_its_representation_is_causal():
    x, labels = _lstm_inputs()
    model = train_lstm(
        x, labels, slice(0, 800), window=10, hidden=16, iters=300, batch_size=64, lr=0.01, seed=0
    )
    z = lstm_representations(model, x, 10)
    assert z.shape == (1200, 16)
    from sklearn.linear_model import LogisticRegression

    probe = LogisticRegression(max_iter=500).fit(z[:800], labels[:800])
    accuracy = (probe.predict(z[900:]) == labels[900:]).mean()
    assert accuracy > np.bincount(labels[900:]).max() / 300 + 0.15
    for t in (5, 600, 1100):
        changed = x.copy()
        changed[t + 1 :] = 9.0
        other = lstm_representations(model, changed, 10)
        assert np.array_equal(other[: t + 1], z[: t + 1])
        assert not np.array_equal(other[t + 1 :], z[t + 1 :])


def test_lstm_training_reads_only_its_rows_labels():
    x, labels = _lstm_inputs()
    settings = dict(window=10, hidden=8, iters=30, batch_size=16, lr=0.01, seed=3)
    scrambled = labels.copy()
    scrambled[800:] = -1
    a = lstm_representations(train_lstm(x, labels, slice(0, 800), **settings), x, 10)
    b = lstm_representations(train_lstm(x, scrambled, slice(0, 800), **settings), x, 10)
    assert np.array_equal(a, b)
