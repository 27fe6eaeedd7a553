"""Atomic file writes: write to a temporary file beside the target, then rename.

A reader never sees half a file, and a crash or an error mid-write leaves the
previous file, if any, untouched. Files get the mode any new file gets (0644
under the usual umask 022), whatever wrote them.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.errors import EngineError


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    The temporary file is flushed to disk before the rename. On an exception it
    is removed and ``path`` is unchanged. It is created with mode 0666 less the
    umask, as ``open`` creates files (``tempfile.mkstemp`` would make it 0600).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield Path(tmp)
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, as UTF-8."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def check_writable(folder: Path, what: str) -> None:
    """Create ``folder`` if it is missing and check that a file can be written in it.

    Raises
    ------
    EngineError
        If the folder cannot be created or written to; ``what`` names it (an option).
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise EngineError(
            f"{what} {folder}: cannot write there ({exc.strerror or exc}); "
            "expected a writable folder"
        ) from None
