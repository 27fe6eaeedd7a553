"""Pretrain an encoder from a config file into a model folder.

``pretrain(config)`` runs the whole path of ``engine pretrain``:

1. load the candles of every series from the store (validated, with the
   store's gap policy) and keep the bars whose open time lies in
   ``[start, end + 1 day)``, UTC; nothing after ``end`` is read into features.
   The series are the symbols of ``data`` and of each source in ``data.also``
   (each with its own exchange, market, bar size and range), so one encoder
   can learn from several exchanges and markets at once;
2. compute the causal features (``engine.data.features``, the configured
   feature set and extras) of each series on those bars;
3. normalise: with ``zscore``, subtract the mean and divide by the standard
   deviation of each feature over the pretraining bars of all series; the
   statistics are stored in the card and applied to any later input;
4. build the encoder with ``torch.manual_seed(seed)`` and train it
   (``engine.ssl.train``), checkpointing to ``<models_dir>/<name>/checkpoints/``
   and resuming from there after an interruption;
5. publish the averaged weights and ``card.json`` as a new version
   ``<models_dir>/<name>/<version>/`` (``engine.models.registry``).

Continued pretraining (``parent=NAME@VERSION``, ``until=DAY``) trains that
version further on the bars it never saw: every series from the parent's
``unseen_from_utc`` to the end of ``until`` (their features computed with the
earlier bars as causal context), normalised with the parent's statistics,
starting from the parent's weights, with the config's training settings. The
config must ask for the parent's features and encoder. Its checkpoints go to
``<models_dir>/<name>/checkpoints/from-<parent version>/``, so it resumes like
a pretraining, and the new version names the parent in its lineage.

The card holds the data files with their series, SHA-256 hashes and the
exact first and last bars used, the first instant never seen in pretraining
(``data.unseen_from_utc``, the latest over all series), the features and
their normalisation statistics, the encoder and training hyperparameters,
the loss curve, the library versions, the training time, the seed and the
config itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import platform
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.config import PretrainConfig, PretrainData, PretrainSource, SeriesSpec
from engine.data.features import compute_features
from engine.data.store import CandleStore, SeriesKey
from engine.data.times import day_range_ms, iso_utc
from engine.errors import ConfigError, DataError
from engine.models.registry import ModelVersion, Registry
from engine.scaling import Standardiser
from engine.ssl.folder import PretrainedModel
from engine.ssl.registry import build_encoder
from engine.ssl.train import Progress, paper_iterations, train
from engine.strategy.representations import model_features

CHECKPOINT_FOLDER = "checkpoints"
_LIBRARIES = ("ssl-engine", "torch", "numpy", "pandas", "pyarrow", "safetensors", "pydantic")


@dataclass(frozen=True)
class PretrainResult:
    """What ``pretrain`` wrote.

    Attributes
    ----------
    version : ModelVersion
        The new version in the registry (its folder, reference and card).
    card : dict
        The model card, as written to ``card.json``.
    """

    version: ModelVersion
    card: dict[str, Any]

    @property
    def folder(self) -> Path:
        """Return the version's folder, ``<models_dir>/<name>/<version>/``."""
        return self.version.path


@dataclass(frozen=True)
class _Series:
    key: SeriesKey
    file: Path
    timestamps: np.ndarray
    features: np.ndarray
    names: list[str]


