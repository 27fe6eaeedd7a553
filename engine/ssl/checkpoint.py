"""Model folders and training checkpoints, stored as safetensors and JSON.

Nothing here unpickles: tensors are read with ``safetensors`` and everything
else (encoder config, optimiser settings, loss curve, model card) is JSON.

A model folder ``models/<name>/`` holds two files:

- ``weights.safetensors``: the encoder's state dict; its metadata holds the
  encoder ``kind`` and its ``config`` (JSON), so the folder rebuilds the encoder
  without any other file;
- ``card.json``: what the model was trained on and how (see
  ``engine.ssl.pretrain``), including the feature normalisation statistics
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
from engine.ssl.base import Encoder
from engine.ssl.infer import encode_series
from engine.ssl.registry import build_encoder

WEIGHTS_FILE = "weights.safetensors"
CARD_FILE = "card.json"


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
        The parsed ``card.json``.
    path : Path
        The model folder.
    """

    encoder: Encoder
    card: dict[str, Any]
    path: Path

    @property
    def feature_names(self) -> list[str]:
        """Return the names of the features the encoder expects, in order."""
        return list(self.card["features"]["names"])

    def normalise(self, features: np.ndarray) -> np.ndarray:
        """Return ``features`` (T x F) normalised with the pretraining statistics, as float32."""
        features = np.asarray(features, dtype=np.float64)
        names = self.feature_names
        if features.ndim != 2 or features.shape[1] != len(names):
            raise DataError(
                f"model {self.path.name} expects features of shape (T, {len(names)}) "
                f"({', '.join(names)}), got {features.shape}"
            )
        spec = self.card["features"]
        if spec["normalisation"] == "zscore":
            mean = np.asarray(spec["mean"], dtype=np.float64)
            std = np.asarray(spec["std"], dtype=np.float64)
            features = (features - mean) / std
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


def load_model(folder: str | Path) -> PretrainedModel:
    """Load the encoder and card of a model folder, without unpickling anything.

    Raises
    ------
    ConfigError
        If the folder or one of its two files does not exist.
    DataError
        If a file is unreadable or the weights do not fit the encoder they name.
    """
    folder = Path(folder)
    weights, card_path = folder / WEIGHTS_FILE, folder / CARD_FILE
    for path in (weights, card_path):
        if not path.is_file():
            raise ConfigError(f"{folder}: not a model folder (no {path.name})")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
        with safe_open(str(weights), framework="pt") as handle:
            metadata = handle.metadata() or {}
        kind, config = metadata["kind"], json.loads(metadata["config"])
        state = load_file(str(weights))
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as exc:
        raise DataError(f"{folder}: unreadable model folder: {exc}") from None
    encoder = build_encoder(kind, **config)
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise DataError(f"{weights}: weights do not fit a {kind} encoder: {exc}") from None
    return PretrainedModel(encoder=encoder.eval(), card=card, path=folder)
