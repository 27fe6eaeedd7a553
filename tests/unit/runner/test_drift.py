"""Drift monitoring: a planted regime change is found, a stationary series rarely alarms,
readings and drift-triggered refits are causal."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from strategy.conftest import COSTS, make_history, with_future_changed

from engine.config import DriftConfig
from engine.runner.decisions import Pipeline
from engine.runner.drift import DriftMonitor, energy_test, psi, sign_accuracy, wilson
from engine.runner.schedule import RefitSchedule
from engine.runner.walkforward import walk_forward
from engine.strategy.base import History
from engine.strategy.components import ProbeSignal

HOUR = 3_600_000
#: Planted changes are detected within this many bars (window 96, stride 8, p <= 0.01).
DETECTION_BARS = 56
CONFIG = DriftConfig(window=96, stride=8, reference_bars=256, permutations=99, p_value=0.01)


def _series(n: int, dims: int, seed: int, shift_at: int | None = None, shift: float = 0.6):
    # i.i.d. representations (the mean of every column moves by `shift` from bar `shift_at`)
    # and scores, a random walk, positive volumes.
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, dims))
    if shift_at is not None:
        z[shift_at:] += shift
    close = 100 * np.exp(np.cumsum(rng.normal(scale=0.003, size=n)))
    history = History(
        timestamp=np.arange(n, dtype=np.int64) * HOUR,
        open=close,
        high=close * 1.001,
        low=close * 0.999,
        close=close,
        volume=rng.uniform(1, 10, size=n),
        z=z,
    )
    return history, rng.normal(size=n)


def _readings(monitor: DriftMonitor, history: History, scores: np.ndarray, block: int):
    train = slice(0, block - 5)
    monitor.fit(history.upto(block), train, scores[train])
    readings = {}
    for t in range(block, len(history)):
        reading = monitor.observe(history, t, block, scores[block : t + 1])
        if reading is not None:
            readings[t] = reading
    return readings


def test_a_planted_shift_of_the_representations_is_detected_within_the_stated_bars():
    delays = []
    for seed in range(5):
        history, scores = _series(1600, 8, seed, shift_at=1300)
        readings = _readings(DriftMonitor(CONFIG, 8, 5, HOUR, seed), history, scores, 1000)
        before = [r for t, r in readings.items() if t < 1300]
        assert not any("representation" in r.alarms for r in before)
        found = [t for t, r in readings.items() if t >= 1300 and "representation" in r.alarms]
        delays.append(found[0] - 1300)
    assert max(delays) <= DETECTION_BARS, delays


def test_collapsing_volume_and_gaps_are_data_health_alarms():
    history, scores = _series(1400, 4, 0)
    volume = history.volume.copy()
    volume[1200:] *= 0.05
    stamps = history.timestamp.copy()
    stamps[1300:] += 5 * HOUR
    changed = replace(history, volume=volume, timestamp=stamps)
    readings = _readings(DriftMonitor(CONFIG, 4, 5, HOUR, 0), changed, scores, 1000)
    assert all("health" not in r.alarms for t, r in readings.items() if t < 1200)
    late = [r for t, r in readings.items() if t >= 1300]
    assert late and all("health" in r.alarms and r.volume_ratio < 0.1 for r in late)
    assert any(r.gaps == 5 for r in late)


def test_a_stationary_series_alarms_at_no_more_than_the_nominal_rate():
    # The representation test is exact for exchangeable bars: P(p < 0.05) <= 0.05.
    config = CONFIG.model_copy(update={"p_value": 0.05, "stride": 24})
    alarms, count = 0, 0
    for seed in range(6):
        history, scores = _series(2500, 8, 100 + seed)
        readings = _readings(DriftMonitor(config, 8, 5, HOUR, seed), history, scores, 1000)
        alarms += sum("representation" in r.alarms for r in readings.values())
        count += len(readings)
    # The nominal rate plus two binomial standard deviations.
    bound = 0.05 + 2 * np.sqrt(0.05 * 0.95 / count)
    assert count > 300
    assert alarms / count <= bound


def test_energy_test_gives_uniformish_p_values_and_small_ones_for_different_samples():
    rng = np.random.default_rng(0)
    same = [
        energy_test(rng.normal(size=(60, 3)), rng.normal(size=(40, 3)), 99, s)[1] for s in range(40)
    ]
    assert 0.3 < np.mean(same) < 0.7
    energy, p = energy_test(rng.normal(size=(60, 3)), rng.normal(1.0, size=(40, 3)), 99, 0)
    assert energy > 0 and p == pytest.approx(0.01)


def test_psi_is_zero_for_the_same_shares_and_grows_with_a_shift():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=5000)
    edges = np.quantile(reference, np.linspace(0.1, 0.9, 9))
    shares = np.full(10, 0.1)
    assert psi(shares, edges, reference) < 0.01
    assert psi(shares, edges, reference + 1.0) > 0.25


def test_accuracy_counts_only_labels_inside_the_closes_given():
    close = np.array([1.0, 2.0, 1.0, 3.0, 3.0, 2.0])
    scores = np.array([1.0, 1.0, -1.0, 1.0])
    # Labels over 2 bars: up (1->1 is flat, skipped), 2->3 up, 1->3 up, 3->2 down.
    assert sign_accuracy(scores, close, 2) == (1, 3)
    low, high = wilson(50, 100, 0.95)
    assert low < 0.5 < high and high - low == pytest.approx(0.19, abs=0.01)


def _pipeline() -> Pipeline:
    return Pipeline(signal=ProbeSignal())


def test_drift_triggered_refits_use_no_bar_after_their_trigger_and_are_causal():
    history = make_history(2400, 8, seed=3)
    z = history.z.copy()
    z[1700:] += 1.0
    history = replace(history, z=z)
    schedule = RefitSchedule(1000, 800, 400, 5)
    config = CONFIG.model_copy(
        update={"policy": "refit_components", "triggers": ["representation"]}
    )

    def run(h: History):
        monitor = DriftMonitor(config, 8, 5, HOUR, 0)
        return walk_forward(h, _pipeline(), schedule, len(h), COSTS, monitor=monitor)

    decisions = run(history)
    triggers = [t for t, r in decisions.drift.items() if r.triggered]
    assert triggers and triggers[0] >= 1700
    for block, train_start, train_stop in decisions.refits:
        assert train_stop <= block - 5 and train_stop - train_start == 800
    starts = [r[0] for r in decisions.refits]
    for t in triggers:
        assert t + 1 in starts or t + 1 == len(history)
    for t in (triggers[0], triggers[0] + 30):
        other = run(with_future_changed(history, t))
        upto = t - 1000 + 1
        assert [r for r in other.refits if r[0] <= t] == [r for r in decisions.refits if r[0] <= t]
        assert {k: v for k, v in other.drift.items() if k <= t} == {
            k: v for k, v in decisions.drift.items() if k <= t
        }
        np.testing.assert_array_equal(other.target[:upto], decisions.target[:upto])
        np.testing.assert_array_equal(
            other.outputs["score"][:upto], decisions.outputs["score"][:upto]
        )


def test_flatten_zeroes_the_target_from_the_alarm_until_a_reading_without_one():
    history = make_history(2000, 8, seed=4)
    z = history.z.copy()
    z[1500:1700] += 1.5
    history = replace(history, z=z)
    schedule = RefitSchedule(1000, 800, 2000, 5)
    config = CONFIG.model_copy(update={"policy": "flatten", "triggers": ["representation"]})
    monitor = DriftMonitor(config, 8, 5, HOUR, 0)
    decisions = walk_forward(history, _pipeline(), schedule, 2000, COSTS, monitor=monitor)
    plain = walk_forward(history, _pipeline(), schedule, 2000, COSTS)
    flat = False
    for t in range(1000, 2000):
        reading = decisions.drift.get(t)
        flat = flat if reading is None else reading.triggered
        if flat:
            assert decisions.target[t - 1000] == 0
        else:
            assert decisions.target[t - 1000] == plain.target[t - 1000]
    assert (decisions.target == 0).sum() > (plain.target == 0).sum()
