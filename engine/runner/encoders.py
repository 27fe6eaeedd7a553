"""The encoder walk-forward: the strategy's encoder re-tuned at refit blocks, on bars before them.

With an ``encoder_refit`` section, the pretrained encoder is fine-tuned
(``engine.strategy.representations.finetune_model``) at the start r of a refit
block when ``encoder_due`` says so: ``every`` bars or more after the last
encoder refit (the pretrained encoder counts as tuned at the out-of-sample
start), or after a block the drift policy ``retrain_encoder`` ended. It is
tuned on the direction labels of the ``fit_bars`` bars before r, reading the
candles before r only: they are all the function is given. From r on, until
the next encoder refit, that version encodes every bar, and the components
are refitted on its representations of their fitting window. Encodings are
aligned on absolute bar numbers (``engine.ssl.infer``), so a backtest's
encoding of the whole series and a paper session's encoding of its recent
bars give the same rows bit for bit.

Each tuned encoder is a version, named by ``weights_version`` (a content hash
of its weights), and its weights are cached under the representation cache
with their lineage (the parent ``name@version``, the bars read, the first bar
never seen), keyed by the pretrained model, the settings, the seed and the
candles it read: a backtest or a resumed session that needs it again loads
it instead of tuning it (tuning is deterministic, on one thread, so both give
the same weights); cached weights that do not load are tuned again, with a
warning. A backtest records each version with the bar it took effect, its
parent and the seconds it took; a paper session tunes between bars
(``BarStepper.prepare``) and journals the version with the first bar it
encodes.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from engine.config import EncoderRefitConfig, FinetuneSpec, StrategyConfig
from engine.data.symbols import timeframe_ms
from engine.data.times import iso_utc
from engine.errors import DataError
from engine.runner.representation import Encoded, model_encoding
from engine.strategy.base import History
from engine.strategy.representations import (
    CacheWarning,
    finetune_model,
    hash_candles,
    model_hash,
    model_representations,
)

if TYPE_CHECKING:
    from engine.ssl.base import Encoder
    from engine.ssl.folder import PretrainedModel


@dataclass(frozen=True)
class EncoderVersion:
    """One version of the encoder: from which bar it encodes, its name, and its refit's time.

    Attributes
    ----------
    bar : int
        The row of the first bar it encodes (a block start).
    version : str
        Its version (``weights_version``).
    seconds : float
        Seconds the refit took: tuning (or loading from the cache) and encoding.
    """

    bar: int
    version: str
    seconds: float


def weights_version(encoder: Encoder) -> str:
    """Return the version of an encoder's weights: the first 12 hex digits of their SHA-256."""
    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def encoder_due(spec: EncoderRefitConfig, block: int, last: int, retrain: bool) -> bool:
    """Return whether the encoder is re-tuned before the block starting at row ``block``.

    ``last`` is the row of the last encoder refit and ``retrain`` whether the
    drift policy ``retrain_encoder`` ended the previous block.
    """
    return retrain or (spec.every is not None and block - last >= spec.every)


