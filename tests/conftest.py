"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the slow tests first, so that pytest-xdist's workers end together.

    The README's command hands pytest-xdist one test at a time (``--dist
    loadgroup``, in this order); tests that share a costly module fixture are
    marked ``xdist_group`` and run on one worker.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session", autouse=True)
def one_thread_numerics():
    """Fit with one BLAS and OpenMP thread, as the ``engine`` command does."""
    from engine.threads import one_thread

    with one_thread():
        yield


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread_per_worker():
    """Give torch one thread in each pytest-xdist worker, so workers do not oversubscribe cores."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Return the folder of real candles beside the repository (read-only)."""
    root = Path(os.environ.get("ENGINE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    if not (root / "bybit_linear_BTCUSDT_1h.parquet").is_file():
        pytest.fail(f"the shared candle folder {root} is missing; tests need ../shared/data")
    return root


@pytest.fixture
def run_python():
    """Return a function that runs Python code in a fresh interpreter and returns its last line.

    The code runs at the repository root with only the repository on its
    path, as a user's first command would, with ``args`` as its ``sys.argv[1:]``.
    """

    def run(code: str, *args: object) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code, *map(str, args)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(REPO_ROOT)},
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()[-1]

    return run


@dataclass(frozen=True)
class CliResult:
    """What one in-process ``engine`` invocation did."""

    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Return a function that runs ``engine ARGS...`` in-process, as the console script does."""
    from engine.cli import main

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["engine", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run
