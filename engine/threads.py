"""One thread for the BLAS and OpenMP pools of the libraries that fit components.

The engine fits small models (probes, prototypes, k-means on a few thousand
rows of a few hundred dimensions), where a second BLAS or OpenMP thread saves
little and costs a synchronisation in every matrix product and every
parallel loop. On a machine whose cores are busy with other work, each of
those waits for a thread that is not running: the main backtest's probe
fitting ran several times slower than its share of the CPU explains.

A pool can be limited only once its library is loaded, so ``one_thread``
loads NumPy's and SciPy's OpenBLAS and scikit-learn's OpenMP runtime before
limiting them. torch's own OpenMP pool is left alone when torch is loaded
later: the encoders set their threads where they run.
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits


def one_thread() -> threadpool_limits:
    """Return a context in which the loaded BLAS and OpenMP pools run one thread each."""
    import numpy  # noqa: F401  (NumPy's OpenBLAS)
    import scipy.linalg  # noqa: F401  (SciPy's OpenBLAS)
    import sklearn.linear_model  # noqa: F401  (scikit-learn's OpenMP runtime)

    return threadpool_limits(limits=1)
