"""The refit schedule: when components are refitted and on which rows.

Bars from the anchor (the out-of-sample start) on are cut into blocks of
``refit_every`` bars. Before block ``[r, r + refit_every)`` every component is
refitted on the ``fit_bars`` rows that end ``embargo`` bars before r, using a
history that ends at bar r - 1, the last bar closed when the block begins. The
embargo must be at least every component's label horizon, so each training
label is known at bar r - 1. Windows roll forward; they never look back in.

A backtest walks the blocks (``blocks``); a paper session asks which block a
new bar belongs to (``block_start``). Both read this one schedule.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from engine.errors import ConfigError, DataError


@dataclass(frozen=True)
class RefitSchedule:
    """The walk-forward windows, anchored at the first bar acted on.

    Attributes
    ----------
    anchor : int
        The row of the first block's first bar.
    fit_bars, refit_every, embargo : int
        Training rows per refit, bars per block, and bars between the last
        training row and the block.
    """

    anchor: int
    fit_bars: int
    refit_every: int
    embargo: int

    def block_start(self, t: int) -> int:
        """Return the first bar of the block that bar ``t`` (at or after the anchor) is in."""
        return self.anchor + (t - self.anchor) // self.refit_every * self.refit_every

    def train(self, block: int) -> slice:
        """Return the training rows of the block starting at bar ``block``."""
        return slice(block - self.embargo - self.fit_bars, block - self.embargo)

    def next_block(self, block: int, ended_after: int | None = None) -> int:
        """Return the first bar of the block after the one starting at bar ``block``.

        A block runs ``refit_every`` bars, or ends after bar ``ended_after``
        when a drift policy ended it there.
        """
        regular = block + self.refit_every
        return regular if ended_after is None else min(regular, ended_after + 1)

    def blocks(self, stop: int) -> Iterator[tuple[slice, slice]]:
        """Yield each block of bars before ``stop`` with its training rows, rolling forward."""
        for r in range(self.anchor, stop, self.refit_every):
            yield slice(r, min(self.next_block(r), stop)), self.train(r)

    def check(self, horizon: int) -> None:
        """Raise a clear error if the windows cannot be honest for ``horizon`` or cannot fit.

        ``horizon`` is the longest label horizon of the components.
        """
        if self.embargo < horizon:
            raise ConfigError(
                f"walk_forward.embargo_bars is {self.embargo}; expected at least the longest "
                f"label horizon of the components ({horizon} bars), or training labels would leak"
            )
        if self.refit_every < 1 or self.fit_bars < 1:
            raise ConfigError("walk_forward.fit_bars and refit_every must be at least 1")
        if self.train(self.anchor).start < 0:
            raise DataError(
                f"the out-of-sample range starts at bar {self.anchor} of the history, but "
                f"fitting needs fit_bars + embargo_bars = {self.fit_bars + self.embargo} bars "
                "before it"
            )
