"""The model registry: immutable, content-addressed versions of pretrained encoders.

Layout under the registry's root (``models/`` by default)::

    <name>/<version>/weights.safetensors
    <name>/<version>/card.json

A version is the first ``VERSION_LENGTH`` hex digits of the SHA-256 of the
weights' bytes followed by the card's bytes, so a version names exactly one
content; ``load`` recomputes it and refuses a folder whose files no longer
match their name. The card's ``lineage`` section records where a version
comes from: ``parent`` (``name@version`` or null), ``created_utc`` (when it was
written) and ``origin`` (``pretrain``, ``continue``, ``migrate`` or what the
writer names). The data range and the first instant never seen are the
card's ``data`` section (``first_bar_utc``, ``last_bar_utc``,
``unseen_from_utc``).

A reference is ``name`` (the latest version: the greatest ``created_utc``,
then the greatest version) or ``name@version``, where the version may be any
unambiguous prefix of at least 4 digits.

``publish`` writes a version into a hidden temporary folder beside the
versions (``.incoming-<pid>-...``), flushes it, and renames it to its version
in one step, so a crash never leaves a half-written version visible: readers
list only folders named by a version, and the next ``publish`` removes the
leftovers of processes that no longer run. Nothing ever changes a version
once written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config import MODEL_REF_PATTERN
from engine.errors import ConfigError, DataError
from engine.ssl.card import CARD_FILE, WEIGHTS_FILE

if TYPE_CHECKING:
    from engine.ssl.base import Encoder
    from engine.ssl.folder import PretrainedModel

VERSION_LENGTH = 12
_VERSION = re.compile(rf"^[0-9a-f]{{{VERSION_LENGTH}}}$")
_TEMP_PREFIX = ".incoming-"


@dataclass(frozen=True)
class ModelRef:
    """A reference to a model: its name and, optionally, a version (or a version prefix)."""

    name: str
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Return the reference ``name`` or ``name@version`` that ``text`` spells.

        Raises
        ------
        ConfigError
            If ``text`` is not a model name, optionally followed by ``@`` and
            at least 4 lowercase hex digits.
        """
        if len(text) > 170 or not re.match(MODEL_REF_PATTERN, text):
            raise ConfigError(
                f"model {text!r}: expected NAME or NAME@VERSION (a name of letters, digits, "
                "'_', '.' and '-', and a version of at least 4 lowercase hex digits)"
            )
        name, _, version = text.partition("@")
        return cls(name, version or None)

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"


@dataclass(frozen=True)
class ModelVersion:
    """One stored version of a model.

    Attributes
    ----------
    name, version : str
        The model's name and its version (the content hash).
    path : Path
        The version's folder.
    card : dict
        The parsed ``card.json``, every key as written.
    """

    name: str
    version: str
    path: Path
    card: dict[str, Any]

    @property
    def ref(self) -> str:
        """Return the exact reference ``name@version``."""
        return f"{self.name}@{self.version}"

    @property
    def lineage(self) -> dict[str, Any]:
        """Return the card's lineage section (empty if the card has none)."""
        lineage = self.card.get("lineage")
        return lineage if isinstance(lineage, dict) else {}

    @property
    def parent(self) -> str | None:
        """Return the parent's reference ``name@version``, or None for a root version."""
        return self.lineage.get("parent")

    @property
    def created_utc(self) -> str:
        """Return when the version was written (ISO 8601, UTC), or '' if unknown."""
        return str(self.lineage.get("created_utc") or "")


def content_hash(folder: Path) -> str:
    """Return the SHA-256 of the model files in ``folder``: the weights' bytes, then the card's."""
    digest = hashlib.sha256()
    for name in (WEIGHTS_FILE, CARD_FILE):
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()


def content_version(folder: Path) -> str:
    """Return the version of the model files in ``folder``: the start of their ``content_hash``."""
    return content_hash(folder)[:VERSION_LENGTH]


