"""Per-bar representations z_t that strategy components read.

- A pretrained encoder from ``models/``: causal embeddings of the candle
  features, normalised with the pretraining statistics, cached on disk by
  the hashes of the model and of the candles.
- PCA of a trailing window of features, fitted on bars before a cut-off only
  (a baseline with no self-supervised learning).
- The features themselves (for rule-based baselines and components that need
  some representation).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from engine.atomic import atomic_path
from engine.data.features import compute_features
from engine.errors import DataError
from engine.ssl.checkpoint import PretrainedModel

CACHE_DIR_ENV = "ENGINE_CACHE_DIR"


def default_cache_dir() -> Path:
    """Return the cache folder: ``$ENGINE_CACHE_DIR`` if set, else ``.cache/`` here."""
    return Path(os.environ.get(CACHE_DIR_ENV) or ".cache")


def hash_files(*paths: Path) -> str:
    """Return the SHA-256 of the files' bytes, in order."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def hash_candles(candles: pd.DataFrame) -> str:
    """Return the SHA-256 of the candle columns' values."""
    digest = hashlib.sha256()
    for column in ("timestamp", "open", "high", "low", "close", "volume"):
        digest.update(np.ascontiguousarray(candles[column].to_numpy()).tobytes())
    return digest.hexdigest()


def model_representations(
    model: PretrainedModel, candles: pd.DataFrame, cache_dir: Path | None, model_hash: str
) -> np.ndarray:
    """Return the encoder's causal representation of every bar (T x D, float32).

    The result is cached under ``cache_dir/embeddings`` keyed by the model and
    candle hashes; ``cache_dir=None`` disables the cache.
    """
    path = None
    if cache_dir is not None:
        key = f"{model_hash[:20]}-{hash_candles(candles)[:20]}"
        path = cache_dir / "embeddings" / f"{key}.npy"
        if path.is_file():
            cached = np.load(path, allow_pickle=False)
            if cached.shape[0] == len(candles):
                return cached
    features, names = compute_features(candles, model.card["features"].get("extras", []))
    if names != model.feature_names:
        raise DataError(
            f"model {model.path.name} was trained on features {model.feature_names}; "
            f"the engine computes {names} for it"
        )
    z = model.embed(features)
    if path is not None:
        with atomic_path(path) as tmp, tmp.open("wb") as handle:
            np.save(handle, z, allow_pickle=False)
    return z


def pca_representations(
    candles: pd.DataFrame, fit_stop: int, window: int, dims: int, extras: list[str]
) -> np.ndarray:
    """Return PCA components of the last ``window`` bars' features (T x dims).

    The standardisation and the PCA are fitted on rows before ``fit_stop``
    only; rows before ``window - 1`` see zeros for the missing bars.
    """
    features, _ = compute_features(candles, extras)
    if fit_stop <= window:
        raise DataError(
            f"PCA needs more than window={window} bars before the fitting cut-off, got {fit_stop}"
        )
    mean = features[:fit_stop].mean(axis=0)
    std = features[:fit_stop].std(axis=0)
    scaled = (features - mean) / np.where(std > 0, std, 1.0)
    padded = np.vstack([np.zeros((window - 1, scaled.shape[1])), scaled])
    lagged = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)
    lagged = lagged.reshape(len(scaled), -1)
    pca = PCA(n_components=min(dims, lagged.shape[1]), random_state=0)
    pca.fit(lagged[window - 1 : fit_stop])
    return pca.transform(lagged).astype(np.float32)


def feature_representations(candles: pd.DataFrame, extras: list[str]) -> np.ndarray:
    """Return the causal candle features as the representation (T x F)."""
    return compute_features(candles, extras)[0]
