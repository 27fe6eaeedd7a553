"""Model folders and training checkpoints, stored as safetensors and JSON.

Nothing here unpickles: tensors are read with ``safetensors`` and everything
else (encoder config, optimiser settings, loss curve, model card) is JSON.

A model folder (a version ``models/<name>/<version>/``, see
``engine.models.registry``) holds two files:

- ``weights.safetensors``: the encoder's state dict; its metadata holds the
  encoder ``kind`` and its ``config`` (JSON), so the folder rebuilds the encoder
  without any other file;
- ``card.json``: what the model was trained on and how (see
  ``engine.pretraining``), including the feature normalisation statistics
  that must be applied to inputs before encoding.

A training checkpoint is a single safetensors file whose metadata entry
``state`` holds the JSON part; it is written to a temporary name and renamed,
so a kill never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from engine.atomic import atomic_path, write_text
from engine.errors import ConfigError, DataError
from engine.scaling import Standardiser
from engine.ssl.base import Encoder
from engine.ssl.card import CARD_FILE, WEIGHTS_FILE, ModelCard, parse_card
from engine.ssl.infer import encode_series
from engine.ssl.registry import build_encoder


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """Write ``tensors`` and the JSON ``state`` to ``path`` atomically."""
    contiguous = {key: value.detach().contiguous() for key, value in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(contiguous, str(tmp), metadata={"state": json.dumps(state)})


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read the tensors and the JSON state written by ``save_tensors``.

    Raises
    ------
    DataError
        If the file is not a readable safetensors file with a JSON state.
    """
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
        state = json.loads(metadata["state"])
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable checkpoint: {exc}") from None
    return tensors, state


@dataclass(frozen=True)
class PretrainedModel:
    """A pretrained encoder loaded from its folder, with its card.

    Attributes
    ----------
    encoder : Encoder
        The encoder, in eval mode.
    card : dict
        The parsed ``card.json``, every key as written.
    spec : ModelCard
        The card's checked, typed fields.
    path : Path
        The model folder.
    name : str
        What the model is called in messages and records (the folder's name
        unless the loader gives another, such as ``name@version``).
    """

    encoder: Encoder
    card: dict[str, Any]
    spec: ModelCard
    path: Path
    name: str

    @property
    def feature_names(self) -> list[str]:
        """Return the names of the features the encoder expects, in order."""
        return list(self.spec.features.names)

    def normalise(self, features: np.ndarray) -> np.ndarray:
        """Return ``features`` (T x F) normalised with the pretraining statistics, as float32."""
        features = np.asarray(features, dtype=np.float64)
        names = self.feature_names
        if features.ndim != 2 or features.shape[1] != len(names):
            raise DataError(
                f"model {self.name} expects features of shape (T, {len(names)}) "
                f"({', '.join(names)}), got {features.shape}"
            )
        spec = self.spec.features
        if spec.normalisation == "zscore":
            features = Standardiser(np.asarray(spec.mean), np.asarray(spec.std))(features)
        return features.astype(np.float32)

    def embed(
        self, features: np.ndarray, bars: np.ndarray | None = None, start: int = 0
    ) -> np.ndarray:
        """Return the causal representation ((T - start) x D) of raw features (T x F).

        The features are normalised with the pretraining statistics, then
        encoded in blocks aligned on the bar numbers ``bars`` (see
        ``engine.ssl.infer.encode_series``, which also says what ``start`` does).
        """
        return encode_series(self.encoder, self.normalise(features), bars, start)


def save_model(folder: Path, encoder: Encoder, card: dict[str, Any]) -> None:
    """Write ``encoder``'s weights and ``card`` to the model folder ``folder``."""
    metadata = {"kind": encoder.kind, "config": json.dumps(encoder.config())}
    state = {key: value.detach().contiguous() for key, value in encoder.state_dict().items()}
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    write_text(folder / CARD_FILE, json.dumps(card, indent=2) + "\n")


