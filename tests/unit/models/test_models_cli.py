"""engine models ls, show, diff and migrate, on the shipped registry and on small ones."""

from __future__ import annotations

import shutil
from pathlib import Path

from engine.models.registry import Registry

REPO_ROOT = Path(__file__).resolve().parents[3]
SHIPPED = REPO_ROOT / "models"


def test_ls_lists_every_shipped_model_with_its_latest_version(run_cli):
    result = run_cli("models", "ls", "--models-dir", SHIPPED)
    assert result.exit_code == 0, result.stderr
    registry = Registry(SHIPPED)
    assert len(registry.names()) >= 7
    for name in registry.names():
        latest = registry.resolve(name)
        assert name in result.stdout and f"{latest.version} *" in result.stdout


def test_show_gives_lineage_data_and_metrics(tmp_path, run_cli, encoder, card):
    registry = Registry(tmp_path)
    first = registry.publish("tiny", encoder(0), card())
    second = registry.publish("tiny", encoder(1), card(), parent=first.ref, origin="continue")
    result = run_cli("models", "show", "tiny", "--models-dir", tmp_path)
    assert result.exit_code == 0, result.stderr
    assert f"lineage: {second.ref} <- {first.ref}" in result.stdout
    assert "data.unseen_from_utc" in result.stdout and "2025-01-01T00:00:00Z" in result.stdout


def test_diff_names_the_keys_that_differ_by_section(tmp_path, run_cli, encoder, card):
    registry = Registry(tmp_path)
    first = registry.publish("tiny", encoder(0), card())
    later = card(unseen="2025-02-01T00:00:00Z") | {"training": {"final_loss": 0.5}}
    second = registry.publish("tiny", encoder(1), later, parent=first.ref)
    result = run_cli("models", "diff", first.ref, second.ref, "--models-dir", tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "config: the same" in result.stdout
    assert "data.unseen_from_utc" in result.stdout and "final_loss" in result.stdout
    assert "parent" in result.stdout


def test_a_bad_name_exits_2_naming_the_models_that_exist(run_cli):
    for command in (["show", "no_such_model"], ["diff", "cost_bybit_1h", "no_such_model"]):
        result = run_cli("models", *command, "--models-dir", SHIPPED)
        assert result.exit_code == 2 and "Traceback" not in result.stderr
        assert "no model 'no_such_model'" in result.stderr and "cost_bybit_1h" in result.stderr
    result = run_cli("models", "show", "cost_bybit_1h@ffff0000", "--models-dir", SHIPPED)
    assert result.exit_code == 2 and "is not a version of cost_bybit_1h" in result.stderr


def test_migrate_versions_an_old_folder_that_a_strategy_then_resolves(tmp_path, run_cli):
    old = tmp_path / "models" / "cost_bybit_1h"
    shutil.copytree(Registry(SHIPPED).resolve("cost_bybit_1h").path, old)
    card = old / "card.json"
    card.write_text(card.read_text().replace('"lineage"', '"lineage_before"'))
    refused = run_cli(
        "validate", REPO_ROOT / "strategies" / "ssl_cost.yaml", "--models-dir", tmp_path / "models"
    )
    assert refused.exit_code == 2 and "engine models migrate" in refused.stderr
    listed = run_cli("models", "ls", "--models-dir", tmp_path / "models")
    assert "unversioned model folders: cost_bybit_1h" in listed.stdout
    result = run_cli("models", "migrate", "--models-dir", tmp_path / "models")
    assert result.exit_code == 0 and "migrated 1 model folder(s)" in result.stdout
    valid = run_cli(
        "validate", REPO_ROOT / "strategies" / "ssl_cost.yaml", "--models-dir", tmp_path / "models"
    )
    assert valid.exit_code == 0, valid.stderr
