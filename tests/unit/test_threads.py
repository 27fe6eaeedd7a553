"""The engine's numerical libraries run one thread each while fitting, torch excepted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# In a fresh process nothing is loaded yet: the limit must load the libraries it limits.
PROBE = """
import json
from threadpoolctl import threadpool_info
from engine.threads import one_thread

def pools():
    return {i["filepath"]: i["num_threads"] for i in threadpool_info()}

with one_thread():
    import torch
    torch.set_num_threads(2)
    inside = pools()
    torch_threads = torch.get_num_threads()
print(json.dumps({"inside": inside, "after": pools(), "torch": torch_threads}))
"""


def test_blas_and_scikit_learn_run_one_thread_and_torch_keeps_its_own() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"},
    )
    seen = json.loads(done.stdout)
    inside = seen["inside"]
    limited = {path: n for path, n in inside.items() if "torch" not in Path(path).parts}
    assert any("numpy" in path for path in limited), inside
    assert any("scikit_learn" in path or "sklearn" in path for path in limited), inside
    assert set(limited.values()) == {1}, inside
    assert seen["torch"] == 2
    assert all(seen["after"][path] == 2 for path in limited), seen["after"]


def test_torch_computes_on_one_thread_inside_and_the_callers_setting_returns() -> None:
    import torch

    from engine.ssl.threads import one_torch_thread

    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        with one_torch_thread():
            inside = torch.get_num_threads()
        after = torch.get_num_threads()
        try:
            with one_torch_thread():
                raise KeyError("a failure inside")
        except KeyError:
            pass
        after_failure = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert (inside, after, after_failure) == (1, 3, 3)
