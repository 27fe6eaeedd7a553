"""The event loop: numba kernels that advance a book of perpetuals or spot by one bar.

``engine.sim.nb`` holds the kernels and the rules they follow, ``engine.sim.enums``
the integer constants and record dtypes, and ``engine.sim.run`` the wrapper that
validates inputs and makes one kernel call.
"""

from engine.sim.enums import Kind, Liquidity, Mode, Reason, Side, Sizing
from engine.sim.run import MarketSpec, SimConfig, SimResult, align_funding, new_state, simulate

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
