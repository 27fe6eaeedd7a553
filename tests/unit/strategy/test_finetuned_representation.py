"""A fine-tuned encoder as a strategy's representation: tuned on the past only, causal after."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.store import CandleStore, SeriesKey
from engine.models.registry import Registry
from engine.strategy.representations import finetuned_representations, model_representations

REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parents[3]
HOUR = 3_600_000
SETTINGS = {"mode": "full", "iters": 6, "eval_every": 3, "crop_length": 96, "loss_bars": 32}


@pytest.fixture(scope="module")
def candles(shared_data):
    key = SeriesKey("bybit", "linear", "BTCUSDT", "1h")
    return CandleStore(shared_data).load(key).iloc[:3000].reset_index(drop=True)


@pytest.fixture(scope="module")
def model():
    return Registry(REPO_ROOT / "models").load("cost_bybit_1h")


def _represent(model, candles):
    fit = slice(500, 2000)
    return finetuned_representations(model, candles, HOUR, fit, 5, 0.005, SETTINGS, seed=0)


def test_finetuning_changes_the_representation_and_is_reproducible(model, candles):
    tuned = _represent(model, candles)
    assert tuned.shape == (3000, model.encoder.output_dims)
    assert not np.array_equal(tuned, model_representations(model, candles, HOUR))
    assert np.array_equal(tuned, _represent(model, candles))


@pytest.mark.parametrize("t", [1999, 2400, 2998])
def test_bars_after_the_tuning_range_change_no_earlier_row(model, candles, t):
    base = _represent(model, candles)
    changed = candles.copy()
    later = changed.index > t
    for column in ("open", "high", "low", "close"):
        changed.loc[later, column] *= 1.3
    changed.loc[later, "volume"] *= 5.0
    other = _represent(model, changed)
    assert np.array_equal(other[: t + 1], base[: t + 1])
    assert not np.array_equal(other[t + 1 :], base[t + 1 :])
