"""``engine.sim`` imports only numpy, numba (and its llvmlite) and its own modules.

The engine's errors are the one import from outside ``engine.sim``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import engine.sim

ALLOWED = {
    "numpy",
    "numba",
    "llvmlite",
    "engine",
    "__future__",
    "collections",
    "dataclasses",
    "enum",
    "functools",
}


def test_sim_imports_point_down_only() -> None:
    folder = Path(engine.sim.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in ALLOWED, f"{path.name} imports {name}"
                if name.startswith("engine."):
                    assert name.startswith(("engine.sim", "engine.errors")), f"{path.name}: {name}"
