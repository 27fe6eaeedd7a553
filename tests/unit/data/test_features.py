from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.data.features import SEED_FEATURES, compute_features, settle_bars
from engine.errors import DataError

EXTRAS = ("log_return_4", "volatility_24", "rsi_14")


def test_seed_features_match_their_definitions(candles):
    frame = candles(50)
    features, names = compute_features(frame)
    assert names == list(SEED_FEATURES) and features.dtype == np.float64
    assert features.shape == (50, 4)
    close = frame["close"].to_numpy()
    np.testing.assert_allclose(features[1:, 0], close[1:] / close[:-1] - 1.0, rtol=0, atol=1e-15)
    assert features[0, 0] == 0.0
    np.testing.assert_allclose(features[:, 1], np.log1p(frame["volume"].to_numpy()))
    np.testing.assert_allclose(features[:, 2], (frame["high"] - frame["low"]) / frame["close"])
    np.testing.assert_allclose(features[:, 3], (frame["close"] - frame["open"]) / frame["open"])


def test_extras_are_appended_by_name(candles):
    frame = candles(300)
    features, names = compute_features(frame, EXTRAS)
    assert names == [*SEED_FEATURES, *EXTRAS] and features.shape == (300, 7)
    close = frame["close"].to_numpy()
    np.testing.assert_allclose(features[10, 4], np.log(close[10] / close[6]))
    assert (features[:4, 4] == 0.0).all()
    np.testing.assert_allclose(features[100, 5], np.std(features[77:101, 0]), rtol=1e-10)
    assert ((features[:, 6] >= 0.0) & (features[:, 6] <= 1.0)).all()
    assert np.isfinite(features).all()


def test_rsi_is_one_when_price_only_rises_and_half_before_any_move(candles):
    frame = candles(30)
    frame["close"] = 100.0 + np.arange(30.0)
    features, _ = compute_features(frame, ["rsi_5"])
    assert features[0, 4] == 0.5 and (features[1:, 4] == 1.0).all()


@pytest.mark.parametrize("name", ["momentum_5", "rsi_1", "volatility_x", "log_return_0"])
def test_unknown_feature_name_is_a_clear_error(candles, name):
    with pytest.raises(DataError, match=f"feature '{name}' is unknown; expected one of"):
        compute_features(candles(10), [name])


def test_missing_columns_are_named(candles):
    with pytest.raises(DataError, match="lack column\\(s\\) volume"):
        compute_features(candles(10).drop(columns="volume"))


@pytest.mark.parametrize("cut", [1, 150, 298])
def test_rows_up_to_t_do_not_change_when_later_bars_change(candles, cut):
    frame = candles(300)
    before, _ = compute_features(frame, EXTRAS)
    changed = frame.copy()
    rng = np.random.default_rng(cut)
    later = changed.index > cut
    for column in ("open", "high", "low", "close"):
        changed.loc[later, column] *= rng.uniform(0.5, 2.0, later.sum())
    changed.loc[later, "high"] = changed.loc[later, ["open", "high", "low", "close"]].max(axis=1)
    changed.loc[later, "volume"] = rng.gamma(1.0, 1000.0, later.sum())
    after, _ = compute_features(changed, EXTRAS)
    assert np.array_equal(after[: cut + 1], before[: cut + 1])
    assert not np.array_equal(after[cut + 1 :], before[cut + 1 :])


def test_a_series_that_starts_settle_bars_earlier_gives_bit_identical_rows(candles):
    frame = candles(4000)
    whole, _ = compute_features(frame, EXTRAS)
    settle = settle_bars(EXTRAS)
    assert settle == 80 * 14
    for first in (1, 23, 700, 2000):
        tail, _ = compute_features(frame.iloc[first:].reset_index(drop=True), EXTRAS)
        assert np.array_equal(tail[settle:], whole[first + settle :]), f"series from bar {first}"
        # Not vacuous: the first rows of the later series differ.
        assert not np.array_equal(tail[:settle], whole[first : first + settle])


def test_volatility_matches_pandas_rolling_std_to_rounding(candles):
    frame = candles(500)
    features, _ = compute_features(frame, ["volatility_24", "volatility_2"])
    returns = pd.Series(features[:, 0])
    for column, bars in ((4, 24), (5, 2)):
        expected = returns.rolling(bars, min_periods=1).std(ddof=0).to_numpy()
        np.testing.assert_allclose(features[:, column], expected, rtol=1e-12, atol=1e-17)


def test_settle_bars_cover_the_longest_lookback_of_the_features():
    assert settle_bars() == 1
    assert settle_bars(["log_return_30", "volatility_48"]) == 48
    assert settle_bars(["rsi_2", "log_return_200"]) == 200
