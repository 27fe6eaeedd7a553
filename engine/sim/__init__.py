"""The event loop: numba kernels that advance a book of perpetuals or spot by one bar.

``engine.sim.nb`` holds the kernels and the rules they follow, ``engine.sim.enums``
the integer constants and record dtypes, and ``engine.sim.run`` the wrapper that
validates inputs and makes one kernel call. The wrapper's names are loaded
on first use, so that importing the enums alone (as the paper journal does)
does not load numba.
"""

from engine.sim.enums import Kind, Liquidity, Mode, Reason, Side, Sizing

_RUN_NAMES = ("MarketSpec", "SimConfig", "SimResult", "align_funding", "new_state", "simulate")

__all__ = [
    "Kind",
    "Liquidity",
    "MarketSpec",
    "Mode",
    "Reason",
    "Side",
    "SimConfig",
    "SimResult",
    "Sizing",
    "align_funding",
    "new_state",
    "simulate",
]


def __getattr__(name: str):
    # PEP 562: the wrapper module (and numba) is imported when one of its names is asked for.
    if name in _RUN_NAMES:
        from engine.sim import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
