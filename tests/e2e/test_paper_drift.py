"""A replayed paper session with a drift policy: the backtest's readings, refits and book."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from paper_replays import REPO_ROOT, _config, _ms, _replay, store

from engine.config import DriftConfig, StrategyConfig
from engine.data.store import CandleStore
from engine.errors import ConfigError
from engine.paper.status import session_status
from engine.runner.backtest import run_backtest

__all__ = ["store"]  # the fixture

#: A policy that acts several times in two weeks of hourly bars.
DRIFT = DriftConfig(window=48, stride=12, reference_bars=128, psi=0.1, policy="refit_components")


def _drift_config(start: str, end: str, **drift) -> StrategyConfig:
    config = _config(start, end)
    return config.model_copy(update={"drift": DRIFT.model_copy(update=drift)})


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["refit_components", "flatten"])
def test_replayed_session_with_a_drift_policy_equals_the_backtest(
    policy, store, shared_data, tmp_path
):
    config = _drift_config("2025-06-01", "2025-06-15", policy=policy)
    tables, _ = _replay(
        config, store, shared_data, tmp_path / "j", _ms("2025-06-16"), through="file"
    )
    backtest = run_backtest(config, REPO_ROOT / "models", CandleStore(shared_data), cache_dir=None)
    decisions = backtest.fitted.decisions[0]
    triggered = [t for t, r in decisions.drift.items() if r.triggered]
    assert len(triggered) >= 2
    stamps = backtest.timestamps
    start = decisions.start
    refit_ts = tables["decisions"]["ts"][tables["decisions"]["refit"] == 1]
    np.testing.assert_array_equal(refit_ts, stamps[[r[0] - start for r in decisions.refits]])
    journaled = tables["drift"]
    np.testing.assert_array_equal(journaled["ts"], stamps[[t - start for t in decisions.drift]])
    for name in ("energy", "p_value", "psi", "accuracy", "volume_ratio"):
        expected = [getattr(r, name) for r in decisions.drift.values()]
        np.testing.assert_allclose(journaled[name], expected, rtol=1e-12)
    assert journaled["alarms"].tolist() == [r.alarms for r in decisions.drift.values()]
    # Outputs agree within the stepper's stated tolerance; the book bit for bit.
    np.testing.assert_allclose(tables["decisions"]["target"], decisions.target, rtol=1e-12)
    np.testing.assert_array_equal(tables["balances"]["equity"], backtest.sim.equity)
    np.testing.assert_array_equal(tables["fills"]["price"], backtest.sim.fills["price"])
    alerts = tables["events"]["message"]
    assert alerts.str.contains(f"; {policy}").sum() == len(triggered)


@pytest.mark.slow
def test_a_resumed_session_continues_the_drift_policy_as_if_never_stopped(
    store, shared_data, tmp_path
):
    config = _drift_config("2025-06-01", "2025-06-15")
    until = _ms("2025-06-16")
    clean, _ = _replay(config, store, shared_data, tmp_path / "a", until, through="file")
    triggers = clean["drift"]["ts"][clean["drift"]["triggered"] == 1]
    # Stop right after a bar whose reading ended its block, and once in the middle of a block.
    for i, stop_ts in enumerate([int(triggers.iloc[0]) + 3_600_000, _ms("2025-06-09") + 7_200_000]):
        folder = tmp_path / f"b{i}"
        _replay(config, store, shared_data, folder, stop_ts, through="file")
        resumed, _ = _replay(config, store, shared_data, folder, until, through="file")
        for name in ("decisions", "balances", "drift"):
            pd.testing.assert_frame_equal(clean[name], resumed[name], check_exact=True)
    status = session_status(tmp_path / "a", "s")
    assert status.drift.startswith(clean["drift"]["alarms"].iloc[-1] or "ok")


def test_a_session_with_drift_cannot_continue_a_runs_schedule(store, shared_data, tmp_path):
    config = _drift_config("2025-05-01", "2025-06-15")
    with pytest.raises(ConfigError, match="drift"):
        _replay(
            config,
            store,
            shared_data,
            tmp_path / "j",
            _ms("2025-06-02"),
            through="file",
            anchor_ms=_ms("2025-05-01"),
        )