class Registry:
    """The versions of every model under ``root``.

    Parameters
    ----------
    root : Path
        The registry's folder (``models/``).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def names(self) -> list[str]:
        """Return the names of the models that have at least one version, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self._version_dirs(p))

    def unversioned(self) -> list[str]:
        """Return the names of model folders that predate versions (``<name>/card.json``)."""
        return sorted(path.parent.name for path in self.root.glob(f"*/{CARD_FILE}"))

    def versions(self, name: str) -> list[ModelVersion]:
        """Return the versions of model ``name``, oldest first (the last is the latest).

        Raises
        ------
        ConfigError
            If there is no such model, or its folder predates versions.
        """
        folder = self.root / name
        if (folder / CARD_FILE).is_file():
            raise ConfigError(
                f"model folder {folder} holds an unversioned model; "
                f"run `engine models migrate --models-dir {self.root}` to version it"
            )
        found = [self._read(name, path) for path in self._version_dirs(folder)]
        if not found:
            raise ConfigError(f"no model {name!r} in {self.root}; {self._known()}")
        return sorted(found, key=lambda v: (v.created_utc, v.version))

    def resolve(self, ref: str | ModelRef) -> ModelVersion:
        """Return the version ``ref`` names: the latest for a bare name.

        Raises
        ------
        ConfigError
            If the reference is malformed, or names no model or no version
            (the message lists what exists), or a version prefix is ambiguous.
        """
        ref = ModelRef.parse(ref) if isinstance(ref, str) else ref
        versions = self.versions(ref.name)
        if ref.version is None:
            return versions[-1]
        matches = [v for v in versions if v.version.startswith(ref.version)]
        if len(matches) != 1:
            problem = "matches several versions" if matches else "is not a version"
            raise ConfigError(
                f"model {ref}: {ref.version!r} {problem} of {ref.name}; expected one of "
                f"{[v.version for v in versions]}"
            )
        return matches[0]

    def load(self, ref: str | ModelRef) -> PretrainedModel:
        """Load the version ``ref`` names, after checking its files still hash to its version.

        The loaded model's ``name`` is the exact reference ``name@version``.
        Its encoder is built, with torch, when first read (see
        ``engine.ssl.folder``).

        Raises
        ------
        ConfigError
            As ``resolve``.
        DataError
            If the version is damaged: a file is unreadable, fails the card or
            weights checks of ``engine.ssl.folder.open_model``, or no longer
            hashes to the version.
        """
        from engine.ssl.folder import open_model

        found = self.resolve(ref)
        model = open_model(found.path, name=found.ref)
        actual = content_version(found.path)
        if actual != found.version:
            raise DataError(
                f"model {found.path} is damaged: its files hash to {actual}; "
                f"expected {found.version}, the version they were written as"
            )
        return model

    def publish(
        self,
        name: str,
        encoder: Encoder,
        card: dict[str, Any],
        *,
        parent: str | None = None,
        origin: str = "pretrain",
    ) -> ModelVersion:
        """Write ``encoder`` and ``card`` as a new version of ``name`` and return it.

        The card gets a ``lineage`` section (``parent``, ``created_utc``,
        ``origin``); its ``data`` section should hold the data range and
        ``unseen_from_utc``. Files whose version is already stored give
        that stored version.

        Parameters
        ----------
        name : str
            The model's name.
        encoder : Encoder
            The trained encoder.
        card : dict
            The model card (see ``engine.pretraining``), without lineage.
        parent : str or None
            The exact reference (``name@version``) of the version this one
            was trained from, or None.
        origin : str
            How the version was made (``pretrain``, ``continue``, ``refit``, ...).
        """
        from engine.ssl.checkpoint import save_model  # torch, only when a model is written

        lineage = {"parent": parent, "created_utc": _now_utc(), "origin": origin}
        card = {**card, "lineage": lineage}
        return self._commit(name, lambda folder: save_model(folder, encoder, card))

    def publish_child(
        self,
        parent: str | ModelRef,
        encoder: Encoder,
        *,
        data: dict[str, Any],
        training: dict[str, Any],
        origin: str,
    ) -> ModelVersion:
        """Write ``encoder``, trained further from the version ``parent``, as its child.

        The child's card is the parent's with ``data`` merged into its data
        section (give at least ``first_bar_utc``, ``last_bar_utc`` and
        ``unseen_from_utc`` of the bars it was trained on) and ``training``
        in place of its training section; the lineage names the parent.
        The child takes the parent's name.

        Raises
        ------
        ConfigError
            As ``resolve``, for ``parent``.
        """
        base = self.resolve(parent)
        card = {key: value for key, value in base.card.items() if key != "lineage"}
        card["data"] = {**(card.get("data") or {}), **data}
        card["training"] = training
        return self.publish(base.name, encoder, card, parent=base.ref, origin=origin)

    def migrate(self) -> list[ModelVersion]:
        """Move every unversioned model folder ``<name>/`` into ``<name>/<version>/``.

        The card gets a ``lineage`` section (no parent, ``created_utc`` from
        the weights file's modification time, origin ``migrate``); the
        weights are moved unchanged. Returns the versions made.
        """
        made = []
        for name in self.unversioned():
            folder = self.root / name
            card_path = folder / CARD_FILE
            try:
                card = json.loads(card_path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise DataError(
                    f"model {folder} is damaged: {CARD_FILE} is not JSON ({exc})"
                ) from None
            if not isinstance(card, dict):
                raise DataError(f"model {folder} is damaged: {CARD_FILE} is not a JSON object")
            weights = folder / WEIGHTS_FILE
            created = dt.datetime.fromtimestamp(weights.stat().st_mtime, dt.UTC)
            card["lineage"] = {
                "parent": None,
                "created_utc": created.isoformat(),
                "origin": "migrate",
            }

            def fill(target: Path, weights: Path = weights, card: dict = card) -> None:
                shutil.copyfile(weights, target / WEIGHTS_FILE)
                (target / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", "utf-8")

            made.append(self._commit(name, fill))
            weights.unlink()
            card_path.unlink()
        return made

    def _commit(self, name: str, fill: Callable[[Path], None]) -> ModelVersion:
        # Fill a hidden folder, flush it, then rename it to its content's version.
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        for leftover in folder.glob(f"{_TEMP_PREFIX}*"):
            if not _writer_alive(leftover.name):
                shutil.rmtree(leftover, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{os.getpid()}-", dir=folder))
        try:
            fill(staging)
            for path in staging.iterdir():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
            version = content_version(staging)
            target = folder / version
            if target.exists():
                shutil.rmtree(staging)
            else:
                os.rename(staging, target)
                _fsync_dir(folder)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return self._read(name, target)

    def _version_dirs(self, folder: Path) -> list[Path]:
        if not folder.is_dir():
            return []
        return [p for p in folder.iterdir() if p.is_dir() and _VERSION.match(p.name)]

    def _read(self, name: str, path: Path) -> ModelVersion:
        # An unreadable card reads as empty here; ``load`` says what is wrong with it.
        try:
            card = json.loads((path / CARD_FILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            card = {}
        card = card if isinstance(card, dict) else {}
        return ModelVersion(name=name, version=path.name, path=path, card=card)

    def _known(self) -> str:
        names = self.names()
        return f"expected one of {names}" if names else "there are no models there"


def _now_utc() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _writer_alive(staging: str) -> bool:
    # Whether the process that named a staging folder ".incoming-<pid>-..." still runs.
    pid = staging.removeprefix(_TEMP_PREFIX).split("-", 1)[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
