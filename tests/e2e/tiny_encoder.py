"""A tiny TS2Vec model folder and strategies that re-tune it walk-forward, for fast tests."""

from __future__ import annotations

from pathlib import Path

import torch
from paper_replays import REPO_ROOT, _config

from engine.config import StrategyConfig
from engine.models.registry import Registry
from engine.ssl.ts2vec import TS2Vec

TINY = {"input_dims": 6, "output_dims": 8, "hidden_dims": 8, "depth": 2, "temporal_unit": 0}
#: Short tuning: a refit takes well under a second.
REFIT = {
    "fit_bars": 1500,
    "iters": 20,
    "eval_every": 10,
    "batch_size": 4,
    "crop_length": 128,
    "loss_bars": 64,
    "mode": "full",
}


def tiny_model(models_dir: Path) -> Path:
    """Publish the model ``tiny`` in ``models_dir``: the shipped TS2Vec's card, a tiny encoder."""
    card = dict(Registry(REPO_ROOT / "models").resolve("ts2vec_bybit_1h").card)
    card.pop("lineage", None)
    card["name"] = "tiny"
    torch.manual_seed(0)
    encoder = TS2Vec(**TINY).eval()
    card["encoder"] = {"kind": "ts2vec", "config": encoder.config()}
    Registry(models_dir).publish("tiny", encoder, card)
    return models_dir


def tiny_strategy(start: str, end: str, every: int | None, policy: str = "alert") -> StrategyConfig:
    """Return ssl_cost on the tiny encoder, re-tuned every ``every`` bars and on drift."""
    config = _config(start, end)
    spec = config.model_dump(by_alias=True)
    spec.update(encoder="tiny", representation=None)
    spec["encoder_refit"] = {**REFIT, "every": every}
    spec["drift"] = {"window": 48, "stride": 12, "reference_bars": 128, "psi": 0.1}
    spec["drift"]["policy"] = policy
    return StrategyConfig(**spec)
