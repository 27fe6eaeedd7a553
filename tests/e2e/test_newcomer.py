"""A newcomer's first hour, scripted: what the README says to run, run as it says.

From a fresh folder beside a read-only copy of the shared candles
(``../shared/data``), as a clone would sit, the walk-through runs the README's
main job (the ``engine`` command of its ``ci:install`` block), the paper demo
exactly as the ``demo:paper`` block writes it (it must end by itself), then
``paper status`` and ``paper report``, each in its own process with its output
read line by line as it comes; and every command's ``--help``. It checks that
no command stays silent for more than ten seconds, that the console's metrics
tables agree with ``metrics.json``, and that each rendered tearsheet shows the
same total return, buy-and-hold return and maximum drawdown: QuantStats'
cumulative returns and the page's max drawdown row.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from browser import open_page

REPO_ROOT = Path(__file__).resolve().parents[2]
# the walkthrough runs once, on one worker
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("newcomer")]

#: Longest wait without a printed line that a newcomer should meet.
SILENCE_S = 10.0
#: A command that has not ended after this long is taken to hang.
HANG_S = 900.0
SHARED_FILES = ("bybit_linear_BTCUSDT_1h.parquet", "bybit_linear_BTCUSDT_funding_8h.parquet")
#: Console rows and their metrics.json keys; the figures are percentages.
PERCENT_ROWS = {
    "total return": "total_return",
    "buy and hold": "benchmark_return",
    "max drawdown": "max_drawdown",
}


@dataclass(frozen=True)
class Ran:
    """One command as the newcomer saw it."""

    command: str
    code: int
    lines: list[str]
    seconds: float
    longest_silence: float
    silent_after: str  # the line the longest silence followed ("" for the start)


def _block_after(marker: str) -> str:
    # The shell block that follows `<!-- marker -->` in the README, without its fences.
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- {re.escape(marker)} -->\s*```(?:bash|sh)\n(.*?)```", text, re.S)
    assert found, f"the README has no shell block after <!-- {marker} -->"
    return found.group(1).strip()


def _main_job() -> str:
    # The engine command of the install block (the block also makes a venv and installs).
    steps = [step.strip() for step in _block_after("ci:install").split("&&")]
    engine = [step for step in steps if re.search(r"(^|\s)engine\s", step)]
    assert len(engine) == 1, steps
    return engine[0]


def _run(command: str, cwd: Path, env: dict[str, str]) -> Ran:
    # Run `command` in bash as typed, timing every line of its output as it arrives.
    started = time.monotonic()
    process = subprocess.Popen(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[tuple[float, str]] = []

    def read() -> None:
        for line in process.stdout:
            seen.append((time.monotonic(), line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        code = process.wait(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        reader.join(timeout=10)
        tail = "\n".join(line for _, line in seen[-10:])
        pytest.fail(f"`{command}` did not end by itself within {HANG_S:.0f} s; it printed:\n{tail}")
    reader.join(timeout=30)
    ended = time.monotonic()
    stamps = [started, *(at for at, _ in seen), ended]
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    longest = max(range(len(gaps)), key=gaps.__getitem__)
    lines = [line for _, line in seen]
    after = lines[longest - 1] if longest else ""
    return Ran(command, code, lines, ended - started, gaps[longest], after)


@pytest.fixture(scope="module")
def walkthrough(shared_data, tmp_path_factory):
    """Run the newcomer's commands once; return the clone's folder and what each printed."""
    root = tmp_path_factory.mktemp("newcomer")
    data = root / "shared" / "data"
    data.mkdir(parents=True)
    for name in SHARED_FILES:
        shutil.copy(shared_data / name, data / name)
        (data / name).chmod(0o444)
    data.chmod(0o555)
    clone = root / "engine"
    clone.mkdir()
    for folder in ("strategies", "models"):
        (clone / folder).symlink_to(REPO_ROOT / folder, target_is_directory=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("ENGINE_DATA_DIR", "ENGINE_CACHE_DIR", "ENGINE_SHARED_DATA")
    }
    # The engine of this checkout, through the console script of this interpreter's
    # environment, as `pip install -e .` leaves it; no command may reach the network.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["ENGINE_OFFLINE"] = "1"
    try:
        ran = {
            "main job": _run(_main_job(), clone, env),
            "demo": _run(_block_after("demo:paper"), clone, env),
            "status": _run("engine paper status", clone, env),
            "report": _run("engine paper report demo", clone, env),
        }
    finally:
        data.chmod(0o755)
    return clone, ran


def _folder(clone: Path, pattern: str) -> Path:
    folders = sorted((clone / "reports").glob(pattern))
    assert len(folders) == 1, folders
    return folders[0]


def _console_rows(lines: list[str]) -> dict[str, str]:
    # The rows of a rich table as printed: first cell -> last cell.
    rows = {}
    for line in lines:
        cells = [cell.strip() for cell in re.split(r"[│┃]", line)[1:-1]]
        if len(cells) >= 2 and cells[0]:
            rows[cells[0]] = cells[-1]
    return rows


def _percent(text: str) -> float:
    # A shown percentage; NaN where the page shows none (QuantStats prints "-").
    number = text.replace(",", "").rstrip("%")
    return float("nan") if number in ("", "-") else float(number)


def _console_agrees(ran: Ran, metrics: dict) -> None:
    rows = _console_rows(ran.lines)
    for label, key in PERCENT_ROWS.items():
        assert label in rows, f"{ran.command}: no '{label}' row in\n" + "\n".join(ran.lines)
        # Printed to two decimals of a percent.
        assert abs(_percent(rows[label]) - 100 * metrics[key]) <= 0.005 + 1e-9, (label, rows)
    assert int(rows["trades (fills)"].replace(",", "")) == metrics["trades"]


def _tearsheet_agrees(path: Path, metrics: dict) -> None:
    # QuantStats' cumulative returns (strategy and buy and hold, compounded from daily
    # returns) and the page's max drawdown row (the run's own, per bar).
    with open_page(path) as (page, errors):
        text = page.inner_text("body")
    assert errors == []
    rows = [line.split("\t") for line in text.splitlines() if "\t" in line]
    header = next(row for row in rows if row[0] == "Metric")
    strategy = header.index("Strategy")
    benchmark = next(i for i in range(1, len(header)) if i != strategy)

    def row(label: str) -> list[str]:
        found = [cells for cells in rows if cells[0] == label]
        assert found, f"{path}: no '{label}' row"
        return found[0]

    cumulative = row("Cumulative Return")
    shown = {
        "total_return": _percent(cumulative[strategy]),
        "benchmark_return": _percent(cumulative[benchmark]),
        "max_drawdown": _percent(row("max drawdown")[1]),
    }
    for key, value in shown.items():
        expected = 100 * metrics[key]
        assert abs(value - expected) <= 0.01 + 1e-9, f"{path}: {key} {value} % against {expected} %"


def test_every_command_ends_without_a_silence_longer_than_ten_seconds(walkthrough):
    _, ran = walkthrough
    for name, result in ran.items():
        output = "\n".join(result.lines[-20:])
        assert result.code == 0, f"{name}: `{result.command}` exited {result.code}:\n{output}"
    seen = {
        name: f"{result.longest_silence:.1f} s silent of {result.seconds:.1f} s, after "
        f"{result.silent_after or 'the start'!r}"
        for name, result in ran.items()
    }
    silent = [name for name, result in ran.items() if result.longest_silence > SILENCE_S]
    assert not silent, seen


def test_the_demo_replays_to_the_end_of_its_file_and_sums_up(walkthrough):
    clone, ran = walkthrough
    demo = ran["demo"]
    assert demo.code == 0, "\n".join(demo.lines[-20:])
    bars = [line for line in demo.lines if " decision " in line]
    assert len(bars) > 100
    assert all("position" in line and "equity" in line and "latency" in line for line in bars)
    summary = next(line for line in demo.lines if line.startswith("demo: processed"))
    assert f"processed {len(bars)} bars" in summary
    assert any("trades (fills)" in line and "return" in line for line in demo.lines)
    # The replay's last bar is the shared file's last bar.
    assert bars[-1].startswith("2026-07-21 16:00")
    status = "\n".join(ran["status"].lines)
    assert "demo" in status and "2026-07-21 16:00" in status
    assert (clone / "reports" / "paper" / "demo.sqlite").is_file()


def test_the_main_jobs_console_and_tearsheet_agree_with_its_metrics(walkthrough):
    clone, ran = walkthrough
    folder = _folder(clone, "ssl_cost-*")
    metrics = json.loads((folder / "metrics.json").read_text())
    _console_agrees(ran["main job"], metrics)
    _tearsheet_agrees(folder / "tearsheet.html", metrics)


def test_the_paper_reports_console_and_tearsheet_agree_with_its_metrics(walkthrough):
    clone, ran = walkthrough
    folder = _folder(clone, "paper-demo-*")
    metrics = json.loads((folder / "metrics.json").read_text())
    timings = json.loads((folder / "timings.json").read_text())
    assert timings["latency_p50_ms"] > 0
    _console_agrees(ran["report"], metrics)
    _tearsheet_agrees(folder / "tearsheet.html", metrics)


def test_every_command_and_subcommand_has_help(run_cli):
    import typer

    from engine.cli import app

    def paths(group, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
        # Every command path under a click group (typer's own copy of click's).
        found = [prefix]
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                found += paths(command, (*prefix, name))
            else:
                found.append((*prefix, name))
        return found

    every = paths(typer.main.get_command(app), ())
    assert {("run",), ("paper", "run"), ("paper", "report"), ("data", "fetch")} <= set(every)
    for path in every:
        result = run_cli(*path, "--help")
        assert result.exit_code == 0, (path, result.stderr)
        # In-process, click names the program after the interpreter's arguments.
        usage = "engine" + "".join(f" {word}" for word in path)
        assert re.search(rf"Usage: .*{re.escape(usage)}\b", result.stdout), result.stdout
