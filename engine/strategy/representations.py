"""Per-bar representations z_t that strategy components read.

- A pretrained encoder from ``models/``: causal embeddings of the candle
  features, normalised with the pretraining statistics, cached on disk by
  the hashes of the model and of the candles.
- PCA of a trailing window of features, fitted on bars before a cut-off only
  (a baseline with no self-supervised learning).
- The same encoder architecture trained from scratch, supervised, on the
  direction labels of bars before a cut-off (a baseline with no
  pretraining).
- The features themselves (for rule-based baselines and components that need
  some representation).

Representations that take a while (encoders) are cached on disk, keyed by
the hashes of everything they are computed from.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from engine.atomic import atomic_path, write_text
from engine.data.features import compute_features
from engine.errors import ConfigError, DataError
from engine.models.registry import Registry, content_hash
from engine.scaling import Standardiser
from engine.ssl.card import BLOCK_BARS
from engine.strategy.features import direction_labels

if TYPE_CHECKING:
    from engine.ssl.base import Encoder
    from engine.ssl.folder import PretrainedModel

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


class CacheWarning(UserWarning):
    """A cached value was missing its record or did not match it, and was recomputed."""


def cached(cache_dir: Path | None, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """Return ``compute()``, loading it from or saving it to ``cache_dir/embeddings/key.npy``.

    Beside each array a JSON record holds its key, SHA-256, shape and dtype. An
    array whose file is unreadable, lacks its record, does not match it, or
    holds non-finite values is recomputed and rewritten, with a
    ``CacheWarning``. Non-finite results are returned but not cached.
    ``cache_dir=None`` disables the cache.
    """
    if cache_dir is None:
        return compute()
    path = cache_dir / "embeddings" / f"{key}.npy"
    record = path.with_suffix(".json")
    if path.exists() or record.exists():
        values, problem = _read_cached(path, record, key)
        if values is not None:
            return values
        warnings.warn(f"cache {path}: {problem}; recomputing it", CacheWarning, stacklevel=2)
    values = compute()
    if np.issubdtype(values.dtype, np.number) and np.isfinite(values).all():
        with atomic_path(path) as tmp, tmp.open("wb") as handle:
            np.save(handle, values, allow_pickle=False)
        entry = {
            "key": key,
            "sha256": hash_files(path),
            "shape": list(values.shape),
            "dtype": values.dtype.str,
        }
        write_text(record, json.dumps(entry) + "\n")
    return values


def _read_cached(path: Path, record: Path, key: str) -> tuple[np.ndarray | None, str]:
    # The cached array at ``path`` if its record vouches for it, else None and why not.
    values, problem = None, _cache_problem(path, record, key)
    if not problem:
        values = np.load(path, allow_pickle=False)
        if not np.isfinite(values).all():
            values, problem = None, "it holds non-finite values"
    return values, problem


def _cache_problem(path: Path, record: Path, key: str) -> str:
    # Why the array at ``path`` does not match its record; empty if it does.
    try:
        entry = json.loads(record.read_text(encoding="utf-8"))
        expected = {k: entry[k] for k in ("key", "sha256", "shape", "dtype")}
    except (OSError, ValueError, TypeError, KeyError):
        return f"its record {record.name} is missing or unreadable"
    if expected["key"] != key:
        return f"its record is of key {expected['key']!r}"
    try:
        if hash_files(path) != expected["sha256"]:
            return "its checksum does not match its record"
        values = np.load(path, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError) as exc:
        return f"unreadable ({exc})"
    held = [values.dtype.str, list(values.shape)]
    if held != [expected["dtype"], expected["shape"]] or not np.issubdtype(values.dtype, np.number):
        return f"it holds {held[0]} {held[1]}, its record {expected['dtype']} {expected['shape']}"
    return ""


def bar_numbers(candles: pd.DataFrame, interval_ms: int) -> np.ndarray:
    """Return the absolute number of each bar, ``timestamp // interval_ms``.

    Encoders encode series in blocks aligned on these numbers (see
    ``engine.ssl.infer``), so a bar's representation does not depend on where
    its series starts.
    """
    return candles["timestamp"].to_numpy() // interval_ms


def model_features(model: PretrainedModel) -> tuple[list[str], str]:
    """Return the extras and the feature set the model's card says it was pretrained on.

    Cards written before feature sets existed hold raw features.
    """
    spec = model.card["features"]
    return list(spec.get("extras", [])), spec.get("set", "raw")


def model_feature_matrix(model: PretrainedModel, candles: pd.DataFrame) -> np.ndarray:
    """Return the causal features of ``candles`` that the model reads, before normalisation.

    Raises
    ------
    DataError
        If the engine computes other features than the card names.
    """
    features, names = compute_features(candles, *model_features(model))
    if names != model.feature_names:
        raise DataError(
            f"model {model.name} was trained on features {model.feature_names}; "
            f"the engine computes {names} for it"
        )
    return features


def model_representations(
    model: PretrainedModel, candles: pd.DataFrame, interval_ms: int, start: int = 0
) -> np.ndarray:
    """Return the encoder's causal representation of the bars from row ``start`` on.

    ``interval_ms`` is the length of a bar; earlier rows are context only (see
    ``engine.ssl.infer.encode_series``). Returns (T - start) x D, float32.
    """
    features = model_feature_matrix(model, candles)
    return model.embed(features, bar_numbers(candles, interval_ms), start)


def load_unseen_model(
    models_dir: Path, name: str, first_bar_ms: int | None, what: str
) -> PretrainedModel:
    """Return the model version ``name`` (``NAME`` or ``NAME@VERSION``) names in ``models_dir``.

    The model is refused if it saw the bar at ``first_bar_ms``; ``what`` names
    the range that starts there in the error message (for example
    ``"out_of_sample.start"``). ``first_bar_ms=None`` skips that check, for
    choosing among encoders on bars they saw unlabelled. The model's ``name``
    is the exact version, ``NAME@VERSION``.

    Raises
    ------
    ConfigError
        If there is no such model or version (see ``Registry.resolve``), or
        its card says the model was pretrained on bars at or after
        ``first_bar_ms``.
    """
    model = Registry(models_dir).load(name)
    unseen_from = pd.Timestamp(model.spec.unseen_from)
    if first_bar_ms is not None and first_bar_ms < unseen_from.value // 1_000_000:
        raise ConfigError(
            f"{what} {pd.Timestamp(first_bar_ms, unit='ms', tz='UTC').date()} overlaps the "
            f"pretraining range of {model.name}: its card says bars from "
            f"{unseen_from.isoformat()} on were never seen; start the range there or later"
        )
    return model


def model_hash(model: PretrainedModel) -> str:
    """Return the SHA-256 of the model folder's weights and card."""
    return content_hash(model.path)


