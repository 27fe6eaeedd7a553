"""The event loop's one signature, whether numba's cache holds it, and compiling it.

On a fresh numba cache, the first call of ``checked_run_nb`` compiles it, with
``run_nb`` and every kernel it calls: about 15 s, the largest single part of
a first run. numba writes the compiled code to its cache on disk, from which
any later process loads it in well under a second. A backtest spends its
first seconds loading candles, computing representations and fitting
components, none of which needs the loop, so the runner starts a process
(``python -m engine.sim.compiled``, see ``engine.runner.warmup``) that
compiles the loop meanwhile, on another core, unless ``is_compiled``.

``simulate`` calls the kernel with one signature only (``RUN_SIGNATURE``),
since it hands the kernel its inputs read-only whatever the caller's arrays.
"""

from __future__ import annotations

import numpy as np
from numba import from_dtype, types

from engine.sim.enums import (
    account_dt,
    asset_dt,
    change_dt,
    config_dt,
    fill_dt,
    market_dt,
    range_dt,
    reject_dt,
)
from engine.sim.nb import checked_run_nb


def _array(dtype: np.dtype, ndim: int = 1, read_only: bool = False) -> types.Array:
    return types.Array(from_dtype(np.dtype(dtype)), ndim, "C", readonly=read_only)


_PRICES = _array(np.float64, 2, read_only=True)
#: The argument types of every ``checked_run_nb`` call that ``simulate`` makes.
RUN_SIGNATURE = (
    _array(np.int64, read_only=True),  # times
    _array(range_dt),
    _array(account_dt),
    _array(asset_dt),
    _array(config_dt),
    _array(market_dt),
    *(_PRICES,) * 5,  # open, high, low, close, funding
    _PRICES,  # target
    _array(np.int64, 2, read_only=True),  # mode
    *(_PRICES,) * 4,  # risk, limit offset, stop loss, take profit
    types.int64,  # start
    types.int64,  # stop
    _array(fill_dt),
    types.int64,
    _array(reject_dt),
    types.int64,
    _array(change_dt),
    _array(np.float64, 2),  # held
    types.int64,
)


def is_compiled() -> bool:
    """Return whether numba's cache on disk holds the loop compiled for ``RUN_SIGNATURE``.

    It reads numba's cache index the way the dispatcher does when it
    compiles; where that cannot be read (the JIT disabled, another numba
    version), it answers True, so that nothing is started.
    """
    try:
        cache = checked_run_nb._cache
        key = cache._index_key(RUN_SIGNATURE, checked_run_nb.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except Exception:  # noqa: BLE001  (numba's internals; fall back to compiling in-process)
        return True


if __name__ == "__main__":
    checked_run_nb.compile(RUN_SIGNATURE)
