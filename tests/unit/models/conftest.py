"""A tiny encoder and its card, for registry tests."""

from __future__ import annotations

import pytest
import torch

from engine.ssl.ts2vec import TS2Vec

CONFIG = {"input_dims": 2, "output_dims": 4, "hidden_dims": 4, "depth": 1, "causal": True}


def tiny_card(name: str = "tiny", unseen: str = "2025-01-01T00:00:00Z") -> dict:
    """Return a card that fits ``tiny_encoder``: two unnormalised features, one data range."""
    return {
        "name": name,
        "kind": "ts2vec",
        "data": {
            "first_bar_utc": "2024-01-01T00:00:00Z",
            "last_bar_utc": "2024-12-31T23:00:00Z",
            "unseen_from_utc": unseen,
        },
        "features": {"names": ["a", "b"], "normalisation": "none"},
        "encoder": {"kind": "ts2vec", "config": {**CONFIG, "temporal_unit": 0, "alpha": 0.5}},
    }


def tiny_encoder(seed: int = 0) -> TS2Vec:
    """Return a TS2Vec of 2 inputs and 4 outputs, initialised from ``seed``."""
    torch.manual_seed(seed)
    return TS2Vec(**CONFIG).eval()


@pytest.fixture
def card():
    """Return ``tiny_card``."""
    return tiny_card


@pytest.fixture
def encoder():
    """Return ``tiny_encoder``."""
    return tiny_encoder
