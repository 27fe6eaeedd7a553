"""Importing the package touches no network."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

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
