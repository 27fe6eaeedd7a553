"""What every robustness case asserts, and the folders the cases damage copies of.

A bad input passes when the ``engine`` command refuses it with exit code 2
and one error message, prints no traceback, ends within a time bound, and
leaves every stored file it was given byte-identical.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Seconds a refusal may take, in-process (imports are already done).
BOUND_S = 5.0


def _snapshot(paths: Iterable[Path]) -> dict[str, str]:
    # The SHA-256 of every file under `paths`, by path; folders are walked.
    hashes = {}
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            hashes[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


@pytest.fixture(scope="session", autouse=True)
def _imported():
    # Import the heavy modules once, so that each case's time bound measures
    # the command and not torch's or pandas' import.
    import engine.paper.session  # noqa: F401
    import engine.runner.backtest  # noqa: F401


@pytest.fixture
def refused(run_cli):
    """Return a function that runs ``engine ARGS...`` and asserts a clean refusal.

    ``stored`` lists files and folders that must be unchanged afterwards (the
    shipped models always are); ``says`` is text the message must hold.
    """

    def check(*args, stored: Iterable[Path] = (), says: str = "", bound: float = BOUND_S):
        watched = [*stored, REPO_ROOT / "models"]
        before = _snapshot(watched)
        clock = time.perf_counter()
        result = run_cli(*args)
        elapsed = time.perf_counter() - clock
        output = result.stdout + result.stderr
        assert result.exit_code == 2, output
        assert "Traceback" not in output, output
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and result.stderr.startswith("error: "), output
        assert says in result.stderr, output
        assert elapsed < bound, f"took {elapsed:.1f} s"
        assert _snapshot(watched) == before, "a stored file changed"
        return result

    return check


@pytest.fixture
def models(tmp_path) -> Path:
    """Return a copy of the shipped models folder, to damage."""
    folder = tmp_path / "models"
    shutil.copytree(REPO_ROOT / "models", folder)
    return folder


@pytest.fixture
def strategies(tmp_path) -> Path:
    """Return a copy of the shipped strategies folder, to damage."""
    folder = tmp_path / "strategies"
    shutil.copytree(REPO_ROOT / "strategies", folder)
    return folder


@pytest.fixture
def snapshot():
    """Return a function giving the SHA-256 of every file under some paths, by path."""
    return _snapshot