class EncoderWalk:
    """Tunes a strategy's pretrained encoder at block starts, caching the tuned weights.

    Parameters
    ----------
    config : StrategyConfig
        The strategy; its ``encoder_refit`` says how to tune.
    model : PretrainedModel
        The pretrained encoder.
    cache_dir : Path, optional
        Where tuned weights are cached; None: never cached (the audit).
    """

    def __init__(
        self, config: StrategyConfig, model: PretrainedModel, cache_dir: Path | None
    ) -> None:
        self.spec = config.encoder_refit
        self.model, self.cache_dir, self.seed = model, cache_dir, config.seed
        self.interval = timeframe_ms(config.market.timeframe)
        self.settings = self.spec.model_dump(include=set(FinetuneSpec.model_fields))
        self.key = hashlib.sha256(
            f"{model_hash(model)}|{self.spec.model_dump_json()}|{config.seed}".encode()
        ).hexdigest()

    def due(self, block: int, last: int, retrain: bool) -> bool:
        """Return ``encoder_due`` for this strategy's settings."""
        return encoder_due(self.spec, block, last, retrain)

    def tune(self, known: pd.DataFrame) -> tuple[PretrainedModel, str]:
        """Return the encoder tuned on the labelled bars at the end of ``known``, and its version.

        ``known`` holds the candles before the block, and only those.
        """
        block = len(known)
        key = hashlib.sha256(f"{self.key}|{hash_candles(known)}".encode()).hexdigest()[:24]
        path = None if self.cache_dir is None else self.cache_dir / f"encoder-{key}.safetensors"
        encoder = None if path is None or not path.is_file() else self._cached(path)
        if encoder is None:
            spec = self.spec
            encoder = finetune_model(
                self.model,
                known,
                self.interval,
                slice(max(0, block - spec.fit_bars), block),
                spec.horizon,
                spec.threshold,
                self.settings,
                self.seed,
            )
            if path is not None:
                from engine.ssl.checkpoint import save_tensors

                save_tensors(path, encoder.state_dict(), self._lineage(known))
        return self.model.with_encoder(encoder.eval()), weights_version(encoder)

    def _lineage(self, known: pd.DataFrame) -> dict[str, str]:
        # Where a tuned version comes from: its parent and the bars it read.
        stamps = known["timestamp"]
        return {
            "parent": self.model.name,
            "origin": "refit",
            "first_bar_utc": iso_utc(int(stamps.iloc[0])),
            "last_bar_utc": iso_utc(int(stamps.iloc[-1])),
            "unseen_from_utc": iso_utc(int(stamps.iloc[-1]) + self.interval),
        }

    def _cached(self, path: Path) -> Encoder | None:
        # The tuned weights cached at `path`, or None (with a warning) if they do not load.
        from engine.ssl.checkpoint import load_tensors

        encoder = copy.deepcopy(self.model.encoder)
        try:
            encoder.load_state_dict(load_tensors(path)[0])
        except (DataError, RuntimeError) as exc:
            warnings.warn(f"{path}: {exc}; tuning again", CacheWarning, stacklevel=3)
            return None
        return encoder


def encoder_walk(
    config: StrategyConfig, model: PretrainedModel | None, cache_dir: Path | None
) -> EncoderWalk | None:
    """Return the strategy's encoder walk-forward, or None without ``encoder_refit``."""
    if config.encoder_refit is None or model is None:
        return None
    return EncoderWalk(config, model, cache_dir)


def timed_tune(
    walk: EncoderWalk,
    candles: pd.DataFrame,
    block: int,
    encode: Callable[[PretrainedModel], np.ndarray],
) -> tuple[PretrainedModel, np.ndarray, EncoderVersion]:
    """Tune at row ``block`` of ``candles`` and encode with ``encode(model)``, timing both.

    Only the candles before ``block`` reach the tuning. Returns the tuned
    model, what ``encode`` returned and the ``EncoderVersion``.
    """
    clock = time.perf_counter()
    model, version = walk.tune(candles.iloc[:block])
    encoded = encode(model)
    return model, encoded, EncoderVersion(block, version, time.perf_counter() - clock)


class BlockHistories:
    """The history each refit block of a backtest sees, with the encoder version of that block.

    ``at`` re-tunes the encoder when it is due and returns the history whose
    representations are the current version's; ``z_used`` holds, for every
    row, the representation of the version that was current at that row.

    Parameters
    ----------
    history : History
        The history with the pretrained encoder's representations.
    candles : DataFrame
        The same bars as candles.
    walk : EncoderWalk
        How to tune.
    anchor : int
        The row of the first block, where the pretrained encoder counts as tuned.
    """

    def __init__(
        self, history: History, candles: pd.DataFrame, walk: EncoderWalk, anchor: int
    ) -> None:
        self.history, self.candles, self.walk, self.last = history, candles, walk, anchor
        self.z_used = history.z.copy()
        self.versions: list[EncoderVersion] = []

    def at(self, block: int, retrain: bool) -> History:
        """Return the history block ``block`` sees, re-tuning first when it is due."""
        if self.walk.due(block, self.last, retrain):
            interval = self.walk.interval
            _, z, version = timed_tune(
                self.walk,
                self.candles,
                block,
                lambda model: model_representations(model, self.candles, interval),
            )
            self.history = dataclasses.replace(self.history, z=z)
            self.z_used[block:] = z[block:]
            self.last = block
            self.versions.append(version)
        return self.history


def tuned_representation(model: PretrainedModel, interval_ms: int) -> Encoded:
    """Return the representation a tuned version gives: ``model``'s encoding, never cached."""
    return model_encoding(model, interval_ms, None)
