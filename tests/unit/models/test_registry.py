"""The model registry: content-addressed versions, references, lineage, atomic writes, migration."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from engine.errors import ConfigError, DataError
from engine.models.registry import ModelRef, Registry, content_version
from engine.ssl.checkpoint import save_model


def test_a_version_is_the_hash_of_its_files_and_loads_as_name_at_version(tmp_path, encoder, card):
    registry = Registry(tmp_path)
    version = registry.publish("tiny", encoder(), card())
    assert version.path == tmp_path / "tiny" / version.version
    assert content_version(version.path) == version.version and len(version.version) == 12
    assert version.card["lineage"]["parent"] is None
    model = registry.load("tiny")
    assert model.name == f"tiny@{version.version}" == version.ref
    x = torch.randn(1, 10, 2)
    assert torch.equal(model.encoder(x), encoder()(x))


def test_a_bare_name_resolves_to_the_latest_version_and_a_prefix_to_its_version(
    tmp_path, encoder, card
):
    registry = Registry(tmp_path)
    first = registry.publish("tiny", encoder(0), card())
    second = registry.publish("tiny", encoder(1), card(), parent=first.ref, origin="continue")
    assert [v.version for v in registry.versions("tiny")] == [first.version, second.version]
    assert registry.resolve("tiny") == second
    assert registry.resolve(f"tiny@{first.version[:6]}") == first
    assert second.parent == first.ref and second.lineage["origin"] == "continue"


@pytest.mark.parametrize(
    ("ref", "says"),
    [
        ("absent", "no model 'absent'"),
        ("tiny@abcdef", "'abcdef' is not a version of tiny; expected one of"),
        ("tiny@XYZ", "expected NAME or NAME@VERSION"),
        ("../tiny", "expected NAME or NAME@VERSION"),
    ],
)
def test_a_bad_reference_names_what_exists(tmp_path, ref, says, encoder, card):
    registry = Registry(tmp_path)
    registry.publish("tiny", encoder(), card())
    with pytest.raises(ConfigError, match=says.replace("(", r"\(")) as error:
        registry.resolve(ref)
    if "no model" in says:
        assert "['tiny']" in str(error.value)


def test_an_ambiguous_version_prefix_is_refused(tmp_path, encoder, card):
    registry = Registry(tmp_path)
    version = registry.publish("tiny", encoder(), card())
    # A twin sharing the first four characters and differing at the fifth.
    fifth = "1" if version.version[4] == "0" else "0"
    twin = version.path.with_name(version.version[:4] + fifth + "0" * 7)
    shutil.copytree(version.path, twin)
    with pytest.raises(ConfigError, match="matches several versions"):
        registry.resolve(f"tiny@{version.version[:4]}")
    assert registry.resolve(f"tiny@{version.version[:5]}") == version


def test_a_version_whose_files_changed_is_refused_as_damaged(tmp_path, encoder, card):
    registry = Registry(tmp_path)
    version = registry.publish("tiny", encoder(), card())
    card = json.loads((version.path / "card.json").read_text())
    card["data"]["unseen_from_utc"] = "2020-01-01T00:00:00Z"
    (version.path / "card.json").write_text(json.dumps(card))
    with pytest.raises(
        DataError, match=f"is damaged: its files hash to .*expected {version.version}"
    ):
        registry.load("tiny")


def test_a_crash_while_publishing_leaves_no_version_visible(tmp_path, monkeypatch, encoder, card):
    registry = Registry(tmp_path)
    kept = registry.publish("tiny", encoder(0), card())

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "rename", crash)
    with pytest.raises(OSError, match="disk full"):
        registry.publish("tiny", encoder(1), card())
    monkeypatch.undo()
    assert registry.versions("tiny") == [kept]
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == [kept.version]


def test_a_dead_writers_staging_folder_is_invisible_and_cleared_by_the_next_publish(
    tmp_path, encoder, card
):
    registry = Registry(tmp_path)
    registry.publish("tiny", encoder(0), card())
    # A pid above Linux's largest (2**22) belongs to no process; this process is alive.
    dead = tmp_path / "tiny" / ".incoming-99999999-x"
    live = tmp_path / "tiny" / f".incoming-{os.getpid()}-x"
    for leftover in (dead, live):
        leftover.mkdir()
        (leftover / "weights.safetensors").write_bytes(b"half")
    assert len(registry.versions("tiny")) == 1
    registry.publish("tiny", encoder(1), card())
    assert not dead.exists() and live.exists() and len(registry.versions("tiny")) == 2


def test_migrate_versions_old_folders_and_they_load(tmp_path, encoder, card):
    save_model(tmp_path / "old", encoder(), card("old"))
    registry = Registry(tmp_path)
    with pytest.raises(ConfigError, match="unversioned model; run `engine models migrate"):
        registry.resolve("old")
    [made] = registry.migrate()
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == [made.version]
    assert made.lineage["origin"] == "migrate" and made.parent is None
    assert registry.load("old").name == made.ref
    assert registry.migrate() == []


def test_a_model_ref_prints_as_it_parses():
    assert str(ModelRef.parse("cost_bybit_1h@6cf526b3")) == "cost_bybit_1h@6cf526b3"
    assert ModelRef.parse("cost_bybit_1h") == ModelRef("cost_bybit_1h", None)


def test_a_child_takes_the_parents_card_with_its_own_data_and_training(tmp_path, encoder, card):
    registry = Registry(tmp_path)
    parent = registry.publish("tiny", encoder(0), card())
    window = {"first_bar_utc": "2025-01-01T00:00:00Z", "unseen_from_utc": "2025-02-01T00:00:00Z"}
    child = registry.publish_child(
        "tiny", encoder(1), data=window, training={"iters": 3}, origin="refit"
    )
    assert child.parent == parent.ref and child.lineage["origin"] == "refit"
    assert child.card["data"] == {**parent.card["data"], **window}
    assert child.card["training"] == {"iters": 3}
    assert child.card["features"] == parent.card["features"]
    assert registry.load("tiny").spec.unseen_from.isoformat() == "2025-02-01T00:00:00+00:00"
