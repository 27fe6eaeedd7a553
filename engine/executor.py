"""Where independent pieces of work run: in this process, or as tasks on Ray.

A sweep's trials and a backtest's walk-forward refit blocks are independent
calls of one function. ``SerialExecutor`` makes them one after another in
this process; ``RayExecutor`` makes them as Ray tasks (one CPU each) on a
local Ray instance or on a cluster, with values every call reads put once
into Ray's object store (``share``). A task whose worker process dies is
retried by Ray; an exception raised by the function is not.

A Ray worker is a fresh Python process: before its first call it imports the
modules the function lives in, seconds of work for the engine's (scikit-learn,
torch, QuantStats). ``RayExecutor`` can have every worker import them as soon
as Ray is up (``preload``), while the caller imports its own and loads the
shared inputs, rather than after the first calls are sent.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from engine.errors import EngineError

#: How to install the optional dependencies of parallel runs.
RAY_INSTALL = "pip install -e '.[ray]'"


class SerialExecutor:
    """Runs calls one after another in this process."""

    workers = 1

    def share(self, value):
        """Return a handle to a value every call reads (here the value itself)."""
        return value

    def map(self, fn: Callable, calls: list[tuple]) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(*args))`` for each call, in order."""
        for index, args in enumerate(calls):
            yield index, fn(*args)

    def close(self) -> None:
        """Release nothing."""


def _import(modules: Sequence[str]) -> None:
    # A Ray task: import the modules into the worker process that runs it.
    for name in modules:
        importlib.import_module(name)


class RayExecutor:
    """Runs calls as Ray tasks, one CPU each, at most ``workers`` at a time.

    Without ``address`` a local Ray instance with ``workers`` CPUs is
    started (all cores when None); with one, the executor joins that cluster.
    Each of the ``workers`` starts importing the modules ``preload`` names
    at once; ``map`` sends its calls once those imports are done, and fails
    if one cannot be imported.
    """

    def __init__(
        self, workers: int | None, address: str | None, preload: Sequence[str] = ()
    ) -> None:
        try:
            import ray
        except ImportError:
            raise EngineError(
                f"--workers {workers or 'default'} runs on Ray, which is not installed; "
                f"install it with {RAY_INSTALL}, or run serially with --workers 1"
            ) from None
        self.ray = ray
        try:
            if address:
                ray.init(address=address, logging_level="WARNING", log_to_driver=False)
            else:
                ray.init(
                    num_cpus=workers,
                    include_dashboard=False,
                    logging_level="WARNING",
                    log_to_driver=False,
                )
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise EngineError(f"cannot start or join Ray at {address or 'local'}: {exc}") from None
        self.workers = workers or int(ray.cluster_resources().get("CPU", 1))
        self._tasks: dict[Callable, Any] = {}
        # One task per CPU runs at once, each in its own worker process; Ray reuses the
        # idle workers, imports done, for the calls.
        task = self._task(_import)
        self._preloading = [
            task.remote(list(preload)) for _ in range(self.workers if preload else 0)
        ]

    def share(self, value):
        """Put a value every call reads into Ray's object store once."""
        return self.ray.put(value)

    def map(self, fn: Callable, calls: list[tuple]) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, result)`` as each task finishes, keeping ``workers`` in flight."""
        # A module that cannot be imported fails here, not as a lost background task.
        self.ray.get(self._preloading)
        self._preloading = []
        task = self._task(fn)
        waiting = list(enumerate(calls))
        running: dict[Any, int] = {}
        while waiting or running:
            while waiting and len(running) < self.workers:
                index, args = waiting.pop(0)
                running[task.remote(*args)] = index
            done, _ = self.ray.wait(list(running), num_returns=1)
            for ref in done:
                yield running.pop(ref), self.ray.get(ref)

    def _task(self, fn: Callable):
        if fn not in self._tasks:
            # Ray retries a task whose worker process died, up to three times.
            self._tasks[fn] = self.ray.remote(num_cpus=1, max_retries=3)(fn)
        return self._tasks[fn]

    def close(self) -> None:
        """Disconnect from Ray (stopping the local instance this executor started)."""
        self.ray.shutdown()


Executor = SerialExecutor | RayExecutor


def make_executor(
    workers: int | None, address: str | None, preload: Sequence[str] = ()
) -> Executor:
    """Return the serial executor for ``workers == 1``, else a Ray executor.

    A Ray executor's workers start importing the modules ``preload`` names.
    """
    return SerialExecutor() if workers == 1 else RayExecutor(workers, address, preload)