def pretrain(
    config: PretrainConfig,
    *,
    models_dir: Path = Path("models"),
    resume: bool = True,
    progress: Progress | None = None,
    parent: str | None = None,
    until: dt.date | None = None,
) -> PretrainResult:
    """Pretrain the encoder ``config`` describes and publish it as a new version.

    With ``parent``, continue pretraining that version instead of starting
    afresh (see the module docstring).

    Parameters
    ----------
    config : PretrainConfig
        The parsed pretraining file.
    models_dir : Path
        The model registry; the version goes to ``models_dir / config.name``.
    resume : bool
        Continue from the last checkpoint of an interrupted run with the same
        config and data (and parent), if there is one.
    progress : callable or None
        Called as ``progress(iteration, iters, loss)`` after each iteration.
    parent : str or None
        ``NAME`` or ``NAME@VERSION`` of the version to continue from.
    until : date or None
        With ``parent``: the last day of the newer bars (inclusive, UTC);
        None reads to each series' last bar.

    Raises
    ------
    DataError
        If a series has no bars in its range, or a feature is constant.
    ConfigError
        If the encoder config is invalid, the checkpoint to resume belongs to
        another run, or (with ``parent``) the parent is unknown, reads other
        features or holds another encoder than ``config`` describes, or
        ``until`` is before the parent's first unseen day.
    """
    registry = Registry(models_dir)
    if parent is None:
        base, after_ms = None, None
    else:
        base = registry.load(parent)
        config, after_ms = _continued(config, base, until)
    series = [
        _load(config, source, symbol, after_ms)
        for source in _sources(config)
        for symbol in source.symbols
    ]
    names = series[0].names
    stacked = np.concatenate([s.features for s in series])
    if base is None:
        mean, std = _statistics(config, names, stacked)
    elif names != base.feature_names:
        raise DataError(
            f"{base.name} was trained on features {base.feature_names}; "
            f"the engine computes {names} for it"
        )
    else:
        mean, std = np.asarray(base.spec.features.mean), np.asarray(base.spec.features.std)
    if config.features.normalisation == "zscore":
        inputs = [Standardiser(mean, std)(s.features) for s in series]
    else:
        inputs = [s.features for s in series]

    torch.manual_seed(config.seed)
    encoder = build_encoder(config.encoder.kind, len(names), **config.encoder.params)
    if not encoder.causal:
        raise ConfigError(
            f"encoder.params: a non-causal {encoder.kind} encoder sees future bars; "
            "pretrained encoders must be causal"
        )
    checkpoints = models_dir / config.name / CHECKPOINT_FOLDER
    if base is not None:
        if encoder.kind != base.encoder.kind or encoder.config() != base.encoder.config():
            raise ConfigError(
                f"--from {base.name} holds a {base.encoder.kind} encoder with config "
                f"{base.encoder.config()}; the config describes a {encoder.kind} encoder with "
                f"config {encoder.config()}"
            )
        encoder.load_state_dict(base.encoder.state_dict())
        checkpoints = checkpoints / f"from-{base.path.name}"
    training = config.training
    iters = training.iters or paper_iterations(int(stacked.size))
    result = train(
        encoder,
        inputs,
        iters=iters,
        batch_size=training.batch_size,
        lr=training.lr,
        max_train_length=training.max_train_length,
        seed=config.seed,
        checkpoint_dir=checkpoints,
        checkpoint_every=training.checkpoint_every,
        resume=resume,
        progress=progress,
    )

    card = {
        "name": config.name,
        "kind": result.encoder.kind,
        "description": (
            f"{result.encoder.kind} encoder {'pretrained' if base is None else 'continued'} on "
            f"{'; '.join(_describe(source) for source in _sources(config))}; bars from "
            f"{_unseen_from(config, series)} on were never seen in pretraining"
        ),
        "data": _data_card(config, series),
        "features": {
            "names": names,
            "set": config.features.set,
            "extras": list(config.features.extras),
            "normalisation": config.features.normalisation,
            "mean": mean.tolist(),
            "std": std.tolist(),
        },
        "encoder": {
            "kind": result.encoder.kind,
            "config": result.encoder.config(),
            "parameters": sum(p.numel() for p in result.encoder.parameters()),
            "receptive_field": result.encoder.receptive_field(),
            "causal": True,
        },
        "training": {
            "iters": iters,
            "iters_rule": "config"
            if training.iters
            else "paper: 200 if <= 100,000 values else 600",
            "values": int(stacked.size),
            "batch_size": training.batch_size,
            "lr": training.lr,
            "optimizer": "AdamW",
            "weights": "running equal-weight average of all iterates (SWA-style)",
            "max_train_length": training.max_train_length,
            "checkpoint_every": training.checkpoint_every,
            "seed": config.seed,
            "seconds": round(result.seconds, 1),
            "seconds_per_iteration": round(result.seconds / iters, 4),
            "threads": torch.get_num_threads(),
            "resumed_from": result.resumed_from,
            "final_loss": result.losses[-1],
            "loss_curve": [round(loss, 5) for loss in result.losses],
        },
        "libraries": _libraries(),
        "config": config.model_dump(mode="json"),
    }
    version = registry.publish(
        config.name,
        result.encoder,
        card,
        parent=None if base is None else base.name,
        origin="pretrain" if base is None else "continue",
    )
    return PretrainResult(version=version, card=version.card)