def cached_model_representations(
    model: PretrainedModel, candles: pd.DataFrame, interval_ms: int, cache_dir: Path | None
) -> np.ndarray:
    """Return ``model_representations`` of every bar, cached by model, candles and block layout."""
    key = cache_key(f"model-{model_hash(model)[:20]}", candles)
    return cached(cache_dir, key, lambda: model_representations(model, candles, interval_ms))


def cache_key(prefix: str, candles: pd.DataFrame) -> str:
    """Return the cache key of a representation of ``candles`` made as ``prefix`` says.

    The key holds the prefix (the kind, and the hash of the model or the
    settings), the candles' hash and the encoding's block length.
    """
    return f"{prefix}-{hash_candles(candles)[:20]}-blocks{BLOCK_BARS}"


def train_supervised_encoder(
    scaled: np.ndarray,
    labels: np.ndarray,
    rows: slice,
    architecture: str,
    params: dict,
    iters: int,
    crop_length: int,
    seed: int,
) -> Encoder:
    """Return an encoder and linear head trained with cross-entropy on labelled rows.

    Every training crop is ``crop_length`` consecutive rows inside ``rows`` of
    the normalised features ``scaled`` (T x F, float32); every row of a crop
    carries its three-class label from ``labels``, which must be known (>= 0)
    on ``rows``. The encoder (``architecture`` with ``params``) is returned in
    eval mode; the head is discarded.
    """
    import torch

    from engine.ssl.registry import build_encoder

    start, stop = rows.start or 0, rows.stop
    if stop - start < crop_length:
        raise DataError(
            f"supervised training needs at least crop_length={crop_length} labelled bars, "
            f"got {max(stop - start, 0)}"
        )
    if (labels[start:stop] < 0).any():
        raise DataError("supervised training rows reach past the last labelled bar")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    encoder = build_encoder(architecture, scaled.shape[1], **params)
    head = torch.nn.Linear(encoder.output_dims, 3)
    optimiser = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=1e-3)
    x_all = torch.from_numpy(np.ascontiguousarray(scaled[start:stop], dtype=np.float32))
    y_all = torch.from_numpy(labels[start:stop])
    encoder.train()
    for _ in range(iters):
        starts = torch.randint(0, stop - start - crop_length + 1, (8,), generator=generator)
        crop = starts[:, None] + torch.arange(crop_length)[None, :]
        logits = head(encoder(x_all[crop]))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 3), y_all[crop].reshape(-1))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return encoder.eval()


