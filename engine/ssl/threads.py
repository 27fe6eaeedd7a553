"""One torch thread for every torch computation of the engine.

The bits of a torch computation depend on the number of threads that share
it, so encoding, training and prediction each run on one thread: a paper
session then encodes, trains and predicts exactly as ``engine run`` does,
whatever the caller's setting.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the block on one torch thread, then restore the caller's setting."""
    import torch  # only code that computes with torch calls this

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