def _statistics(
    config: PretrainConfig, names: list[str], stacked: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    # The z-score statistics of every feature over the pretraining bars of all series.
    mean, std = stacked.mean(axis=0), stacked.std(axis=0)
    if config.features.normalisation == "zscore":
        flat = [name for name, value in zip(names, std, strict=True) if not value > 0]
        if flat:
            raise DataError(
                f"feature(s) {', '.join(flat)} are constant over the pretraining data; "
                "they cannot be z-scored"
            )
    return mean, std


def _continued(
    config: PretrainConfig, base: PretrainedModel, until: dt.date | None
) -> tuple[PretrainConfig, int]:
    # The config of a continued pretraining: every source from the parent's first
    # unseen day to ``until``, the parent's features; and the first bar it may read.
    extras, feature_set = model_features(base)
    wanted = (config.features.set, list(config.features.extras), config.features.normalisation)
    had = (feature_set, extras, base.spec.features.normalisation)
    if wanted != had:
        raise ConfigError(
            f"--from {base.name} reads features (set, extras, normalisation) {had}; "
            f"the config asks for {wanted}"
        )
    unseen = base.spec.unseen_from.astimezone(dt.UTC)
    if until is not None and until < unseen.date():
        raise ConfigError(
            f"--until {until}: expected a day on or after {unseen.date()}, the first day "
            f"{base.name} never saw"
        )
    window = {"start": unseen.date(), "end": until}
    data = config.data.model_copy(
        update={**window, "also": [s.model_copy(update=window) for s in config.data.also]}
    )
    return config.model_copy(update={"data": data}), int(unseen.timestamp() * 1000)


def _sources(config: PretrainConfig) -> list[SeriesSpec]:
    return [config.data, *config.data.also]


def _describe(source: SeriesSpec) -> str:
    return (
        f"{source.exchange} {source.market} {source.timeframe} candles of "
        f"{', '.join(source.symbols)}"
    )


def _load(
    config: PretrainConfig,
    source: PretrainData | PretrainSource,
    symbol: str,
    after_ms: int | None = None,
) -> _Series:
    # The bars of one series in its range and their features. With ``after_ms`` (a
    # continued pretraining) the features of the bars from ``after_ms`` on are computed
    # with the earlier bars as their causal context.
    gaps = config.data.store.max_gap_bars
    if isinstance(source, PretrainSource) and source.max_gap_bars is not None:
        gaps = source.max_gap_bars
    store = CandleStore(config.data.store.path)
    key = SeriesKey(source.exchange, source.market, symbol, source.timeframe)
    candles = store.load(key, config.data.store.gap_policy, gaps)
    start, stop = day_range_ms(source.start, source.end)
    stamps = candles["timestamp"].to_numpy()
    keep = stamps >= start if after_ms is None else np.ones(len(candles), dtype=bool)
    if stop is not None:
        keep &= stamps < stop
    candles = candles[keep].reset_index(drop=True)
    features, names = compute_features(candles, config.features.extras, config.features.set)
    rows = candles["timestamp"].to_numpy() >= (start if after_ms is None else after_ms)
    if rows.sum() < 2:
        raise DataError(
            f"{store.path(key)}: {int(rows.sum())} bar(s) from {source.start} to "
            f"{source.end or 'the last bar'}; pretraining needs at least 2 per series"
        )
    return _Series(
        key, store.path(key), candles["timestamp"].to_numpy()[rows], features[rows], names
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unseen_from(config: PretrainConfig, series: list[_Series]) -> str:
    stops = [day_range_ms(source.start, source.end)[1] for source in _sources(config)]
    if any(stop is None for stop in stops):
        return iso_utc(max(int(s.timestamps[-1]) for s in series) + 1)
    return iso_utc(max(stops))


def _data_card(config: PretrainConfig, series: list[_Series]) -> dict[str, Any]:
    data = config.data
    return {
        "store": str(CandleStore(data.store.path).root),
        "exchange": data.exchange,
        "market": data.market,
        "timeframe": data.timeframe,
        "symbols": list(data.symbols),
        "start": data.start.isoformat(),
        "end": None if data.end is None else data.end.isoformat(),
        "also": [source.model_dump(mode="json") for source in data.also],
        "first_bar_utc": iso_utc(min(int(s.timestamps[0]) for s in series)),
        "last_bar_utc": iso_utc(max(int(s.timestamps[-1]) for s in series)),
        "unseen_from_utc": _unseen_from(config, series),
        "bars": int(sum(len(s.timestamps) for s in series)),
        "files": [
            {
                "exchange": s.key.exchange,
                "market": s.key.market,
                "symbol": s.key.symbol,
                "timeframe": s.key.timeframe,
                "file": s.file.name,
                "sha256": _sha256(s.file),
                "bars": len(s.timestamps),
                "first_bar_utc": iso_utc(int(s.timestamps[0])),
                "last_bar_utc": iso_utc(int(s.timestamps[-1])),
            }
            for s in series
        ],
    }


def _libraries() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
