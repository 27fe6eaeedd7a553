"""Wall time of a 16-trial sweep of ``ssl_cost`` variants: serial against two Ray workers.

The same sweep runs twice, each in a fresh ``engine sweep`` process with a
fresh sweep folder: once with ``--workers 1`` (serial, in one process, no Ray)
and once with ``--workers 2`` (a local Ray instance with two CPUs, started and
stopped by the command; its start-up counts). A first serial run of the
``signal`` workload warms the numba and representation caches and is not
timed.

Two workloads, each a 4x2x2 grid validated on 2025 as
``sweeps/ssl_cost_small.yaml`` is:

- ``signal`` (the default): the signal's entry and exit and the risk
  threshold, values the walk-forward fits do not depend on, so every trial
  is a short backtest (about a second) of the same fits;
- ``refit`` (``--workload refit``): the refit interval, the training window
  and the linear probe's regularisation, so every trial refits its
  components on its own schedule and window, several seconds each.

The load average is printed beside each figure: the machine may be shared, and
a speedup measured beside other work is not the speedup on two idle cores.
Beside each wall time is the sum of the trials' own times (``trial_seconds``
of ``summary.json``); the rest is the fixed cost of a sweep: imports, loading
the inputs, the test run, the report, and with Ray its start-up and each
worker's imports (printed as the wall time less half the trials' time,
which two workers share).

Run from the repository root (``ENGINE_SHARED_DATA`` overrides ../shared/data)::

    python benchmarks/sweep_speed.py [--workload refit]

The last line is ``sweep_speedup_2_workers: X``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMMON = {
    "validation": {"start": "2025-01-01", "end": "2025-12-31"},
    "test": {"start": "2026-01-01", "end": "2026-03-31"},
    "cscv_blocks": 16,
}
WORKLOADS = {
    "signal": {
        "components.signal.params.entry": [0.1, 0.2, 0.3, 0.4],
        "components.signal.params.exit": [0.0, 0.05],
        "components.risk.params.threshold": [6.0, 8.0],
    },
    "refit": {
        "components.signal.params.regularisation": [0.003, 0.01, 0.03, 0.1],
        "walk_forward.refit_every": [120, 240],
        "walk_forward.fit_bars": [4320, 8640],
    },
}


def load_average() -> str:
    """Return the 1, 5 and 15 minute load averages as text."""
    return "load average {:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())


def sweep(space: Path, workers: int, reports: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run the sweep in a fresh process; return its wall time and its trials' seconds."""
    command = [sys.executable, "-c", "from engine.cli import main; main()", "sweep"]
    command += [str(ROOT / "strategies" / "ssl_cost.yaml"), "--space", str(space)]
    command += ["--workers", str(workers), "--fresh", "--reports-dir", str(reports)]
    command += ["--models-dir", str(ROOT / "models")]
    started = time.perf_counter()
    out = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"engine sweep --workers {workers} failed:\n{out.stderr}")
    folder = Path(out.stdout.strip().splitlines()[-1].removeprefix("wrote "))
    return wall, json.loads((folder / "summary.json").read_text())["trial_seconds"]


def write_space(folder: Path, workload: str) -> Path:
    """Write a workload's search space file into ``folder``; return its path."""
    path = folder / f"{workload}.yaml"
    space = {"name": workload, **COMMON, "parameters": WORKLOADS[workload]}
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def main() -> None:
    """Print the serial and two-worker wall times, the speedup and the load averages."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="signal")
    workload = parser.parse_args().workload
    data = os.environ.get("ENGINE_SHARED_DATA", str(ROOT.parent / "shared" / "data"))
    env = {**os.environ, "ENGINE_DATA_DIR": data, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        reports = Path(tmp) / "reports"
        warm, _ = sweep(write_space(Path(tmp), "signal"), 1, reports, env)
        print(f"warm-up serial (signal): {warm:.1f} s ({load_average()})")
        space = write_space(Path(tmp), workload)
        serial, serial_trials = sweep(space, 1, reports, env)
        print(
            f"{workload}: serial (--workers 1): {serial:.1f} s, trials {serial_trials:.1f} s "
            f"({load_average()})"
        )
        parallel, parallel_trials = sweep(space, 2, reports, env)
        print(
            f"{workload}: Ray (--workers 2): {parallel:.1f} s, trials {parallel_trials:.1f} s "
            f"({load_average()})"
        )
        print(
            f"{workload}: fixed costs: serial {serial - serial_trials:.1f} s, Ray about "
            f"{parallel - parallel_trials / 2:.1f} s (wall less half the trials' time)"
        )
    print(f"sweep_speedup_2_workers: {serial / parallel:.2f} ({workload}, {load_average()})")


if __name__ == "__main__":
    main()