def load_model(folder: str | Path, name: str | None = None) -> PretrainedModel:
    """Load the encoder and card of a model folder, without unpickling anything.

    ``name`` is what the model is called (default: the folder's name).

    The card is checked against ``ModelCard``, and the weights' names, shapes
    and dtypes against the encoder the card and the weights' metadata name;
    every weight must be finite.

    Raises
    ------
    ConfigError
        If the folder or one of its two files does not exist.
    DataError
        If the model is damaged: one message, "model <folder> is damaged: ...",
        naming the file and the problem.
    """
    folder = Path(folder)
    weights, card_path = folder / WEIGHTS_FILE, folder / CARD_FILE
    for path in (weights, card_path):
        if not path.is_file():
            raise ConfigError(f"{folder}: not a model folder (no {path.name})")
    try:
        card, spec = _read_card(card_path)
        kind, config, state = _read_weights(weights)
        encoder = _fitting_encoder(kind, config, state, spec)
    except _Damaged as exc:
        raise DataError(f"model {folder} is damaged: {exc}") from None
    return PretrainedModel(
        encoder=encoder.eval(), card=card, spec=spec, path=folder, name=name or folder.name
    )


class _Damaged(Exception):
    # One problem of a model folder, described for the person loading it.
    pass


def _read_card(path: Path) -> tuple[dict[str, Any], ModelCard]:
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise _Damaged(f"{path.name} is not UTF-8 text; expected a JSON object") from None
    except json.JSONDecodeError as exc:
        raise _Damaged(f"{path.name} is not JSON ({exc.msg} at line {exc.lineno})") from None
    except OSError as exc:
        raise _Damaged(f"{path.name} cannot be read ({exc.strerror})") from None
    try:
        return card, parse_card(card)
    except ValueError as exc:
        raise _Damaged(f"{path.name}: {exc}") from None


def _read_weights(path: Path) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise _Damaged(f"{path.name} is not a readable safetensors file ({exc})") from None
    missing = [key for key in ("kind", "config") if key not in metadata]
    if missing:
        raise _Damaged(f"{path.name}: its metadata lacks {', '.join(missing)}")
    try:
        config = json.loads(metadata["config"])
    except json.JSONDecodeError as exc:
        raise _Damaged(f"{path.name}: its metadata config is not JSON ({exc.msg})") from None
    if not isinstance(config, dict):
        raise _Damaged(
            f"{path.name}: its metadata config is a JSON {type(config).__name__}; "
            "expected an object of encoder hyperparameters"
        )
    return metadata["kind"], config, state


def _fitting_encoder(
    kind: str, config: dict[str, Any], state: dict[str, torch.Tensor], spec: ModelCard
) -> Encoder:
    # Build the encoder the weights name (first without memory, on the meta
    # device, to compare the state dict's names, shapes and dtypes), load the
    # weights and return it.
    if kind != spec.kind or config != spec.encoder.config:
        raise _Damaged(
            f"{WEIGHTS_FILE} holds a {kind} encoder with config {config}; {CARD_FILE} "
            f"describes a {spec.kind} encoder with config {spec.encoder.config}"
        )
    try:
        with torch.device("meta"):
            expected = build_encoder(kind, **config).state_dict()
    except ConfigError as exc:
        raise _Damaged(f"{WEIGHTS_FILE}: {exc}") from None
    if set(expected) != set(state):
        absent = sorted(set(expected) - set(state))
        unknown = sorted(set(state) - set(expected))
        raise _Damaged(
            f"{WEIGHTS_FILE}: tensor names do not fit a {kind} encoder "
            f"(missing: {', '.join(absent[:5]) or 'none'}; unexpected: "
            f"{', '.join(unknown[:5]) or 'none'})"
        )
    for name, tensor in state.items():
        want = expected[name]
        if tensor.shape != want.shape or tensor.dtype != want.dtype:
            raise _Damaged(
                f"{WEIGHTS_FILE}: tensor {name} is {tensor.dtype} {tuple(tensor.shape)}; "
                f"expected {want.dtype} {tuple(want.shape)}"
            )
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise _Damaged(f"{WEIGHTS_FILE}: tensor {name} holds NaN or infinite values")
    encoder = build_encoder(kind, **config)
    encoder.load_state_dict(state, strict=True)
    return encoder