@dataclass(frozen=True)
class SupervisedEncoder:
    """An encoder trained supervised from scratch, with the feature scaling it was trained on."""

    encoder: Encoder
    scale: Standardiser
    extras: list[str]

    def features(self, candles: pd.DataFrame) -> np.ndarray:
        """Return the scaled features of ``candles`` that the encoder reads (T x F, float32)."""
        return self.scale(compute_features(candles, self.extras)[0]).astype(np.float32)


def train_supervised(
    candles: pd.DataFrame,
    fit_stop: int,
    architecture: str,
    params: dict,
    extras: list[str],
    iters: int,
    crop_length: int,
    horizon: int,
    threshold: float,
    seed: int,
) -> SupervisedEncoder:
    """Return an encoder trained supervised from scratch on the bars before ``fit_stop``.

    The encoder (``architecture`` with ``params``) and a linear head are
    trained with cross-entropy on the three-class direction label of every
    bar of random crops of rows before ``fit_stop - horizon`` (so every label
    is known by ``fit_stop``); features are z-scored with those rows'
    statistics (see ``train_supervised_encoder``).
    """
    features, _ = compute_features(candles, extras)
    usable = max(fit_stop - horizon, 0)
    scale = Standardiser.fit(features[: max(usable, 1)])
    labels = direction_labels(candles["close"].to_numpy()[:fit_stop], horizon, threshold)
    encoder = train_supervised_encoder(
        scale(features).astype(np.float32),
        labels,
        slice(0, usable),
        architecture,
        params,
        iters,
        crop_length,
        seed,
    )
    return SupervisedEncoder(encoder, scale, list(extras))


