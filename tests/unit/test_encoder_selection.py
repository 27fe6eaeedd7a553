"""benchmarks/encoder_selection.py: the candidates of the shipped selection grid."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

import pytest

from engine.safe_yaml import load_yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
GRID = REPO_ROOT / "configs" / "selection" / "wide_1h.yaml"


@pytest.fixture(scope="module")
def selection():
    spec = importlib.util.spec_from_file_location(
        "encoder_selection", REPO_ROOT / "benchmarks" / "encoder_selection.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_candidate_ends_before_the_validation_range(selection):
    grid = load_yaml(GRID)
    configs = selection.candidates(grid)
    validation = load_yaml(REPO_ROOT / grid["validation"])
    assert dt.date.fromisoformat(str(grid["pretrain_end"])) < validation["test"]["start"]
    assert {base for base, _ in configs} == set(grid["bases"])
    for _, config in configs:
        ends = [config.data.end, *(source.end for source in config.data.also)]
        assert ends == [dt.date.fromisoformat(str(grid["pretrain_end"]))] * len(ends)


def test_a_variant_replaces_only_the_keys_it_names(selection):
    configs = dict((config.name, config) for _, config in selection.candidates(load_yaml(GRID)))
    shipped = load_yaml(REPO_ROOT / "configs" / "pretrain" / "cost_wide_1h.yaml")
    longer = configs["cost_wide_1h-vol168_iters600"]
    assert longer.training.iters == 600
    assert longer.training.batch_size == shipped["training"]["batch_size"]
    assert longer.features.extras == ["volatility_ratio_24", "rsi_14", "volatility_168"]
    assert longer.features.set == shipped["features"]["set"]
    assert longer.encoder.params == shipped["encoder"]["params"]
    assert configs["cost_wide_1h-relative"].features.extras == ["volatility_ratio_24", "rsi_14"]


def test_a_variant_replaces_the_shipped_configuration_only_by_the_margin(selection):
    grid = load_yaml(GRID)
    configs = [(b, c) for b, c in selection.candidates(grid) if b == "cost_wide_1h"]
    end = dt.date.fromisoformat(str(grid["pretrain_end"]))
    # cost_wide_1h ships the relative features with volatility_168 and 300 iterations.
    means = {
        "cost_wide_1h-relative": 0.0,
        "cost_wide_1h-relative_vol168": 1.0,
        "cost_wide_1h-relative_vol168_binance_1m": 0.5,
    }
    below = {**means, "cost_wide_1h-vol168_iters600": 1.0 + selection.MARGIN - 0.01}
    above = {**means, "cost_wide_1h-vol168_iters600": 1.0 + selection.MARGIN}
    kept = selection.decisions(configs, below, end)["cost_wide_1h"]
    assert kept.startswith("keep cost_wide_1h-relative_vol168 (cost_wide_1h-vol168_iters600")
    shipped = selection.decisions(configs, above, end)["cost_wide_1h"]
    assert shipped.startswith("ship cost_wide_1h-vol168_iters600")
    best = selection.decisions(configs, {**means, "cost_wide_1h-vol168_iters600": 0.5}, end)
    assert best["cost_wide_1h"] == "keep cost_wide_1h-relative_vol168 (the highest mean)"
