"""Walk-forward over the refit schedule: windows roll forward with an embargo; no lookahead."""

from __future__ import annotations

import numpy as np
import pytest
from strategy.conftest import COSTS, with_future_changed

from engine.errors import ConfigError, DataError, EngineError
from engine.runner.decisions import DecisionState, Pipeline, time_bar
from engine.runner.schedule import RefitSchedule
from engine.runner.walkforward import block_outputs, walk_forward
from engine.sim.enums import Mode
from engine.strategy.base import FitContext, History, Timing
from engine.strategy.components import (
    AnomalyRisk,
    ProbeSignal,
    PrototypeSizing,
    SimilarityTiming,
)


def _pipeline() -> Pipeline:
    return Pipeline(
        signal=ProbeSignal(),
        sizing=PrototypeSizing(),
        risk=AnomalyRisk(),
        timing=SimilarityTiming(market_above=0.3, limit_above=0.0),
    )


class _RecordingSignal(ProbeSignal):
    """A probe that remembers what each fit was given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, int, int]] = []

    def fit(self, context: FitContext) -> None:
        self.seen.append((len(context.past), context.train.start, context.train.stop))
        super().fit(context)


def test_windows_roll_forward_with_the_embargo_before_each_block(history):
    signal = _RecordingSignal()
    decisions = walk_forward(
        history, Pipeline(signal), RefitSchedule(1000, 500, 150, 7), 1400, COSTS
    )
    assert signal.seen == [(1000, 493, 993), (1150, 643, 1143), (1300, 793, 1293)]
    assert decisions.refits == [(r, s, e) for r, s, e in signal.seen]
    assert len(decisions.target) == 400


def test_embargo_shorter_than_a_label_horizon_is_refused(history):
    pipeline = Pipeline(ProbeSignal(horizon=5), timing=SimilarityTiming(horizon=8))
    with pytest.raises(ConfigError, match=r"embargo_bars is 5; expected at least .* \(8 bars\)"):
        RefitSchedule(1000, 500, 50, 5).check(pipeline.horizon())


def test_too_little_history_before_the_out_of_sample_start_is_refused(history):
    with pytest.raises(DataError, match="needs fit_bars \\+ embargo_bars = 805 bars"):
        RefitSchedule(800, 800, 50, 5).check(Pipeline(ProbeSignal()).horizon())


def test_changing_bars_after_t_leaves_every_decision_up_to_t_bit_identical(history):
    t = 1234
    before = walk_forward(history, _pipeline(), RefitSchedule(1000, 600, 100, 5), 1450, COSTS)
    after = walk_forward(
        with_future_changed(history, t), _pipeline(), RefitSchedule(1000, 600, 100, 5), 1450, COSTS
    )
    upto = t - 1000 + 1
    for name in ("target", "risk_scale", "mode", "limit_offset"):
        np.testing.assert_array_equal(getattr(before, name)[:upto], getattr(after, name)[:upto])
    for name, values in before.outputs.items():
        np.testing.assert_array_equal(values[:upto], after.outputs[name][:upto])
        assert not np.array_equal(values, after.outputs[name]), f"{name} ignored the change"


class _PeekingSignal(ProbeSignal):
    """A leaky signal that scores bar t with the next bar's representation."""

    def transform(self, history: History, rows: slice) -> dict[str, np.ndarray]:
        ahead = np.roll(history.z, -1, axis=0)
        return {"score": self.probabilities(ahead[rows])[:, 2]}


def test_a_peeking_component_changes_the_past_when_the_future_changes(history):
    t = 1234
    before = walk_forward(
        history, Pipeline(_PeekingSignal()), RefitSchedule(1000, 600, 100, 5), 1450, COSTS
    )
    changed = with_future_changed(history, t)
    after = walk_forward(
        changed, Pipeline(_PeekingSignal()), RefitSchedule(1000, 600, 100, 5), 1450, COSTS
    )
    upto = t - 1000 + 1
    assert not np.array_equal(before.outputs["score"][:upto], after.outputs["score"][:upto])


def test_size_is_fixed_at_entry_and_targets_carry_direction(history):
    decisions = walk_forward(
        history,
        Pipeline(ProbeSignal(), PrototypeSizing()),
        RefitSchedule(1000, 600, 100, 5),
        1450,
        COSTS,
    )
    direction = np.sign(decisions.target)
    size = np.abs(decisions.target)
    held = (direction[1:] == direction[:-1]) & (direction[1:] != 0)
    assert held.any()
    np.testing.assert_array_equal(size[1:][held], size[:-1][held])
    assert (direction != 0).any() and (direction == 0).any()


