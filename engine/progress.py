"""Progress of a long command, as the command line shows it.

In a terminal a rich progress bar shows the command, its stage, the share
done and the time left. Anywhere else (a log file, a pipe, CI) plain lines
are printed instead: one per stage, one every few seconds while counts
advance, and one whenever the command has been silent that long, so that a
reader never waits more than a few seconds without a line.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress

#: Longest silence, in seconds, of the plain-line output.
PLAIN_EVERY_S = 5.0


class Progress:
    """Show the progress of a command on ``console`` while the block runs.

    A command counts either its steps (``step``), each a named stage, or
    within a stage the units of its work (``stage`` with a total, then
    ``update``). The time left is estimated from the pace of the count.

    Parameters
    ----------
    console : rich.console.Console
        Where progress goes; a terminal gets a bar, anything else plain lines.
    title : str
        What runs, e.g. ``run ssl_cost``; it starts every line.
    steps : int, optional
        The steps of the command, when it counts them.
    every_s : float
        Longest silence of the plain-line output.
    """

    def __init__(
        self, console: Console, title: str, steps: int | None = None, every_s: float = PLAIN_EVERY_S
    ) -> None:
        self.console = console
        self.title = title
        self.every_s = every_s
        self._stage = "starting"
        self._detail = ""
        self._done = 0
        self._total = steps
        self._stepping = False
        self._counted_from = self._started = self._last_line = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._bar: RichProgress | None = None
        self._task = None

    def __enter__(self) -> Progress:
        if self.console.is_terminal:
            self._bar = RichProgress(
                TextColumn(f"[bold]{self.title}"),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self._stage, total=self._total, detail="")
        else:
            self._heartbeat = threading.Thread(target=self._beat, daemon=True)
            self._heartbeat.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        if self._bar is not None:
            self._bar.stop()

    def expect(self, steps: int) -> None:
        """Set the number of steps of the command, once it is known."""
        with self._lock:
            self._total = steps

    def step(self, name: str) -> None:
        """Count the step under way as done (if any) and start step ``name``."""
        with self._lock:
            self._done += self._stepping
            self._stepping = True
            self._stage, self._detail = name, ""
            self._refresh(force=True)

    def stage(self, name: str, total: int | None = None) -> None:
        """Start stage ``name`` with a count of its own, out of ``total`` if known."""
        with self._lock:
            self._stage, self._detail = name, ""
            self._done, self._total, self._stepping = 0, total, False
            self._counted_from = time.monotonic()
            self._refresh(force=True)

    def update(self, done: int, total: int | None = None, detail: str = "") -> None:
        """Set the count of the stage (and its total, if given) and a short ``detail``."""
        with self._lock:
            self._done, self._detail = done, detail
            if total is not None:
                self._total = total
            self._refresh(force=False)

    def _refresh(self, force: bool) -> None:
        # Caller holds the lock.
        if self._bar is not None:
            self._bar.update(
                self._task,
                description=self._stage,
                completed=self._done,
                total=self._total,
                detail=self._detail,
            )
        elif force or time.monotonic() - self._last_line >= self.every_s:
            self._line()

    def _line(self, suffix: str = "") -> None:
        # One plain line: time since the start, title, stage, count, time left, detail.
        now = time.monotonic()
        text = f"[{now - self._started:5.0f} s] {self.title}: {self._stage}"
        if self._total:
            text += f" ({self._done}/{self._total}"
            if self._done:
                left = (now - self._counted_from) / self._done * (self._total - self._done)
                text += f", about {left:.0f} s left"
            text += ")"
        if self._detail:
            text += f", {self._detail}"
        self.console.print(text + suffix, highlight=False, markup=False, soft_wrap=True)
        self._last_line = now

    def _beat(self) -> None:
        # Print a line whenever the command has been silent for `every_s`.
        while not self._stop.wait(self.every_s / 5):
            with self._lock:
                if time.monotonic() - self._last_line >= self.every_s:
                    self._line(", working")
