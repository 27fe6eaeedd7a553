"""Speed of the evaluation statistics at the sizes ``engine evaluate`` meets.

- Bootstrap: means of k = 10 series (representations scored on the same test
  bars) over 2,000 moving-block replicates of 15,000 test bars, blocks of 10;
  the drawing of the replicate rows is timed on its own.
- Anomaly rule: the trailing max |z| of 25,000 bars x 320 dimensions against
  the previous 4,320 bars (six months of hourly bars).

BLAS runs on one thread, as under the ``engine`` command. Each is timed five
times after a warm-up; the script prints the median and the
fastest wall time, and the process CPU time of the median run. Run from the
repository root::

    python benchmarks/research_speed.py
"""

from __future__ import annotations

import time

import numpy as np
from threadpoolctl import threadpool_limits

from engine.research.anomaly import trailing_max_abs_z
from engine.research.stats import block_bootstrap_indices, resampled_means

REPEATS = 5


def timed(call) -> str:
    """Return the median and fastest wall time of ``call`` and the median run's CPU time."""
    call()
    runs = []
    for _ in range(REPEATS):
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    runs.sort()
    wall, cpu = runs[REPEATS // 2]
    return f"median {wall:.3f} s (cpu {cpu:.3f} s) fastest {runs[0][0]:.3f} s"


def main() -> None:
    """Print the timings."""
    rng = np.random.default_rng(0)
    values = (rng.random((10, 15_000)) < 0.5).astype(np.float64)
    indices = block_bootstrap_indices(15_000, 10, 2_000, seed=0)
    z = rng.normal(size=(25_000, 320))
    print("block_bootstrap_indices n=15000 block=10 reps=2000:", end=" ")
    print(timed(lambda: block_bootstrap_indices(15_000, 10, 2_000, seed=0)))
    print(
        "resampled_means k=10 n=15000 reps=2000:", timed(lambda: resampled_means(values, indices))
    )
    print("trailing_max_abs_z T=25000 D=320 history=4320:", end=" ")
    print(timed(lambda: trailing_max_abs_z(z, 4_320, 720)))


if __name__ == "__main__":
    with threadpool_limits(limits=1, user_api="blas"):
        main()
