"""Every representation kind: the newest bar alone equals the whole series' row; no lookahead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from engine.config import StrategyConfig
from engine.data.store import CandleStore, SeriesKey
from engine.runner.representation import strategy_representation

REPO_ROOT = Path(__file__).resolve().parents[3]
#: 3,000 bars from 2025-01-01, after the shipped encoder's pretraining range; the fitting
#: range ends at bar 2,160.
FIT_END = "2025-03-31"
FIRST_ACTED_ON = 2200
KINDS = {
    "features": {"kind": "features", "extras": ["volatility_24", "rsi_14"]},
    "pca": {"kind": "pca", "window": 24, "dims": 8, "extras": ["rsi_14"], "fit_end": FIT_END},
    "supervised": {
        "kind": "supervised",
        "params": {"output_dims": 8, "hidden_dims": 8, "depth": 3},
        "extras": ["rsi_14"],
        "fit_end": FIT_END,
        "iters": 3,
        "crop_length": 64,
    },
    "finetuned": {
        "kind": "finetuned",
        "encoder": "ts2vec_bybit_1h",
        "fit_start": "2025-02-01",
        "fit_end": FIT_END,
        "iters": 2,
        "crop_length": 64,
        "loss_bars": 32,
        "eval_every": 2,
    },
}


@pytest.fixture(scope="module")
def candles(shared_data):
    key = SeriesKey("bybit", "linear", "BTCUSDT", "1h")
    candles = CandleStore(shared_data).load(key)
    after = candles[candles["timestamp"] >= pd.Timestamp("2025-01-01", tz="UTC").value // 10**6]
    return after.iloc[:3000].reset_index(drop=True)


def _representation(kind: str, candles):
    spec = yaml.safe_load((REPO_ROOT / "strategies" / "ssl_cost.yaml").read_text())
    spec["encoder"] = None
    spec["representation"] = KINDS[kind]
    config = StrategyConfig(**spec)
    start_ms = int(candles["timestamp"].iloc[FIRST_ACTED_ON])
    return strategy_representation(config, candles, start_ms, REPO_ROOT / "models", None)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_newest_bar_alone_equals_its_row_of_the_series_and_ignores_the_future(kind, candles):
    representation = _representation(kind, candles)
    whole = representation.series(candles)
    assert whole.shape[0] == len(candles) and np.isfinite(whole).all()
    tail = representation.tail_bars()
    for t in (FIRST_ACTED_ON, FIRST_ACTED_ON + 1, 2999):
        first = 0 if tail is None else max(0, t + 1 - tail)
        newest = representation.newest(candles.iloc[first : t + 1].reset_index(drop=True))
        np.testing.assert_array_equal(newest, whole[t])
    changed = candles.copy()
    later = changed.index >= FIRST_ACTED_ON
    for column in ("open", "high", "low", "close"):
        changed.loc[later, column] *= 1.5
    past = slice(0, FIRST_ACTED_ON)
    refitted = _representation(kind, changed)
    np.testing.assert_array_equal(refitted.series(changed)[past], whole[past])
