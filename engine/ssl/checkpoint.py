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

``engine.ssl.folder.open_model`` opens a model folder without torch;
``fitting_encoder`` builds its encoder from the weights, once it is needed.

A training checkpoint is a single safetensors file whose metadata entry
``state`` holds the JSON part; it is written to a temporary name and renamed,
so a kill never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from engine.atomic import atomic_path, write_text
from engine.errors import ConfigError, DataError
from engine.ssl.base import Encoder
from engine.ssl.card import CARD_FILE, WEIGHTS_FILE
from engine.ssl.folder import Damaged
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


def save_model(folder: Path, encoder: Encoder, card: dict[str, Any]) -> None:
    """Write ``encoder``'s weights and ``card`` to the model folder ``folder``."""
    metadata = {"kind": encoder.kind, "config": json.dumps(encoder.config())}
    state = {key: value.detach().contiguous() for key, value in encoder.state_dict().items()}
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    write_text(folder / CARD_FILE, json.dumps(card, indent=2) + "\n")


def fitting_encoder(kind: str, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> Encoder:
    """Return the ``kind`` encoder built with ``config`` and loaded with the weights ``arrays``.

    The architecture is first built without memory, on the meta device, to
    compare the weights' names, shapes and dtypes with it.

    Raises
    ------
    Damaged
        If the configuration is refused or the weights do not fit it.
    """
    try:
        with torch.device("meta"):
            expected = build_encoder(kind, **config).state_dict()
    except ConfigError as exc:
        raise Damaged(f"{WEIGHTS_FILE}: {exc}") from None
    state = {name: torch.from_numpy(array) for name, array in arrays.items()}
    if set(expected) != set(state):
        absent = sorted(set(expected) - set(state))
        unknown = sorted(set(state) - set(expected))
        raise Damaged(
            f"{WEIGHTS_FILE}: tensor names do not fit a {kind} encoder "
            f"(missing: {', '.join(absent[:5]) or 'none'}; unexpected: "
            f"{', '.join(unknown[:5]) or 'none'})"
        )
    for name, tensor in state.items():
        want = expected[name]
        if tensor.shape != want.shape or tensor.dtype != want.dtype:
            raise Damaged(
                f"{WEIGHTS_FILE}: tensor {name} is {tensor.dtype} {tuple(tensor.shape)}; "
                f"expected {want.dtype} {tuple(want.shape)}"
            )
    encoder = build_encoder(kind, **config)
    encoder.load_state_dict(state, strict=True)
    return encoder
