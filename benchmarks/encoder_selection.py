"""Choose encoder configurations on validation data that ends before the test range.

A grid file (``configs/selection/*.yaml``) names base pretraining configs
(``configs/pretrain/<base>.yaml``), variants (keys that replace the base's,
merged key by key) tried on every base and more tried on one base only
(``per_base``), the last day of pretraining (``pretrain_end``) and a
validation evaluation file. For every base and variant this script writes the
candidate's pretraining config (every series cut at ``pretrain_end``),
pretrains it as a version in the registry ``<out>/models/`` (resuming, or
skipping a candidate that has a version), then evaluates every candidate
with the validation file, refusing any whose pretraining saw a validation bar. It prints, per
candidate, the probe accuracy and its paired difference to the raw features
on each series, and the mean difference over the series, which ranks the
variants of a base. Then, per base, it applies the rule: the variant with the
highest mean replaces the shipped configuration (the variant equal to
``configs/pretrain/<base>.yaml``) only if its mean is at least ``MARGIN``
points higher; a smaller margin is within the noise of one validation
half-year. Run::

    ENGINE_DATA_DIR=../shared/data python benchmarks/encoder_selection.py \\
        configs/selection/wide_1h.yaml [--only tnc_wide_1h] [--pretrain-only]

Two processes with disjoint ``--only`` lists and ``--pretrain-only`` share the
pretraining; a last call without ``--only`` evaluates every candidate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

import torch

from engine.atomic import write_text
from engine.config import EvaluateConfig, PretrainConfig, load_config
from engine.data.store import CandleStore
from engine.models.registry import Registry
from engine.pretraining import pretrain
from engine.research.evaluate import evaluate
from engine.safe_yaml import load_yaml
from engine.strategy.representations import default_cache_dir
from engine.threads import one_thread

REPO = Path(__file__).resolve().parents[1]
#: Points of mean difference to the raw features by which a variant must beat the shipped one.
MARGIN = 1.0


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``override``'s keys replaced, mappings merged key by key."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def candidate(base: str, variant: str, override: dict, end: dt.date) -> PretrainConfig:
    """Return ``base``'s pretraining config with ``override``, every series ending at ``end``."""
    shipped = load_config(REPO / "configs" / "pretrain" / f"{base}.yaml", PretrainConfig)
    data = shipped.model_dump(mode="json")
    data = merged(data, override)
    data["name"] = f"{base}-{variant}"
    data["data"]["end"] = end.isoformat()
    data["data"]["also"] = [{**source, "end": end.isoformat()} for source in data["data"]["also"]]
    return PretrainConfig.model_validate(data)


def candidates(grid: dict[str, Any]) -> list[tuple[str, PretrainConfig]]:
    """Return (base, pretraining config) of every candidate of a grid file's contents."""
    end = dt.date.fromisoformat(str(grid["pretrain_end"]))
    out = []
    for base in grid["bases"]:
        variants = {**grid["variants"], **(grid.get("per_base") or {}).get(base, {})}
        out += [(base, candidate(base, name, edit or {}, end)) for name, edit in variants.items()]
    return out


def decisions(
    configs: list[tuple[str, PretrainConfig]], means: dict[str, float], end: dt.date
) -> dict[str, str]:
    """Return, per base, the rule's decision on its variants' validation ``means`` (in points).

    The shipped configuration is the variant that equals ``configs/pretrain/<base>.yaml``
    cut at ``end``; the best variant replaces it only by a margin of ``MARGIN`` points.
    """
    out = {}
    for base in dict.fromkeys(b for b, _ in configs):
        variants = [c for b, c in configs if b == base]
        best = max(variants, key=lambda c: means[c.name])
        shipped = candidate(base, "shipped", {}, end).model_dump(exclude={"name"})
        incumbent = next((c for c in variants if c.model_dump(exclude={"name"}) == shipped), None)
        if incumbent is None:
            out[base] = f"{best.name} (no variant is the shipped configuration)"
            continue
        gain = means[best.name] - means[incumbent.name]
        if best is incumbent:
            out[base] = f"keep {incumbent.name} (the highest mean)"
        elif gain < MARGIN:
            out[base] = f"keep {incumbent.name} ({best.name} {gain:+.2f}, under {MARGIN:.2f})"
        else:
            out[base] = f"ship {best.name} ({gain:+.2f} over {incumbent.name})"
    return out


def main() -> None:
    """Pretrain and validate the grid's candidates and print their scores."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grid", type=Path)
    parser.add_argument("--only", nargs="+", help="Bases to pretrain (default: all).")
    parser.add_argument("--pretrain-only", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "selection")
    parser.add_argument("--threads", type=int, default=1, help="torch threads.")
    args = parser.parse_args()
    grid = load_yaml(args.grid)
    models = args.out / "models"
    torch.set_num_threads(args.threads)
    (args.out / "configs").mkdir(parents=True, exist_ok=True)
    configs = candidates(grid)
    names = [config.name for _, config in configs]
    for base, config in configs:
        if args.only and base not in args.only:
            continue
        write_text(
            args.out / "configs" / f"{config.name}.json",
            json.dumps(config.model_dump(mode="json"), indent=1),
        )
        if config.name in Registry(models).names():
            continue
        print(f"pretraining {config.name}", flush=True)
        result = pretrain(config, models_dir=models)
        print(f"  {result.card['training']['seconds']:.0f} s", flush=True)
    if args.pretrain_only:
        return
    validation = load_config(REPO / grid["validation"], EvaluateConfig)
    validation = validation.model_copy(
        update={
            "representations": names,
            "pretraining_overlap": "refuse",
            "tasks": ["probe", "transfer"],
        }
    )
    with one_thread():
        results = evaluate(validation, CandleStore(None), models, default_cache_dir()).results
    train = validation.train_series[0]
    series = [train, *(s for s in validation.test_series if s != train)]
    rows = {}
    for name in [*names, "features", "majority"]:
        cells = [results["probe"][name][train][target] for target in series]
        rows[name] = {
            "mean_minus_features": sum(c["minus_features"] for c in cells) / len(cells),
            **{
                target.split(":")[2]: {
                    "accuracy": c["accuracy"],
                    "minus_features": c["minus_features"],
                    "minus_features_ci": c["minus_features_ci"],
                }
                for target, c in zip(series, cells, strict=True)
            },
        }
        text = "  ".join(
            f"{t.split(':')[2]} {c['accuracy']:.1%} ({100 * c['minus_features']:+.1f} "
            f"[{100 * c['minus_features_ci'][0]:+.1f}, {100 * c['minus_features_ci'][1]:+.1f}])"
            for t, c in zip(series, cells, strict=True)
        )
        print(f"{name:32s} mean {100 * rows[name]['mean_minus_features']:+.2f}  {text}")
    end = dt.date.fromisoformat(str(grid["pretrain_end"]))
    means = {name: 100 * rows[name]["mean_minus_features"] for name in names}
    for base, decision in decisions(configs, means, end).items():
        print(f"{base}: {decision}")
    write_text(args.out / "scores.json", json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
