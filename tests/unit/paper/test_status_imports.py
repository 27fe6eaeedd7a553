"""``engine paper status`` answers without loading the libraries only sessions need."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("torch", "sklearn", "scipy", "numba", "quantstats", "ccxt")

PROBE = """
import json, sys
sys.argv = ["engine", "paper", "status", "--journal-dir", sys.argv[1]]
from engine.cli import main
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_paper_status_loads_no_encoder_fitting_or_kernel_library(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(REPO_ROOT)},
    )
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "engine" in loaded and "pandas" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
