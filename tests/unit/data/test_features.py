from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.data.features import (
    RELATIVE_FEATURES,
    SCALE_BARS,
    SEED_FEATURES,
    compute_features,
    settle_bars,
)
from engine.errors import DataError

EXTRAS = ("log_return_4", "volatility_24", "rsi_14")
RELATIVE_EXTRAS = ("volatility_ratio_24", "rsi_14")
# Every feature set with extras that exercise each kind of feature.
SETS = [("raw", EXTRAS), ("relative", (*EXTRAS, *RELATIVE_EXTRAS[:1]))]


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


@pytest.mark.parametrize(("feature_set", "extras"), SETS)
@pytest.mark.parametrize("cut", [1, 150, 298])
def test_rows_up_to_t_do_not_change_when_later_bars_change(candles, cut, feature_set, extras):
    frame = candles(300)
    before, _ = compute_features(frame, extras, feature_set)
    changed = frame.copy()
    rng = np.random.default_rng(cut)
    later = changed.index > cut
    for column in ("open", "high", "low", "close"):
        changed.loc[later, column] *= rng.uniform(0.5, 2.0, later.sum())
    changed.loc[later, "high"] = changed.loc[later, ["open", "high", "low", "close"]].max(axis=1)
    changed.loc[later, "volume"] = rng.gamma(1.0, 1000.0, later.sum())
    after, _ = compute_features(changed, extras, feature_set)
    assert np.array_equal(after[: cut + 1], before[: cut + 1])
    # Every feature of the later bars changes, so each one's past is checked.
    assert (after[cut + 1 :] != before[cut + 1 :]).any(axis=0).all()


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


def test_relative_seed_features_match_their_definitions(candles):
    frame = candles(600)
    features, names = compute_features(frame, feature_set="relative")
    raw, _ = compute_features(frame)
    assert names == list(RELATIVE_FEATURES) and features.shape == (600, 4)
    returns = pd.Series(raw[:, 0])
    scale = returns.rolling(SCALE_BARS, min_periods=1).std(ddof=0).to_numpy()
    level = frame["volume"].rolling(SCALE_BARS, min_periods=1).mean().to_numpy()
    rows = slice(1, None)  # the first bar has no move, so no scale
    for column, seed in ((0, 0), (2, 2), (3, 3)):
        np.testing.assert_allclose(features[rows, column], raw[rows, seed] / scale[rows], rtol=1e-9)
    np.testing.assert_allclose(features[:, 1], np.log1p(frame["volume"] / level), rtol=1e-9)
    assert (features[0, [0, 2, 3]] == 0.0).all()


def test_volatility_ratio_is_the_log_of_short_over_scale_volatility(candles):
    frame = candles(400)
    features, _ = compute_features(frame, ["volatility_ratio_24", "volatility_24"])
    returns = pd.Series(features[:, 0])
    scale = returns.rolling(SCALE_BARS, min_periods=1).std(ddof=0).to_numpy()
    np.testing.assert_allclose(features[5:, 4], np.log(features[5:, 5] / scale[5:]), rtol=1e-9, atol=1e-12
    )
    assert features[0, 4] == 0.0


def test_relative_features_put_assets_of_any_volume_on_one_scale(candles):
    # The same bars with volume in other units (a coin worth 10,000 times less): the
    # raw log volume moves by log(10,000), the relative features do not move at all.
    frame = candles(500)
    cheap = frame.copy()
    cheap["volume"] *= 10_000.0
    raw, raw_cheap = compute_features(frame)[0], compute_features(cheap)[0]
    assert np.median(raw_cheap[:, 1] - raw[:, 1]) > 9.0
    relative, _ = compute_features(frame, RELATIVE_EXTRAS, "relative")
    relative_cheap, _ = compute_features(cheap, RELATIVE_EXTRAS, "relative")
    np.testing.assert_allclose(relative_cheap, relative, rtol=1e-12, atol=1e-15)


def test_an_unknown_feature_set_is_a_clear_error(candles):
    with pytest.raises(DataError, match="feature set 'levels' is unknown; expected one of raw"):
        compute_features(candles(10), feature_set="levels")
    with pytest.raises(DataError, match="feature set 'levels' is unknown"):
        settle_bars(feature_set="levels")


def test_settle_bars_of_the_relative_set_cover_its_scale_window():
    assert settle_bars(feature_set="relative") == SCALE_BARS
    assert settle_bars(["volatility_ratio_24"]) == SCALE_BARS
    assert settle_bars(RELATIVE_EXTRAS, "relative") == 80 * 14


@pytest.mark.parametrize(
    "file", ["bybit_linear_BTCUSDT_1h", "binance_spot_DOGEUSDT_1h", "bybit_linear_SOLUSDT_5m"]
)
@pytest.mark.parametrize(("feature_set", "extras"), SETS)
def test_real_candles_from_random_starts_give_bit_identical_rows_after_settle_bars(
    shared_data, file, feature_set, extras
):
    frame = pd.read_parquet(shared_data / f"{file}.parquet").iloc[:6000].reset_index(drop=True)
    whole, _ = compute_features(frame, extras, feature_set)
    settle = settle_bars(extras, feature_set)
    rng = np.random.default_rng(7)
    for first in rng.integers(1, len(frame) - settle - 100, size=8):
        tail, _ = compute_features(frame.iloc[first:].reset_index(drop=True), extras, feature_set)
        assert np.array_equal(tail[settle:], whole[first + settle :]), f"{file} from bar {first}"
        assert not np.array_equal(tail[:settle], whole[first : first + settle])
