"""The refit schedule: the blocks a backtest walks are the blocks a paper session finds."""

from __future__ import annotations

import pytest

from engine.errors import ConfigError
from engine.runner.decisions import Pipeline
from engine.runner.schedule import RefitSchedule
from engine.strategy.components import AnomalyRisk, ProbeSignal


def test_blocks_roll_forward_with_the_embargo_before_each():
    schedule = RefitSchedule(anchor=1000, fit_bars=500, refit_every=150, embargo=7)
    assert list(schedule.blocks(1400)) == [
        (slice(1000, 1150), slice(493, 993)),
        (slice(1150, 1300), slice(643, 1143)),
        (slice(1300, 1400), slice(793, 1293)),
    ]


def test_every_bar_finds_the_block_the_backtest_puts_it_in():
    schedule = RefitSchedule(anchor=1000, fit_bars=500, refit_every=150, embargo=7)
    for block, _ in schedule.blocks(1700):
        for t in range(block.start, block.stop):
            assert schedule.block_start(t) == block.start


def test_a_schedule_that_fits_passes_its_check():
    RefitSchedule(anchor=505, fit_bars=500, refit_every=1, embargo=5).check(horizon=5)


def test_fit_bars_and_refit_every_must_be_positive():
    with pytest.raises(ConfigError, match="at least 1"):
        RefitSchedule(anchor=1000, fit_bars=500, refit_every=0, embargo=5).check(horizon=5)


class _Scored(AnomalyRisk):
    """A risk component that names an output as the signal's."""

    @property
    def outputs(self) -> tuple[str, ...]:
        return (*super().outputs, "score")


def test_an_output_named_as_another_roles_is_refused():
    with pytest.raises(ConfigError, match="output 'score' is also an output of the signal"):
        Pipeline(ProbeSignal(), risk=_Scored())
