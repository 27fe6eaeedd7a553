"""A strategy's representation of its bars: of a whole series, and of its newest bar alone.

``strategy_representation`` reads a strategy's encoder or ``representation``
and fits what needs fitting on the bars before its cut-off (a PCA basis, an
encoder trained supervised or fine-tuned). The result gives every bar's
representation at once (``series``, what a backtest computes) or the newest
bar's from a tail of the bars up to it (``newest``, what a paper session
computes per closed bar). The two are bit-identical for a bar:

- features are computed over a tail that starts ``settle_bars`` before the
  first bar they are needed for, after which they do not depend on where a
  series starts (``engine.data.features``);
- scalings are elementwise, with statistics fitted once;
- an encoder encodes the bar's block window with the bars after it left as
  zeros, one forward pass of the same shape as the backtest's pass over that
  block, on one thread (``engine.ssl.infer``); an encoder with an unbounded
  receptive field is the exception: it is run over the whole history, whose
  length differs from the backtest's;
- a PCA projects each row by its own matrix-vector product.

Representations that take a while (encoders) are cached by ``series`` under
``cache_dir``, keyed by the hashes of the model (or settings) and of the
candles, and by the encoding's block length. An encoder trained for the
representation is trained once, when first needed.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from functools import cache, cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from engine.config import FinetuneSpec, StrategyConfig
from engine.data.features import settle_bars
from engine.data.symbols import timeframe_ms
from engine.data.times import day_range_ms, day_start_ms
from engine.errors import ConfigError
from engine.ssl.threads import one_torch_thread
from engine.strategy.representations import (
    PcaBasis,
    bar_numbers,
    cache_key,
    cached,
    feature_representations,
    finetune_model,
    fit_pca,
    load_unseen_model,
    model_feature_matrix,
    model_features,
    model_hash,
    train_supervised,
)

if TYPE_CHECKING:
    from engine.ssl.base import Encoder
    from engine.ssl.folder import PretrainedModel


class Representation(ABC):
    """A fitted representation of one asset's bars.

    ``source`` describes it (model, settings' hash) for the run folder.
    """

    source: dict

    @abstractmethod
    def series(self, candles: pd.DataFrame) -> np.ndarray:
        """Return the representation of every bar of ``candles`` (T x D)."""

    @abstractmethod
    def tail_bars(self) -> int | None:
        """Return how many bars, the newest included, ``newest`` reads; None: all of them."""

    @abstractmethod
    def newest(self, tail: pd.DataFrame) -> np.ndarray:
        """Return the representation of the last bar of ``tail`` (D,)."""


class Features(Representation):
    """The candle features themselves."""

    def __init__(self, extras: list[str]) -> None:
        self.extras, self.source = extras, {"representation": "features"}

    def series(self, candles: pd.DataFrame) -> np.ndarray:
        """Return every bar's features."""
        return feature_representations(candles, self.extras)

    def tail_bars(self) -> int:
        """Return the bar and the bars its features settle over."""
        return 1 + settle_bars(self.extras)

    def newest(self, tail: pd.DataFrame) -> np.ndarray:
        """Return the last bar's features."""
        return feature_representations(tail, self.extras)[-1]


class Projected(Representation):
    """PCA of a trailing window of features, fitted on the bars before the cut-off."""

    def __init__(self, basis: PcaBasis) -> None:
        self.basis, self.source = basis, {"representation": "pca"}

    def series(self, candles: pd.DataFrame) -> np.ndarray:
        """Return every bar's components."""
        return self.basis.apply(candles)

    def tail_bars(self) -> int:
        """Return the bar's window and the bars its first row's features settle over."""
        return self.basis.window + settle_bars(self.basis.extras)

    def newest(self, tail: pd.DataFrame) -> np.ndarray:
        """Return the last bar's components."""
        return self.basis.apply(tail, len(tail) - 1)[0]


class Encoded(Representation):
    """An encoder's causal encoding of (scaled) candle features.

    Parameters
    ----------
    encoder : callable
        Returns the encoder; called once, when the encoder is first needed.
    features : callable
        Maps candles to the features the encoder reads.
    settle : int
        Bars the features settle over.
    interval_ms : int
        The bar interval.
    cache_prefix : str
        The start of the cache key (``engine.strategy.representations.cache_key``).
    cache_dir : Path, optional
        Where ``series`` caches its result; None: no cache.
    source : dict
        The description of the representation.
    """

    def __init__(
        self,
        encoder: Callable[[], Encoder],
        features: Callable[[pd.DataFrame], np.ndarray],
        settle: int,
        interval_ms: int,
        cache_prefix: str,
        cache_dir: Path | None,
        source: dict,
    ) -> None:
        self._make, self.features, self.settle = encoder, features, settle
        self.interval, self.cache_prefix, self.cache_dir = interval_ms, cache_prefix, cache_dir
        self.source = source

    @cached_property
    def encoder(self) -> Encoder:
        """Return the encoder, made (trained) on first use, on one torch thread.

        Training's bits depend on the number of threads, as encoding's do: on
        one thread, a session trains the encoder ``engine run`` trains.
        """
        with one_torch_thread():
            return self._make()

    def series(self, candles: pd.DataFrame) -> np.ndarray:
        """Return every bar's encoding, cached by the settings, the candles and the blocks."""
        key = cache_key(self.cache_prefix, candles)
        return cached(self.cache_dir, key, lambda: self._encode(candles, 0))

    def tail_bars(self) -> int | None:
        """Return the bar's block window and the bars its first row's features settle over."""
        from engine.ssl.infer import window_bars

        window = window_bars(self.encoder)
        return None if window is None else window + self.settle

    def newest(self, tail: pd.DataFrame) -> np.ndarray:
        """Return the last bar's encoding, from its block window."""
        return self._encode(tail, len(tail) - 1)[0]

    def _encode(self, candles: pd.DataFrame, start: int) -> np.ndarray:
        # The encoding of rows `start` on, the earlier rows as context.
        from engine.ssl.infer import encode_series

        bars = bar_numbers(candles, self.interval)
        return encode_series(self.encoder, self.features(candles), bars, start)


def model_encoding(model: PretrainedModel, interval_ms: int, cache_dir: Path | None) -> Encoded:
    """Return a pretrained model's encoding of its normalised features, cached by its hash."""
    digest = model_hash(model)
    return Encoded(
        lambda: model.encoder,
        lambda c: model.normalise(model_feature_matrix(model, c)),
        settle_bars(*model_features(model)),
        interval_ms,
        f"model-{digest[:20]}",
        cache_dir,
        {"model": model.name, "model_sha256": digest},
    )


def strategy_representation(
    config: StrategyConfig,
    candles: pd.DataFrame,
    start_ms: int,
    models_dir: Path,
    cache_dir: Path | None,
) -> Representation:
    """Return the strategy's representation of one asset, fitted on ``candles`` before its cut-off.

    ``start_ms`` is the first bar acted on: an encoder must not have seen it,
    and a representation's fitting range (``representation.fit_end``) must
    end before it.

    Raises
    ------
    ConfigError
        If a model is missing or saw ``start_ms``, or the fitting range ends
        after it.
    """
    interval = timeframe_ms(config.market.timeframe)
    if config.encoder is not None:
        model = load_unseen_model(models_dir, config.encoder, start_ms, "out_of_sample.start")
        return model_encoding(model, interval, cache_dir)
    spec = config.representation
    if spec.kind == "features":
        return Features(spec.extras)
    cut = day_range_ms(spec.fit_end, spec.fit_end)[1]
    if cut > start_ms:
        raise ConfigError(
            f"representation.fit_end {spec.fit_end} must be before out_of_sample.start"
        )
    fit_stop = int(np.searchsorted(candles["timestamp"].to_numpy(), cut))
    if spec.kind == "pca":
        return Projected(fit_pca(candles, fit_stop, spec.window, spec.dims, spec.extras))
    if spec.kind == "finetuned":
        return _finetuned(config, candles, start_ms, fit_stop, models_dir, cache_dir)
    settings = hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:20]
    train = cache(
        partial(
            train_supervised,
            candles,
            fit_stop,
            spec.architecture,
            spec.params,
            spec.extras,
            spec.iters,
            spec.crop_length,
            spec.horizon,
            spec.threshold,
            config.seed,
        )
    )
    return Encoded(
        lambda: train().encoder,
        lambda c: train().features(c),
        settle_bars(spec.extras),
        interval,
        f"supervised-{settings}",
        cache_dir,
        {"representation": "supervised", "settings_sha256": settings},
    )


