"""``engine paper status`` answers without loading the libraries only sessions need."""

from __future__ import annotations

import json

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


def test_paper_status_loads_no_encoder_fitting_or_kernel_library(run_python, tmp_path):
    loaded = set(json.loads(run_python(PROBE, tmp_path)))
    assert "engine" in loaded and "pandas" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
