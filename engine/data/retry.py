"""How often and how patiently a failing request to an exchange is repeated.

Apart from ``engine.data.feed`` so that what configures a session imports no
exchange client: a replay never loads ccxt.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failing request is repeated.

    Attributes
    ----------
    retries : int
        Repeats after the first attempt.
    base_delay_s : float
        Wait before the first repeat; it doubles with every further repeat.
    max_delay_s : float
        The longest single wait, also the cap on an exchange's retry hint.
    """

    retries: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0

    def delay_s(self, repeat: int, hint_s: float = 0.0) -> float:
        """Return the wait before repeat number ``repeat`` (1-based)."""
        backoff = self.base_delay_s * 2 ** (repeat - 1)
        return min(max(backoff, hint_s), self.max_delay_s)
