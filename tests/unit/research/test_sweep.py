"""The sweep's search space, plans, journal and folder, without running backtests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from engine.config import SweepConfig, load_config
from engine.errors import ConfigError, EngineError
from engine.executor import make_executor
from engine.research.sweep import (
    Journal,
    OptunaPlan,
    Sweep,
    Trial,
    TrialResult,
    apply,
    fingerprint,
    grid,
    objective_value,
    sweep_folder,
)

REPO_ROOT = Path(__file__).resolve().parents[3]

BASE = {
    "name": "s",
    "validation": {"start": "2025-01-01", "end": "2025-06-30"},
    "test": {"start": "2025-07-01"},
    "parameters": {"components.signal.params.entry": [0.1, 0.2]},
}


def _space(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "sweeps" / "s.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump({**BASE, **changes}, sort_keys=False))
    return path


def test_a_grid_varies_the_last_parameter_fastest_and_steps_ranges(tmp_path):
    space = load_config(
        _space(
            tmp_path,
            parameters={
                "walk_forward.refit_every": {"low": 360, "high": 1080, "step": 360},
                "costs.taker_fee": {"low": 0.0001, "high": 0.0003, "step": 0.0001},
            },
        ),
        SweepConfig,
    )
    trials = grid(space)
    assert [t.number for t in trials] == list(range(9))
    assert [t.params["walk_forward.refit_every"] for t in trials[::3]] == [360, 720, 1080]
    assert [t.params["costs.taker_fee"] for t in trials[:3]] == [0.0001, 0.0002, 0.0003]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"test": {"start": "2025-06-30"}}, "test.start after validation.end"),
        ({"validation": {"start": "2025-01-01"}}, "validation.end"),
        ({"cscv_blocks": 5}, "even"),
        ({"search": "optuna"}, "trial budget"),
        ({"trials": 4}, "trials only with search: optuna"),
        ({"parameters": {"costs.taker_fee": {"low": 0.0, "high": 0.001}}}, "a step"),
        ({"parameters": {"not a path": [1]}}, "parameters"),
        ({"parameters": {}}, "parameters"),
    ],
)
def test_a_bad_space_is_refused_with_the_key_and_what_was_expected(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_space(tmp_path, **changes), SweepConfig)


def test_apply_sets_values_by_dotted_path_and_refuses_unknown_keys(tmp_path):
    raw = yaml.safe_load((REPO_ROOT / "strategies" / "ssl_cost.yaml").read_text())
    changed = apply(
        raw,
        {"components.signal.params.entry": 0.4, "walk_forward.refit_every": 360},
        tmp_path / "s.yaml",
    )
    assert changed["components"]["signal"]["params"]["entry"] == 0.4
    assert changed["walk_forward"]["refit_every"] == 360
    assert raw["components"]["signal"]["params"]["entry"] == 0.2
    added = apply(raw, {"components.signal.params.seed": 3}, tmp_path / "s.yaml")
    assert added["components"]["signal"]["params"]["seed"] == 3
    with pytest.raises(ConfigError, match=r"no key 'refit' at walk_forward"):
        apply(raw, {"walk_forward.refit": 1}, tmp_path / "s.yaml")
    with pytest.raises(ConfigError, match=r"no key 'nope' at the top level"):
        apply(raw, {"nope.x": 1}, tmp_path / "s.yaml")


def _optuna_params(space: SweepConfig, values: list[float]) -> list[dict]:
    plan, asked = OptunaPlan(space), []
    while batch := plan.next_batch():
        asked += batch
        for trial in batch:
            plan.tell(trial, values[trial.number])
    return [t.params for t in asked]


def test_an_optuna_search_asks_the_same_trials_in_batches_of_its_size(tmp_path):
    space = load_config(
        _space(
            tmp_path,
            search="optuna",
            trials=14,
            batch=4,
            parameters={
                "components.signal.params.entry": {"low": 0.1, "high": 0.5},
                "walk_forward.refit_every": {"low": 240, "high": 960, "step": 240},
            },
        ),
        SweepConfig,
    )
    values = [float(i % 5) for i in range(14)]
    first = _optuna_params(space, values)
    assert len(first) == 14
    assert first == _optuna_params(space, values)
    assert all(p["walk_forward.refit_every"] in (240, 480, 720, 960) for p in first)
    assert all(0.1 <= p["components.signal.params.entry"] <= 0.5 for p in first)


def test_the_journal_keeps_finished_trials_across_connections(tmp_path):
    journal = Journal(tmp_path / "trials.sqlite")
    journal.record(Trial(3, {"a": 1}), TrialResult('{"sharpe": 1.5}', "{}", None, 0.5))
    journal.record(Trial(1, {"a": 2}), TrialResult(None, None, "bad value", 0.1))
    journal.close()
    finished = Journal(tmp_path / "trials.sqlite").finished()
    assert list(finished) == [1, 3]
    assert finished[3][0] == {"a": 1} and finished[3][1].metrics == '{"sharpe": 1.5}'
    assert finished[1][1].error == "bad value"
    assert objective_value(finished[3][1].metrics, "sharpe") == 1.5
    assert objective_value(finished[1][1].metrics, "sharpe") is None
    assert objective_value('{"sharpe": null}', "sharpe") is None


def test_an_unfinished_sweep_of_the_same_inputs_is_resumed(tmp_path):
    space = load_config(_space(tmp_path), SweepConfig)
    digest = fingerprint({"name": "x"}, space)
    folder, resumed = sweep_folder(tmp_path, "s", digest, fresh=False)
    assert not resumed
    journal = Journal(folder / "trials.sqlite")
    journal.set_meta("fingerprint", digest)
    journal.close()
    assert sweep_folder(tmp_path, "s", digest, fresh=False) == (folder, True)
    other = fingerprint({"name": "y"}, space)
    assert sweep_folder(tmp_path, "s", other, fresh=False)[0] != folder
    (folder / "summary.json").write_text("{}")
    assert sweep_folder(tmp_path, "s", digest, fresh=False)[1] is False


def test_asking_for_ray_without_it_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(EngineError, match=r"pip install -e '\.\[ray\]'"):
        make_executor(2, None)
    assert make_executor(1, None).workers == 1


def test_engine_sweep_without_ray_exits_2_with_the_install_command(tmp_path, monkeypatch, run_cli):
    monkeypatch.setitem(sys.modules, "ray", None)
    space = _space(tmp_path)
    result = run_cli(
        "sweep", REPO_ROOT / "strategies" / "ssl_cost.yaml", "--space", space, "--workers", "2",
        "--models-dir", REPO_ROOT / "models", "--reports-dir", tmp_path / "reports",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "pip install -e '.[ray]'" in result.stderr and "Traceback" not in result.stderr


def test_a_bad_space_file_is_refused_before_ray_starts(tmp_path, monkeypatch, run_cli):
    started = []
    monkeypatch.setattr("engine.executor.make_executor", lambda *args: started.append(args))
    space = _space(tmp_path, search="annealing")
    result = run_cli(
        "sweep", REPO_ROOT / "strategies" / "ssl_cost.yaml", "--space", space,
        "--models-dir", REPO_ROOT / "models", "--reports-dir", tmp_path / "reports",
    )  # fmt: skip
    assert result.exit_code == 2 and "search" in result.stderr, result.stderr
    assert started == []


def test_the_model_versions_a_sweep_loads_are_journaled_and_kept_on_resume(tmp_path, monkeypatch):
    from engine.runner.backtest import Inputs

    sources = [{"model": "cost_bybit_1h@6cf526b32216"}, {"representation": "features"}]
    monkeypatch.setattr(
        "engine.research.sweep.load_inputs",
        lambda *_: Inputs([], [], [(None, source) for source in sources]),
    )
    args = (REPO_ROOT / "strategies" / "ssl_cost.yaml", _space(tmp_path), REPO_ROOT / "models")
    sweep = Sweep(*args, tmp_path / "reports")
    assert sweep.models() == []
    sweep.inputs(sweep.trial_config(Trial(0, {"components.signal.params.entry": 0.1}))[1])
    sweep.close()
    resumed = Sweep(*args, tmp_path / "reports")
    assert resumed.resumed and resumed.folder == sweep.folder
    assert resumed.models() == ["cost_bybit_1h@6cf526b32216"]
    resumed.close()
