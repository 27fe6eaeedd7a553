"""The encoders a config can name, by ``kind``."""

from __future__ import annotations

from typing import Any

from engine.errors import ConfigError
from engine.ssl.base import Encoder
from engine.ssl.cost import CoST
from engine.ssl.hybrid import Hybrid
from engine.ssl.mae import MaskedAutoencoder
from engine.ssl.tnc import TNC
from engine.ssl.ts2vec import TS2Vec

ENCODERS: dict[str, type[Encoder]] = {
    TS2Vec.kind: TS2Vec,
    TNC.kind: TNC,
    CoST.kind: CoST,
    MaskedAutoencoder.kind: MaskedAutoencoder,
    Hybrid.kind: Hybrid,
}


def build_encoder(kind: str, input_dims: int, **hyperparameters: Any) -> Encoder:
    """Build the encoder registered as ``kind``.

    Raises
    ------
    ConfigError
        If no encoder is registered as ``kind``, or its hyperparameters are
        unknown or invalid.
    """
    try:
        cls = ENCODERS[kind]
    except KeyError:
        known = ", ".join(sorted(ENCODERS))
        raise ConfigError(f"unknown encoder kind {kind!r}; expected one of: {known}") from None
    try:
        return cls(input_dims=input_dims, **hyperparameters)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"encoder {kind!r}: invalid hyperparameters: {exc}") from None
