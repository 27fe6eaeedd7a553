"""The command line: where candles come from, its help, and its errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from engine.data import feed

REPO_ROOT = Path(__file__).resolve().parents[2]
SMA = REPO_ROOT / "strategies" / "sma_cross.yaml"
# Commands that read candles, with the arguments they need besides options.
CANDLE_COMMANDS = {
    ("run",): [SMA],
    ("compare",): [SMA, SMA],
    ("audit",): [SMA],
    ("evaluate",): [REPO_ROOT / "configs" / "evaluate" / "seed_tables.yaml"],
    ("pretrain",): [REPO_ROOT / "configs" / "pretrain" / "ts2vec_bybit_1h.yaml"],
    ("paper", "run"): [SMA],
    ("data", "sync"): [REPO_ROOT / "configs" / "data" / "bybit_majors.yaml"],
    ("data", "fetch"): [],
}


def _commands(app, prefix=()):
    # Every command path of the typer app, e.g. ("data", "fetch").
    for info in app.registered_commands:
        yield (*prefix, info.name or info.callback.__name__)
    for group in app.registered_groups:
        yield from _commands(group.typer_instance, (*prefix, group.name))


@pytest.fixture
def no_store(tmp_path, monkeypatch):
    # A working folder without ./data and without ENGINE_DATA_DIR.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ENGINE_DATA_DIR", raising=False)
    monkeypatch.delenv("ENGINE_OFFLINE", raising=False)
    return tmp_path


def test_without_store_or_network_a_run_fails_at_once_and_says_how_to_point_at_a_store(
    no_store, run_cli, monkeypatch
):
    # Port 9 on the loopback refuses connections: no network, as fast as it gets.
    monkeypatch.setattr(
        feed, "make_exchange", partial(feed.make_exchange, api_urls="http://127.0.0.1:9")
    )
    slept = []
    monkeypatch.setattr(feed.time, "sleep", slept.append)
    started = time.monotonic()
    result = run_cli("run", SMA, "--models-dir", REPO_ROOT / "models")
    assert result.exit_code == 2, result.stdout + result.stderr
    assert time.monotonic() - started < 30
    assert slept == [], "the exchange was retried before the missing store was reported"
    message = " ".join(result.stderr.split())
    assert "there is no candle store at data" in message
    assert "cannot be reached" in message and "--store DIR or ENGINE_DATA_DIR" in message
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["run", "compare", "audit"])
def test_store_option_is_where_candles_are_read(no_store, run_cli, monkeypatch, command):
    monkeypatch.setenv("ENGINE_OFFLINE", "1")
    empty = no_store / "elsewhere"
    empty.mkdir()
    args = [str(a) for a in CANDLE_COMMANDS[(command,)]]
    result = run_cli(command, *args, "--store", empty, "--models-dir", REPO_ROOT / "models")
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert f"the store {empty} has no bybit_linear_BTCUSDT_1h.parquet" in message
    assert "ENGINE_OFFLINE=1 forbids fetching it" in message


@pytest.mark.parametrize("command", list(CANDLE_COMMANDS), ids=" ".join)
def test_every_command_that_reads_candles_takes_store_and_names_the_variables(run_cli, command):
    result = run_cli(*command, "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.replace("│", " ").split())
    assert "--store" in text and "ENGINE_DATA_DIR" in text and "ENGINE_OFFLINE" in text


def test_the_list_of_candle_commands_covers_the_app():
    from engine.cli import app

    commands = set(_commands(app))
    assert set(CANDLE_COMMANDS) <= commands
    assert {("run",), ("paper", "report"), ("validate",)} <= commands


def test_help_shows_arguments_values_and_flags_as_a_well_kept_cli_does(run_cli):
    from engine.cli import app

    for command in _commands(app):
        text = run_cli(*command, "--help").stdout
        assert not re.search(r"<(bool|str|int|float|path)>|<list\[", text), (command, text)
        assert not re.search(r"\{[a-z_]+\}", text), (command, text)
    paper = " ".join(run_cli("paper", "run", "--help").stdout.replace("│", " ").split())
    assert "paper run [OPTIONS] STRATEGY" in paper
    assert "--force Resume even if" in paper
    assert "--until TIME Stop before the bar opening at this time (YYYY-MM-DD or" in paper
    assert "STRATEGIES..." in run_cli("compare", "--help").stdout


def test_validate_outside_the_usual_folders_names_the_kind_option(tmp_path, run_cli):
    path = tmp_path / "mine.yaml"
    path.write_text(SMA.read_text())
    result = run_cli("validate", path)
    assert result.exit_code == 2
    assert "--kind" in result.stderr
    assert (
        run_cli(
            "validate", path, "--kind", "strategy", "--models-dir", REPO_ROOT / "models"
        ).exit_code
        == 0
    )


def _python_m(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    # `python -m MODULE ARGS` on this checkout, from a folder that is not the checkout.
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "100"}
    command = [sys.executable, "-m", module, *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("module", ["engine", "engine.cli"])
def test_python_m_runs_the_command_line(module, tmp_path):
    shown = _python_m(module, "--help", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"Usage: python -m {module} [OPTIONS] COMMAND" in shown.stdout
    assert re.search(r"│ run\s+Backtest a strategy", shown.stdout)
    refused = _python_m(module, "validate", "missing.yaml", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error:") and "Traceback" not in refused.stderr