def _finetuned(
    config: StrategyConfig,
    candles: pd.DataFrame,
    start_ms: int,
    fit_stop: int,
    models_dir: Path,
    cache_dir: Path | None,
) -> Representation:
    # The strategy's encoder fine-tuned on the labelled bars fit_start..fit_end, cached by
    # the settings, the model and the candles.
    spec = config.representation
    model = load_unseen_model(models_dir, spec.encoder, start_ms, "out_of_sample.start")
    first = int(np.searchsorted(candles["timestamp"].to_numpy(), day_start_ms(spec.fit_start)))
    digest = model_hash(model)
    settings = hashlib.sha256(f"{spec.model_dump_json()}|{digest}|{config.seed}".encode())
    interval = timeframe_ms(config.market.timeframe)
    source = {"representation": "finetuned", "model": model.name}
    return Encoded(
        lambda: finetune_model(
            model,
            candles,
            interval,
            slice(first, fit_stop),
            spec.horizon,
            spec.threshold,
            spec.model_dump(include=set(FinetuneSpec.model_fields)),
            config.seed,
        ),
        lambda c: model.normalise(model_feature_matrix(model, c)),
        settle_bars(*model_features(model)),
        interval,
        f"finetuned-{settings.hexdigest()[:20]}",
        cache_dir,
        {**source, "settings_sha256": settings.hexdigest()[:20], "model_sha256": digest},
    )
