"""The evaluation machinery on synthetic candles: it finds a planted signal and invents none."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.config import EvaluateConfig
from engine.data.store import CandleStore, SeriesKey
from engine.errors import DataError
from engine.research.evaluate import count_steps, evaluate, load_series

HOUR = 3_600_000
START = pd.Timestamp("2024-01-01", tz="UTC").value // 1_000_000


def _candles(bars: int, planted: float, seed: int) -> pd.DataFrame:
    # Hourly candles whose next five returns drift by `planted` times the bar's body
    # (close over open minus one): with planted > 0 the body predicts the 5-bar label.
    rng = np.random.default_rng(seed)
    body = rng.normal(0.0, 0.004, bars)
    close = np.empty(bars)
    price, drift = 100.0, np.zeros(bars + 5)
    for t in range(bars):
        step = drift[t] + rng.normal(0.0, 0.002)
        open_ = price
        price = open_ * (1 + body[t]) * (1 + step)
        close[t] = price
        drift[t + 1 : t + 6] += planted * body[t] / 5
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * 1.001
    low = np.minimum(open_, close) * 0.999
    return pd.DataFrame(
        {
            "timestamp": START + np.arange(bars, dtype=np.int64) * HOUR,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.uniform(100, 200, bars),
        }
    )


def _config(**changes) -> EvaluateConfig:
    spec = {
        "name": "synthetic",
        "representations": ["features", "majority"],
        "train_series": ["bybit:linear:BTCUSDT:1h"],
        "test_series": ["bybit:linear:BTCUSDT:1h"],
        "train": {"start": "2024-01-01", "end": "2024-03-31"},
        "test": {"start": "2024-04-01", "end": "2024-05-31"},
        "tasks": ["probe"],
        "bootstrap": {"reps": 500},
        **changes,
    }
    return EvaluateConfig.model_validate(spec)


def _store(tmp_path, planted: float, seed: int = 0) -> CandleStore:
    store = CandleStore(tmp_path / f"store-{planted}-{seed}")
    store.write(SeriesKey("bybit", "linear", "BTCUSDT", "1h"), _candles(3700, planted, seed))
    return store


def _probe(tmp_path, planted: float, seed: int = 0) -> dict:
    config = _config()
    steps: list[str] = []
    results = evaluate(config, _store(tmp_path, planted, seed), tmp_path, None, steps.append)
    assert len(steps) == count_steps(config)
    series = "bybit:linear:BTCUSDT:1h"
    return results.results["probe"]["features"][series][series]


def test_a_planted_signal_gives_an_interval_well_above_the_majority_class(tmp_path):
    found = _probe(tmp_path, planted=3.0)
    assert found["minus_majority_ci"][0] > 0.05
    assert found["ci_low"] > found["majority_rate"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_signal_gives_no_significant_edge_over_the_majority_class(tmp_path, seed):
    found = _probe(tmp_path, planted=0.0, seed=seed)
    assert found["minus_majority_ci"][0] <= 0.0


def test_training_rows_end_an_embargo_before_the_first_test_bar(tmp_path):
    config = _config(embargo_bars=12, test={"start": "2024-04-01", "end": "2024-04-30"})
    series = load_series(config, _store(tmp_path, 0.0))["bybit:linear:BTCUSDT:1h"]
    first_test = int(np.searchsorted(series.candles["timestamp"], START + 91 * 24 * HOUR))
    assert series.test.start == first_test
    assert series.train.stop == first_test - 12
    assert series.test.stop == len(series.candles) - 5
    assert series.candles["timestamp"].iloc[-1] == START + (121 * 24 - 1) * HOUR
    assert (series.labels[series.test] >= 0).all() and (series.labels[series.train] >= 0).all()


def test_a_series_too_short_for_the_ranges_is_refused(tmp_path):
    config = _config(test={"start": "2025-01-01"})
    with pytest.raises(DataError, match="0 test bars"):
        load_series(config, _store(tmp_path, 0.0))
