"""Importing the package touches no network."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import engine


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
    # engine/ssl imports only itself and the shared error and file-writing helpers.
    allowed = {"engine.ssl", "engine.errors", "engine.atomic"}
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