class _Timing(Timing):
    def __init__(self) -> None:
        super().__init__(market_above=0.8, limit_above=0.5, offset=0.002, max_wait=2)

    def fit(self, context: FitContext) -> None:
        """Nothing to fit."""

    def transform(self, history: History, rows: slice) -> dict[str, np.ndarray]:
        """Not used by these tests."""
        return {}


def _timing(timing, exposure, similarity):
    # The per-bar timing stepped over a whole array, as walk_forward steps it.
    similarity = np.full(len(exposure), np.nan) if similarity is None else similarity
    state, modes, offsets = DecisionState(), [], []
    for value, similar in zip(exposure, similarity, strict=True):
        mode, offset, state = time_bar(timing, state, value, similar)
        modes.append(mode)
        offsets.append(offset)
    return np.array(modes), np.array(offsets)


def test_timing_goes_to_market_when_similar_and_waits_otherwise():
    exposure = np.array([0.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -1.0, 0.0, 0.0])
    similarity = np.array([0.0, 0.9, 0.0, 0.0, 0.1, 0.2, 0.1, 0.0, 0.6, 0.6])
    mode, offset = _timing(_Timing(), exposure, similarity)
    assert mode.tolist() == [
        Mode.WAIT,  # no change
        Mode.MARKET,  # change, similarity 0.9 > 0.8
        Mode.WAIT,  # target held
        Mode.WAIT,
        Mode.WAIT,  # change, 0.1: wait
        Mode.WAIT,  # still dissimilar, waited 1 bar
        Mode.MARKET,  # waited max_wait bars: go to market
        Mode.WAIT,
        Mode.LIMIT,  # change, 0.6 > 0.5: a limit order at the offset
        Mode.WAIT,  # the limit rests; not placed twice
    ]
    assert offset.tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 0.002, 0]


def test_a_resting_limit_falls_back_to_market_after_max_wait():
    exposure = np.array([1.0, 1.0, 1.0, 1.0])
    mode, _ = _timing(_Timing(), exposure, np.array([0.6, 0.6, 0.6, 0.6]))
    assert mode.tolist() == [Mode.LIMIT, Mode.WAIT, Mode.MARKET, Mode.WAIT]


def test_without_timing_every_change_is_a_market_order():
    exposure = np.array([0.0, 0.5, 0.5, -0.5, 0.0])
    mode, _ = _timing(None, exposure, None)
    assert mode.tolist() == [Mode.WAIT, Mode.MARKET, Mode.WAIT, Mode.MARKET, Mode.MARKET]


class _UndeclaredOutput(ProbeSignal):
    """A signal that returns an output it does not list."""

    def transform(self, history: History, rows: slice) -> dict[str, np.ndarray]:
        return super().transform(history, rows) | {"extra": np.zeros(rows.stop - rows.start)}


def test_a_transform_returning_an_unlisted_output_is_an_error(history):
    with pytest.raises(EngineError, match=r"returned \['extra', 'score'\]; it lists .*\['score'\]"):
        walk_forward(
            history, Pipeline(_UndeclaredOutput()), RefitSchedule(1000, 600, 100, 5), 1100, COSTS
        )


def _fresh_pipeline_per_block(history, blocks, costs):
    # What an executor does: each block fitted by a pipeline of its own, the last block first.
    order = range(len(blocks) - 1, -1, -1)
    outputs = {i: block_outputs(history, _pipeline(), *blocks[i], costs) for i in order}
    return [outputs[i] for i in range(len(blocks))]


def test_blocks_fitted_apart_give_the_decisions_of_one_pipeline_fitted_in_turn(history):
    schedule = RefitSchedule(1000, 600, 100, 5)
    serial = walk_forward(history, _pipeline(), schedule, 1450, COSTS)
    apart = walk_forward(
        history, _pipeline(), schedule, 1450, COSTS, fit_blocks=_fresh_pipeline_per_block
    )
    for name in ("target", "risk_scale", "mode", "limit_offset", "stop_loss", "take_profit"):
        np.testing.assert_array_equal(getattr(serial, name), getattr(apart, name))
    assert serial.outputs.keys() == apart.outputs.keys()
    for name, values in serial.outputs.items():
        np.testing.assert_array_equal(values, apart.outputs[name])
    assert serial.refits == apart.refits
