"""Wall time of the main job, ``engine run strategies/ssl_cost.yaml``, at rest and under load.

Three runs of the command, each in a fresh process, as a user types it:

1. first run: a fresh numba cache (``NUMBA_CACHE_DIR``) and a fresh embedding
   cache (``ENGINE_CACHE_DIR``), both in temporary folders, so the kernels are
   compiled and the encoder encodes every bar;
2. warm: the same caches, now filled; the machine as it is ("idle");
3. loaded: the same warm run while two CPU-bound processes, started and
   stopped by this script, each in its own session, compete for the cores.

Each run's CPU time is printed beside its wall time: it stays the same under
load when no thread spins or waits on another.

The load average is printed beside every figure, since the machine may be
shared and "idle" may not be idle. ``--repeats`` runs the warm and loaded
runs that many times each, in turns, and reports the medians.

Run from the repository root (``ENGINE_SHARED_DATA`` overrides ../shared/data)::

    python benchmarks/main_job.py

The last lines are ``idle_s``, ``loaded_s``, ``load_ratio`` (loaded over
idle) and ``first_run_s``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPIN = "while True: pass"


def load_average() -> str:
    """Return the 1, 5 and 15 minute load averages as text."""
    return "load average {:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())


def cpu_seconds() -> float:
    """Return the user and system CPU time of the waited-for child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_main_job(env: dict[str, str], reports: Path) -> float:
    """Run the main job once in a fresh process; print its CPU time, return its wall time.

    CPU time that grows with the load would mean threads spinning or waiting
    on each other; a job that only gets less of the CPU keeps its CPU time.
    """
    command = [sys.executable, "-c", "from engine.cli import main; main()"]
    command += ["run", "strategies/ssl_cost.yaml", "--reports-dir", str(reports)]
    cpu = cpu_seconds()
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"engine run failed ({done.returncode}): {done.stderr.strip()}")
    print(f"  {seconds:.1f} s wall, {cpu_seconds() - cpu:.1f} s CPU, then {load_average()}")
    return seconds


def loaded_run(env: dict[str, str], reports: Path) -> float:
    """Run the main job while two CPU-bound processes run beside it.

    Each runs in a session of its own, as another program would. Linux's
    autogroup scheduling first shares the CPU between sessions and only then
    between the processes of one session: started in this script's session,
    the two would leave the job a third of its session's share, whatever the
    job does.
    """
    spinners = [
        subprocess.Popen([sys.executable, "-c", SPIN], start_new_session=True) for _ in range(2)
    ]
    try:
        time.sleep(1.0)  # let them take their cores first
        return run_main_job(env, reports)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def main() -> None:
    """Print the first, warm and loaded wall times; the last lines are the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="warm and loaded runs each")
    args = parser.parse_args()
    autogroup = Path("/proc/sys/kernel/sched_autogroup_enabled")
    if autogroup.is_file():
        print(f"autogroup scheduling: {'on' if autogroup.read_text().strip() == '1' else 'off'}")
    data = os.environ.get("ENGINE_SHARED_DATA", str(ROOT.parent / "shared" / "data"))
    with tempfile.TemporaryDirectory() as folder:
        env = os.environ | {
            "ENGINE_DATA_DIR": data,
            "ENGINE_OFFLINE": "1",
            "ENGINE_CACHE_DIR": f"{folder}/embeddings",
            "NUMBA_CACHE_DIR": f"{folder}/numba",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        reports = Path(folder) / "reports"
        print(f"first run (fresh numba and embedding caches), {load_average()}")
        first = run_main_job(env, reports)
        idle, loaded = [], []
        for _ in range(args.repeats):
            print(f"warm run, {load_average()}")
            idle.append(run_main_job(env, reports))
            print(f"warm run beside two CPU-bound processes, {load_average()}")
            loaded.append(loaded_run(env, reports))
    idle_s, loaded_s = float(np.median(idle)), float(np.median(loaded))
    print(f"idle_s: {idle_s:.1f}")
    print(f"loaded_s: {loaded_s:.1f}")
    print(f"load_ratio: {loaded_s / idle_s:.2f}")
    print(f"first_run_s: {first:.1f}")


if __name__ == "__main__":
    main()
