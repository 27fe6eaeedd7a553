"""A signal whose process dies the first time it is fitted, for the sweep's retry test."""

from __future__ import annotations

import os
from pathlib import Path

from engine.strategy.base import FitContext
from engine.strategy.components import ProbeSignal


class CrashOnceSignal(ProbeSignal):
    """The probe signal, except that its first fit anywhere kills its process.

    The first fit creates the file ``marker`` and exits the process at once
    (as a worker killed mid-trial would); every later fit finds the file and
    fits the probe.
    """

    def __init__(self, marker: str, **params) -> None:
        super().__init__(**params)
        self.marker = marker

    def fit(self, context: FitContext) -> None:
        """Kill the process on the first fit anywhere; fit the probe on every later one."""
        marker = Path(self.marker)
        if not marker.exists():
            marker.touch()
            os._exit(1)
        super().fit(context)
