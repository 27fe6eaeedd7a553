"""Compiling the event loop in another process while a backtest prepares its inputs.

On a fresh numba cache the loop's first call compiles it, about 15 s (see
``engine.sim.compiled``). ``compile_ahead`` starts a process that compiles it
into numba's cache while the backtest loads candles, computes representations
and fits components; ``Warmup.wait`` waits for that process just before the
loop's first call, which then loads the compiled code. Nothing is started
when the cache already holds it, and a process that fails changes nothing:
the call compiles the loop itself, as it would without it.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from dataclasses import dataclass

from engine.sim.compiled import is_compiled

#: Seconds to wait for the compiling process before compiling in this one instead.
WAIT_S = 300.0


@dataclass
class Warmup:
    """The process compiling the loop, if one was started; a context that stops it on exit."""

    process: subprocess.Popen | None

    def __enter__(self) -> Warmup:
        return self

    def __exit__(self, *exc) -> None:
        # Leaving before ``wait`` (an error) stops the process: nothing will use its work soon.
        self._stop()

    def _stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def wait(self) -> None:
        """Wait until the loop's compiled code is in the cache, or the process has ended.

        A process still running after ``WAIT_S`` is stopped; the caller's
        first call then compiles the loop itself.
        """
        if self.process is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=WAIT_S)
        self._stop()


_started = Warmup(None)


def compile_ahead() -> Warmup:
    """Start compiling the loop in another process unless numba's cache holds it.

    While a process started by this one still runs, its ``Warmup`` is
    returned again: ``engine run`` starts it before importing the runner, and
    ``run_backtest`` waits for the same process.
    """
    global _started
    if _started.process is not None and _started.process.poll() is None:
        return _started
    if is_compiled():
        return Warmup(None)
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.sim.compiled"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _started = Warmup(process)
    return _started
