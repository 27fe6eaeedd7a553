"""Strategy components: what each learns and outputs, and that none looks ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.errors import ConfigError
from engine.strategy.base import Costs, FitContext, History, Sizing, load_component
from engine.strategy.components import (
    AnomalyRisk,
    ProbeSignal,
    PrototypeSizing,
    SimilarityTiming,
)
from engine.strategy.features import (
    DOWN,
    FLAT,
    UP,
    direction_labels,
    forward_return,
    realised_volatility,
)

from .conftest import COSTS, make_history, with_future_changed

TRAIN = slice(100, 1000)


def _fit(component, history, stop=1010, signal=None):
    component.fit(FitContext(history.upto(stop), TRAIN, COSTS, signal))
    return component


def test_forward_return_and_labels_have_no_value_past_the_last_bar():
    close = np.array([100.0, 101.0, 99.0, 99.0, 102.0])
    ret = forward_return(close, 2)
    assert ret[:3] == pytest.approx([-0.01, -0.0198019802, 0.0303030303])
    assert np.isnan(ret[3:]).all()
    labels = direction_labels(close, 2, 0.015)
    assert labels.tolist() == [FLAT, DOWN, UP, -1, -1]


def test_realised_volatility_matches_a_rolling_standard_deviation():
    close = make_history(300).close
    expected = pd.Series(np.log(close)).diff().fillna(0.0).iloc[1:].rolling(20, min_periods=2)
    expected = expected.std().to_numpy()
    got = realised_volatility(close, 20)
    assert np.isnan(got[:2]).all()
    np.testing.assert_allclose(got[21:], expected[20:], rtol=1e-9)


def test_probe_learns_a_direction_the_representation_carries(history):
    signal = _fit(ProbeSignal(), history)
    score = signal.transform(history, slice(1010, 1490))["score"]
    realised = forward_return(history.close, 5)[1010:1490]
    moved = np.abs(realised) > 0.005
    hit_rate = np.mean(np.sign(score[moved]) == np.sign(realised[moved]))
    assert hit_rate > 0.62


def test_probe_scores_nothing_on_a_representation_without_information():
    history = make_history(predictive=False)
    signal = _fit(ProbeSignal(), history)
    score = signal.transform(history, slice(1010, 1490))["score"]
    realised = forward_return(history.close, 5)[1010:1490]
    moved = np.abs(realised) > 0.005
    hit_rate = np.mean(np.sign(score[moved]) == np.sign(realised[moved]))
    assert 0.4 < hit_rate < 0.6


def test_mlp_probe_learns_too(history):
    signal = _fit(ProbeSignal(probe="mlp"), history)
    score = signal.transform(history, slice(1010, 1490))["score"]
    realised = forward_return(history.close, 5)[1010:1490]
    moved = np.abs(realised) > 0.005
    assert np.mean(np.sign(score[moved]) == np.sign(realised[moved])) > 0.62


def test_signal_direction_has_hysteresis():
    signal = ProbeSignal(entry=0.3, exit=0.1)
    score = np.array([0.0, 0.35, 0.2, 0.05, -0.2, -0.31, -0.15, 0.09, 0.5])
    assert signal.direction(score).tolist() == [0, 1, 1, 0, 0, -1, -1, 0, 1]


def test_long_only_signal_flattens_instead_of_shorting():
    signal = ProbeSignal(entry=0.3, exit=0.1, allow_short=False)
    assert signal.direction(np.array([0.5, -0.5, -0.2])).tolist() == [1, 0, 0]


def test_probe_refuses_training_rows_whose_label_is_not_known_yet(history):
    with pytest.raises(ValueError, match="embargo must be at least the label horizon"):
        ProbeSignal(horizon=5).fit(FitContext(history.upto(1003), TRAIN, COSTS))


def test_sizing_is_capped_zero_when_dissimilar_and_inverse_to_volatility(history):
    signal = _fit(ProbeSignal(), history)
    in_sample = signal.direction(signal.transform(history, TRAIN)["score"])
    sizing = _fit(PrototypeSizing(max_leverage=1.5, target_vol=0.003), history, signal=in_sample)
    rows = slice(1010, 1490)
    size = sizing.transform(history, rows)["size"]
    assert (size >= 0).all() and (size <= 1.5).all()
    z = sizing._scale(history.z[rows])
    cos = z @ sizing._prototype / (np.linalg.norm(z, axis=1) * np.linalg.norm(sizing._prototype))
    vol = realised_volatility(history.close, 48)[rows]
    base_size = 1.0
    expected = np.minimum(base_size * np.maximum(cos, 0) * 0.003 / vol, 1.5)
    np.testing.assert_allclose(size, expected, rtol=1e-12)
    assert (size[cos <= 0] == 0).all() and (size > 0).any()


def test_sizing_prototype_counts_only_moves_beyond_the_strategys_round_trip_fees(history):
    signal = _fit(ProbeSignal(), history)
    in_sample = signal.direction(signal.transform(history, TRAIN)["score"])
    ret = forward_return(history.upto(1010).close, 5)[TRAIN]
    for taker_fee in (0.0, 0.0003, 0.002):
        costs = Costs(maker_fee=0.0, taker_fee=taker_fee)
        sizing = PrototypeSizing()
        sizing.fit(FitContext(history.upto(1010), TRAIN, costs, in_sample))
        chosen = (in_sample != 0) & (in_sample * ret > 2 * taker_fee)
        expected = sizing._scale(history.z[TRAIN])[chosen].mean(axis=0)
        np.testing.assert_array_equal(sizing._prototype, expected)
    assert costs.round_trip_fee == 0.004


def test_risk_scales_down_or_flattens_anomalous_bars(history):
    shocked = make_history()
    shocked.z[1200] = 50.0
    risk = _fit(AnomalyRisk(threshold=4.0, scale=0.25), shocked)
    out = risk.transform(shocked, slice(1010, 1490))
    assert out["risk_scale"][1200 - 1010] == 0.25
    assert out["anomaly"][1200 - 1010] > 10
    assert np.mean(out["risk_scale"] == 1.0) > 0.9
    flatten = _fit(AnomalyRisk(threshold=4.0, action="flatten"), shocked)
    assert flatten.transform(shocked, slice(1200, 1201))["risk_scale"][0] == 0.0


def test_drawdown_brake_scales_risk_while_the_market_is_far_below_its_peak(history):
    rows = slice(1010, 1490)
    risk = _fit(AnomalyRisk(threshold=50.0, drawdown_brake=0.03, brake_window=100), history)
    out = risk.transform(history, rows)
    close = history.close[: rows.stop]
    peak = np.array([close[max(0, t - 99) : t + 1].max() for t in range(rows.start, rows.stop)])
    expected = 1.0 - close[rows] / peak
    np.testing.assert_allclose(out["drawdown"], expected, rtol=1e-12)
    braked = expected > 0.03
    assert braked.any() and (~braked).any()
    assert (out["risk_scale"][braked] == 0.0).all() and (out["risk_scale"][~braked] == 1.0).all()
    half = _fit(
        AnomalyRisk(threshold=50.0, drawdown_brake=0.03, brake_window=100, brake_scale=0.5), history
    )
    assert set(half.transform(history, rows)["risk_scale"]) == {0.5, 1.0}


def test_timing_similarity_is_a_cosine_in_range(history):
    timing = _fit(SimilarityTiming(), history)
    similarity = timing.transform(history, slice(1010, 1490))["similarity"]
    assert (np.abs(similarity) <= 1 + 1e-12).all() and similarity.std() > 0


COMPONENTS = {
    "signal": lambda: ProbeSignal(),
    "signal_mlp": lambda: ProbeSignal(probe="mlp"),
    "sizing": lambda: PrototypeSizing(),
    "risk": lambda: AnomalyRisk(),
    "risk_with_brake": lambda: AnomalyRisk(drawdown_brake=0.02, brake_window=48),
    "timing": lambda: SimilarityTiming(),
}


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_changing_bars_after_t_leaves_outputs_up_to_t_bit_identical(history, name):
    t = 1200
    changed = with_future_changed(history, t)
    rows = slice(1010, 1400)
    before = _fit(COMPONENTS[name](), history).transform(history, rows)
    after = _fit(COMPONENTS[name](), changed).transform(changed, rows)
    for key in before:
        np.testing.assert_array_equal(before[key][: t - 1010 + 1], after[key][: t - 1010 + 1])
        assert not np.array_equal(before[key], after[key]), "the future change had no effect"


def test_load_component_builds_a_named_class_with_parameters():
    component = load_component("engine.strategy.components:ProbeSignal", {"horizon": 3}, "signal")
    assert isinstance(component, ProbeSignal) and component.horizon == 3


@pytest.mark.parametrize(
    ("path", "params", "role", "message"),
    [
        ("engine.nowhere:Probe", {}, "signal", "cannot import module 'engine.nowhere'"),
        ("engine.strategy.components:Nothing", {}, "signal", "is not a strategy component"),
        ("numpy:ndarray", {}, "signal", "is not a strategy component"),
        ("engine.strategy.components:AnomalyRisk", {}, "signal", "is a risk component"),
        ("engine.strategy.components:ProbeSignal", {"horizn": 3}, "signal", "horizn"),
        ("engine.strategy.components:ProbeSignal", {"horizon": 0}, "signal", "horizon must"),
    ],
)
def test_load_component_explains_what_is_wrong(path, params, role, message):
    with pytest.raises(ConfigError, match=message):
        load_component(path, params, role)


class MisnamedSizing(Sizing):
    """A sizing component whose output is not the role's ``size``."""

    outputs = ("sizes",)

    def fit(self, context: FitContext) -> None:
        """Nothing to fit."""

    def transform(self, history: History, rows: slice) -> dict[str, np.ndarray]:
        """Return a constant size under the wrong name."""
        return {"sizes": np.ones(rows.stop - rows.start)}


def test_a_component_without_its_roles_output_is_refused_at_load_time():
    with pytest.raises(
        ConfigError, match=r"lists the outputs \['sizes'\]; .* must output \['size'\]"
    ):
        load_component(f"{__name__}:MisnamedSizing", {}, "sizing")


def test_timing_declares_its_thresholds_and_the_limit_orders_time_to_live():
    timing = SimilarityTiming(market_above=0.9, limit_above=0.2, offset=0.002, max_wait=4)
    assert (timing.market_above, timing.limit_above, timing.offset) == (0.9, 0.2, 0.002)
    assert timing.limit_ttl == 4
    assert SimilarityTiming(max_wait=0).limit_ttl == 1
    with pytest.raises(ValueError, match="limit_above <= market_above"):
        SimilarityTiming(market_above=0.1, limit_above=0.5)
