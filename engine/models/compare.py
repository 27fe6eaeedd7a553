"""What tells two model versions apart: their configuration, data and metrics.

``diff_cards`` flattens two model cards into dotted keys and returns, per
section, the keys whose values differ:

- ``config``: the pretraining config, the encoder and the training settings;
- ``data``: the candles (series, files, hashes, ranges) and the features with
  their normalisation statistics;
- ``metrics``: what training measured (final and best loss, time);
- ``lineage``: parent, origin and creation time.
"""

from __future__ import annotations

import json
from typing import Any

_METRICS = ("final_loss", "seconds", "seconds_per_iteration", "resumed_from")

Difference = tuple[str, Any, Any]


def card_sections(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the card's values by section (``config``, ``data``, ``metrics``, ``lineage``)."""
    training = dict(card.get("training") or {})
    curve = training.pop("loss_curve", None) or []
    metrics = {key: training.pop(key) for key in _METRICS if key in training}
    if curve:
        metrics["best_loss"] = min(curve)
    return {
        "config": flatten(
            {"config": card.get("config"), "encoder": card.get("encoder"), "training": training}
        ),
        "data": flatten({"data": card.get("data"), "features": card.get("features")}),
        "metrics": flatten(metrics),
        "lineage": flatten(card.get("lineage") or {}),
    }


def diff_cards(a: dict[str, Any], b: dict[str, Any]) -> dict[str, list[Difference]]:
    """Return, per section, ``(key, value in a, value in b)`` for every key whose values differ.

    A key absent from one card has the value None there.
    """
    left, right = card_sections(a), card_sections(b)
    out = {}
    for section in left:
        keys = sorted(set(left[section]) | set(right[section]))
        out[section] = [
            (key, left[section].get(key), right[section].get(key))
            for key in keys
            if left[section].get(key) != right[section].get(key)
        ]
    return out


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Return ``value`` as a flat mapping of dotted keys to scalars.

    Nested objects give dotted keys, lists of objects one key per item
    (``key[0].name``), and lists of scalars one compact JSON value.
    """
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        out = {}
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{index}]"))
        return out
    if isinstance(value, list):
        return {prefix: json.dumps(value)}
    return {prefix: value}