def finetune_model(
    model: PretrainedModel,
    candles: pd.DataFrame,
    interval_ms: int,
    fit: slice,
    horizon: int,
    threshold: float,
    settings: dict,
    seed: int,
) -> Encoder:
    """Return ``model``'s encoder fine-tuned on the direction labels of the rows ``fit``.

    The encoder and an MLP head are fine-tuned (``engine.ssl.finetune``) on
    the three-class labels of the rows of ``fit`` whose horizon ends inside
    it, the last 20% of them early-stopping the rest (``horizon`` rows apart);
    no bar from ``fit.stop`` on is read. ``settings`` holds ``finetune``'s
    keyword arguments (mode, iterations, ...). The tuned encoder reads the
    model's normalised features.
    """
    from engine.ssl.finetune import finetune

    features = model.normalise(model_feature_matrix(model, candles.iloc[: fit.stop]))
    labels = direction_labels(candles["close"].to_numpy()[: fit.stop], horizon, threshold)
    usable = fit.stop - horizon
    validation = max(1, (usable - fit.start) // 5)
    tuned = finetune(
        model.encoder,
        features,
        labels,
        slice(fit.start, usable - validation - horizon),
        slice(usable - validation, usable),
        bars=bar_numbers(candles, interval_ms)[: fit.stop],
        seed=seed,
        **settings,
    )
    return tuned.encoder


def finetuned_representations(
    model: PretrainedModel,
    candles: pd.DataFrame,
    interval_ms: int,
    fit: slice,
    horizon: int,
    threshold: float,
    settings: dict,
    seed: int,
) -> np.ndarray:
    """Return the causal representation of ``model`` fine-tuned on the direction labels of ``fit``.

    See ``finetune_model``. Returns the tuned encoder's encoding of every bar
    (T x D, float32), as for a pretrained encoder.
    """
    from engine.ssl.infer import encode_series

    tuned = finetune_model(model, candles, interval_ms, fit, horizon, threshold, settings, seed)
    features = model.normalise(model_feature_matrix(model, candles))
    return encode_series(tuned, features, bar_numbers(candles, interval_ms))


@dataclass(frozen=True)
class PcaBasis:
    """PCA of a trailing window of scaled features, fitted on the bars before a cut-off.

    Attributes
    ----------
    scale : Standardiser
        The features' z-scoring, with the statistics of the fitting rows.
    center, components : np.ndarray
        The PCA's mean and its components (dims x window * F).
    window : int
        Bars per window.
    extras : list of str
        The optional features.
    """

    scale: Standardiser
    center: np.ndarray
    components: np.ndarray
    window: int
    extras: list[str]

    def apply(self, candles: pd.DataFrame, start: int = 0) -> np.ndarray:
        """Return the PCA components of the windows ending at rows ``start`` on (float32).

        Rows before ``window - 1`` see zeros for the missing bars. Each row is
        projected by its own matrix-vector product, so a row's bits do not
        depend on how many rows are projected with it.
        """
        scaled = self.scale(compute_features(candles, self.extras)[0])
        padded = np.vstack([np.zeros((self.window - 1, scaled.shape[1])), scaled])
        lagged = np.lib.stride_tricks.sliding_window_view(padded, self.window, axis=0)
        lagged = lagged.reshape(len(scaled), -1)[start:] - self.center
        out = np.empty((len(lagged), len(self.components)), np.float32)
        for row, values in enumerate(lagged):
            out[row] = self.components @ values
        return out


def fit_pca(
    candles: pd.DataFrame, fit_stop: int, window: int, dims: int, extras: list[str]
) -> PcaBasis:
    """Return the PCA of the last ``window`` bars' features, fitted on rows before ``fit_stop``.

    The standardisation and the PCA are fitted on those rows only.
    """
    features, _ = compute_features(candles.iloc[:fit_stop], extras)
    if fit_stop <= window:
        raise DataError(
            f"PCA needs more than window={window} bars before the fitting cut-off, got {fit_stop}"
        )
    scale = Standardiser.fit(features)
    lagged = np.lib.stride_tricks.sliding_window_view(scale(features), window, axis=0)
    lagged = lagged.reshape(len(lagged), -1)
    pca = PCA(n_components=min(dims, lagged.shape[1]), random_state=0).fit(lagged)
    return PcaBasis(scale, pca.mean_, pca.components_, window, list(extras))


def pca_representations(
    candles: pd.DataFrame, fit_stop: int, window: int, dims: int, extras: list[str]
) -> np.ndarray:
    """Return PCA components of the last ``window`` bars' features (T x dims).

    The standardisation and the PCA are fitted on rows before ``fit_stop``
    only (``fit_pca``); rows before ``window - 1`` see zeros for the missing bars.
    """
    return fit_pca(candles, fit_stop, window, dims, extras).apply(candles)


def feature_representations(candles: pd.DataFrame, extras: list[str]) -> np.ndarray:
    """Return the causal candle features as the representation (T x F)."""
    return compute_features(candles, extras)[0]
