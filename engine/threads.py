"""One thread for the BLAS and OpenMP pools of the libraries that fit components.

The engine fits small models (probes, prototypes, k-means on a few thousand
rows of a few hundred dimensions), where a second BLAS or OpenMP thread saves
little and costs a synchronisation in every matrix product and every
parallel loop. On a machine whose cores are busy with other work, each of
those waits for a thread that is not running: the main backtest's probe
fitting ran twenty times slower at load average 10 than with one thread.

A pool can be limited only once its library is loaded, so ``one_thread``
loads NumPy's and SciPy's OpenBLAS and scikit-learn's OpenMP runtime before
limiting them. torch's OpenMP pool is left alone, loaded or not: every
torch computation runs on one thread where it runs
(``engine.ssl.threads.one_torch_thread``).
"""

from __future__ import annotations

from pathlib import Path

from threadpoolctl import ThreadpoolController


def one_thread():
    """Return a context in which every loaded BLAS and OpenMP pool but torch's runs one thread."""
    import numpy  # noqa: F401  (NumPy's OpenBLAS)
    import scipy.linalg  # noqa: F401  (SciPy's OpenBLAS)
    import sklearn.linear_model  # noqa: F401  (scikit-learn's OpenMP runtime)

    controller = ThreadpoolController()
    paths = [
        info["filepath"]
        for info in controller.info()
        if info["user_api"] == "blas" or "torch" not in Path(info["filepath"]).parts
    ]
    return controller.select(filepath=paths).limit(limits=1)
