"""Importing the package touches no network and needs no test tooling."""

from __future__ import annotations

import ast
import importlib.metadata
import pkgutil
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import engine

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_importing_every_module_opens_no_connection():
    modules = [m.name for m in pkgutil.walk_packages(engine.__path__, "engine.")]
    assert "engine.data.feed" in modules and "engine.cli" in modules
    script = (
        "import socket, importlib\n"
        "def refuse(*args, **kwargs):\n"
        "    raise AssertionError(f'network use on import: {args}')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "socket.getaddrinfo = refuse\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_encoders_know_no_configs_no_store_and_no_trading():
    # engine/ssl imports only itself and the shared error, file-writing and z-scoring helpers.
    allowed = {"engine.ssl", "engine.errors", "engine.atomic", "engine.scaling"}
    folder = Path(engine.__file__).parent / "ssl"
    for path in sorted(folder.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name == "engine" or name.startswith("engine."):
                    assert any(name == a or name.startswith(f"{a}.") for a in allowed), (
                        f"{path.name} imports {name}"
                    )


def test_the_engine_imports_only_its_runtime_dependencies():
    # Every third-party module the package imports must come from a distribution in
    # [project].dependencies, so a plain `pip install .` (without [dev]) can run it, or
    # from an optional feature's extra (imported only when that feature is used).
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extras = [
        spec
        for name, specs in project["optional-dependencies"].items()
        if name != "dev"
        for spec in specs
    ]
    runtime = {
        _canonical(re.split(r"[<>=!~ \[;]", spec)[0])
        for spec in [*project["dependencies"], *extras]
    }
    dev = {
        _canonical(re.split(r"[<>=!~ \[;]", spec)[0])
        for spec in project["optional-dependencies"]["dev"]
    }
    providers = importlib.metadata.packages_distributions()
    imported = set()
    for path in (REPO_ROOT / "engine").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"engine"}
    assert {"torch", "ccxt", "sklearn", "quantstats"} <= third_party
    for module in sorted(third_party):
        distributions = {_canonical(name) for name in providers.get(module, [])}
        assert distributions & runtime, (
            f"engine imports {module} ({distributions}), not a runtime dependency"
        )
        assert not distributions & dev, f"engine imports {module}, which only [dev] installs"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
