"""A model folder opened without torch: its card checked, its encoder built when first used.

``open_model`` reads and checks both files of a model folder (see
``engine.ssl.checkpoint`` for their layout) with JSON and safetensors' numpy
reader: the card against ``ModelCard``, and the weights' metadata against the
card, every weight finite. Only the encoder itself needs torch, so it is built
from the weights already read, and checked against its architecture, the first
time ``PretrainedModel.encoder`` is read. A backtest whose representations are
cached reads the card and hashes the folder, and never imports torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file

from engine.errors import ConfigError, DataError
from engine.scaling import Standardiser
from engine.ssl.card import CARD_FILE, WEIGHTS_FILE, ModelCard, parse_card

if TYPE_CHECKING:
    from collections.abc import Callable

    from engine.ssl.base import Encoder


class Damaged(Exception):
    """One problem of a model folder, described for the person loading it."""


@dataclass(frozen=True)
class PretrainedModel:
    """A pretrained encoder's folder, with its card; the encoder is built on first use.

    Attributes
    ----------
    card : dict
        The parsed ``card.json``, every key as written.
    spec : ModelCard
        The card's checked, typed fields.
    path : Path
        The model folder.
    name : str
        What the model is called in messages and records (the folder's name
        unless the loader gives another, such as ``name@version``).
    build : callable
        Returns the encoder; called once, by ``encoder``.
    """

    card: dict[str, Any]
    spec: ModelCard
    path: Path
    name: str
    build: Callable[[], Encoder] = field(repr=False, compare=False)

    @cached_property
    def encoder(self) -> Encoder:
        """Return the encoder, in eval mode, built the first time it is read.

        Raises
        ------
        DataError
            If the weights do not fit the architecture the card names.
        """
        return self.build().eval()

    def with_encoder(self, encoder: Encoder) -> PretrainedModel:
        """Return this model with ``encoder`` (such as a fine-tuned copy) as its encoder."""
        return replace(self, build=lambda: encoder)

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
        from engine.ssl.infer import encode_series  # torch, only when a model encodes

        return encode_series(self.encoder, self.normalise(features), bars, start)


def open_model(folder: str | Path, name: str | None = None) -> PretrainedModel:
    """Open a model folder: read and check its card and weights, without unpickling anything.

    ``name`` is what the model is called (default: the folder's name). The
    card is checked against ``ModelCard``; the weights' metadata must name
    the card's encoder and every weight must be finite. The weights' names,
    shapes and dtypes are checked against the encoder's architecture when
    the encoder is first read (``PretrainedModel.encoder``).

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
        arrays = _read_weights(weights, spec)
    except Damaged as exc:
        raise DataError(f"model {folder} is damaged: {exc}") from None

    def build() -> Encoder:
        from engine.ssl.checkpoint import fitting_encoder  # torch, only when a model encodes

        try:
            return fitting_encoder(spec.kind, spec.encoder.config, arrays)
        except Damaged as exc:
            raise DataError(f"model {folder} is damaged: {exc}") from None

    return PretrainedModel(card=card, spec=spec, path=folder, name=name or folder.name, build=build)


def _read_card(path: Path) -> tuple[dict[str, Any], ModelCard]:
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise Damaged(f"{path.name} is not UTF-8 text; expected a JSON object") from None
    except json.JSONDecodeError as exc:
        raise Damaged(f"{path.name} is not JSON ({exc.msg} at line {exc.lineno})") from None
    except OSError as exc:
        raise Damaged(f"{path.name} cannot be read ({exc.strerror})") from None
    try:
        return card, parse_card(card)
    except ValueError as exc:
        raise Damaged(f"{path.name}: {exc}") from None


def _read_weights(path: Path, spec: ModelCard) -> dict[str, np.ndarray]:
    # The weights, after checking that the metadata names the card's encoder and
    # that every weight is finite.
    try:
        with safe_open(str(path), framework="np") as handle:
            metadata = handle.metadata() or {}
        arrays = load_file(str(path))
    except (SafetensorError, OSError, TypeError, ValueError) as exc:
        raise Damaged(f"{path.name} is not a readable safetensors file ({exc})") from None
    missing = [key for key in ("kind", "config") if key not in metadata]
    if missing:
        raise Damaged(f"{path.name}: its metadata lacks {', '.join(missing)}")
    try:
        config = json.loads(metadata["config"])
    except json.JSONDecodeError as exc:
        raise Damaged(f"{path.name}: its metadata config is not JSON ({exc.msg})") from None
    if not isinstance(config, dict):
        raise Damaged(
            f"{path.name}: its metadata config is a JSON {type(config).__name__}; "
            "expected an object of encoder hyperparameters"
        )
    kind = metadata["kind"]
    if kind != spec.kind or config != spec.encoder.config:
        raise Damaged(
            f"{WEIGHTS_FILE} holds a {kind} encoder with config {config}; {CARD_FILE} "
            f"describes a {spec.kind} encoder with config {spec.encoder.config}"
        )
    for name, array in arrays.items():
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise Damaged(f"{WEIGHTS_FILE}: tensor {name} holds NaN or infinite values")
    return arrays
