"""Tampered and damaged model folders: each is refused as "model <folder> is damaged: ..."."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from engine.models.registry import Registry

MODEL = "ts2vec_bybit_1h"
#: The shipped strategy file that reads MODEL.
STRATEGY = "ssl_ts2vec_bybit.yaml"
COMMANDS = ["validate", "run"]


def _version(models):
    # The folder of MODEL's latest version.
    return Registry(models).resolve(MODEL).path


def _card(folder):
    return json.loads((folder / "card.json").read_text())


def _write_card(folder, card):
    (folder / "card.json").write_text(json.dumps(card))


def _edit_card(edit):
    def damage(folder):
        card = _card(folder)
        edit(card)
        _write_card(folder, card)

    return damage


def _card_bytes(data: bytes):
    def damage(folder):
        (folder / "card.json").write_bytes(data)

    return damage


def _edit_weights(edit=None, metadata=None):
    def damage(folder):
        path = folder / "weights.safetensors"
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata()
        tensors = load_file(str(path))
        if edit is not None:
            edit(tensors)
        if metadata is not None:
            metadata(meta)
        save_file(tensors, str(path), metadata=meta)

    return damage


def _edit_config(change):
    # Change the encoder config in the weights' metadata and the card alike.
    def damage(folder):
        card = _card(folder)
        change(card["encoder"]["config"])
        _write_card(folder, card)
        config = json.dumps(card["encoder"]["config"])
        _edit_weights(metadata=lambda m: m.__setitem__("config", config))(folder)

    return damage


def _weights_bytes(change):
    def damage(folder):
        path = folder / "weights.safetensors"
        path.write_bytes(change(path.read_bytes()))

    return damage


def _set_first(tensors, value):
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = value


CARD_CASES = {
    "card_missing_data": _edit_card(lambda c: c.pop("data")),
    "card_missing_features": _edit_card(lambda c: c.pop("features")),
    "card_missing_mean": _edit_card(lambda c: c["features"].pop("mean")),
    "card_missing_std": _edit_card(lambda c: c["features"].pop("std")),
    "card_missing_unseen_from_utc": _edit_card(lambda c: c["data"].pop("unseen_from_utc")),
    "card_missing_encoder": _edit_card(lambda c: c.pop("encoder")),
    "card_missing_kind": _edit_card(lambda c: c.pop("kind")),
    "card_missing_feature_names": _edit_card(lambda c: c["features"].pop("names")),
    "card_that_is_a_list": _card_bytes(b"[1, 2, 3]"),
    "card_that_is_null": _card_bytes(b"null"),
    "card_that_is_a_string": _card_bytes(b'"a card"'),
    "card_that_is_empty": _card_bytes(b""),
    "card_with_invalid_utf8": _card_bytes(b'{"name": "\xff\xfe"}'),
    "card_that_is_truncated_json": lambda f: (f / "card.json").write_text(
        (f / "card.json").read_text()[:500]
    ),
    "pickle_in_place_of_the_card": _card_bytes(pickle.dumps({"name": "x"})),
    "card_holding_a_string_where_numbers_belong": _edit_card(
        lambda c: c["features"].__setitem__("mean", ["a"] * len(c["features"]["names"]))
    ),
    "card_with_a_string_for_the_std_list": _edit_card(
        lambda c: c["features"].__setitem__("std", "1,2,3")
    ),
    "normalisation_mean_of_the_wrong_length": _edit_card(lambda c: c["features"]["mean"].pop()),
    "normalisation_std_of_the_wrong_length": _edit_card(lambda c: c["features"]["std"].append(1.0)),
    "normalisation_std_with_a_zero": _edit_card(lambda c: c["features"]["std"].__setitem__(2, 0.0)),
    "normalisation_std_negative": _edit_card(lambda c: c["features"]["std"].__setitem__(0, -1.0)),
    "normalisation_mean_infinite": _edit_card(
        lambda c: c["features"]["mean"].__setitem__(0, float("inf"))
    ),
    "normalisation_mean_nan": _edit_card(
        lambda c: c["features"]["mean"].__setitem__(0, float("nan"))
    ),
    "unknown_normalisation_minmax": _edit_card(
        lambda c: c["features"].__setitem__("normalisation", "minmax")
    ),
    "unparseable_unseen_from_date": _edit_card(
        lambda c: c["data"].__setitem__("unseen_from_utc", "the first of January")
    ),
    "unseen_from_date_without_a_time_zone": _edit_card(
        lambda c: c["data"].__setitem__("unseen_from_utc", "2025-01-01T00:00:00")
    ),
    "unseen_from_date_as_a_list": _edit_card(
        lambda c: c["data"].__setitem__("unseen_from_utc", [2025, 1, 1])
    ),
    "card_data_that_is_a_list": _edit_card(lambda c: c.__setitem__("data", [])),
    "card_features_that_is_a_string": _edit_card(lambda c: c.__setitem__("features", "zscore")),
    "empty_feature_names": _edit_card(lambda c: c["features"].__setitem__("names", [])),
    "repeated_feature_names": _edit_card(
        lambda c: c["features"]["names"].__setitem__(1, c["features"]["names"][0])
    ),
    "feature_names_that_are_numbers": _edit_card(
        lambda c: c["features"].__setitem__("names", list(range(len(c["features"]["names"]))))
    ),
    "card_kind_other_than_the_weights": _edit_card(lambda c: c.__setitem__("kind", "cost")),
    "card_encoder_kind_other_than_its_kind": _edit_card(
        lambda c: c["encoder"].__setitem__("kind", "tnc")
    ),
    "card_encoder_config_that_is_a_list": _edit_card(
        lambda c: c["encoder"].__setitem__("config", [6, 320])
    ),
    "card_encoder_config_other_than_the_weights": _edit_card(
        lambda c: c["encoder"]["config"].__setitem__("depth", 3)
    ),
    "card_input_dims_other_than_its_features": _edit_card(
        lambda c: c["encoder"]["config"].__setitem__("input_dims", 5)
    ),
}

WEIGHT_CASES = {
    "weights_holding_nan": _edit_weights(lambda t: _set_first(t, float("nan"))),
    "weights_holding_infinity": _edit_weights(lambda t: _set_first(t, float("inf"))),
    "weights_missing_a_tensor": _edit_weights(lambda t: t.pop(sorted(t)[-1])),
    "weights_with_an_extra_tensor": _edit_weights(
        lambda t: t.__setitem__("extra.weight", torch.zeros(3))
    ),
    "weights_with_a_tensor_of_the_wrong_shape": _edit_weights(
        lambda t: t.__setitem__(sorted(t)[0], torch.zeros(7, 7))
    ),
    "weights_with_a_tensor_of_the_wrong_dtype": _edit_weights(
        lambda t: t.__setitem__(sorted(t)[0], t[sorted(t)[0]].double())
    ),
    "weights_with_integer_tensors": _edit_weights(
        lambda t: t.__setitem__(sorted(t)[0], t[sorted(t)[0]].to(torch.int32))
    ),
    "encoder_config_that_is_a_list": _edit_weights(
        metadata=lambda m: m.__setitem__("config", "[6, 320, 64]")
    ),
    "encoder_config_that_is_not_json": _edit_weights(
        metadata=lambda m: m.__setitem__("config", "{depth: 7")
    ),
    "encoder_config_with_a_string_depth": _edit_config(lambda c: c.__setitem__("depth", "7")),
    "encoder_config_with_a_negative_depth": _edit_config(lambda c: c.__setitem__("depth", -2)),
    "encoder_config_with_a_fractional_width": _edit_config(
        lambda c: c.__setitem__("hidden_dims", 6.5)
    ),
    "encoder_config_with_an_unknown_hyperparameter": _edit_config(
        lambda c: c.__setitem__("layers", 3)
    ),
    "encoder_config_with_a_smaller_depth_than_the_weights": _edit_config(
        lambda c: c.__setitem__("depth", 3)
    ),
    "encoder_config_metadata_other_than_the_card": _edit_weights(
        metadata=lambda m: m.__setitem__("config", m["config"].replace('"depth": 7', '"depth": 6'))
    ),
    "weights_metadata_without_kind": _edit_weights(metadata=lambda m: m.pop("kind")),
    "weights_metadata_without_config": _edit_weights(metadata=lambda m: m.pop("config")),
    "weights_metadata_of_an_unknown_kind": _edit_weights(
        metadata=lambda m: m.__setitem__("kind", "transformer")
    ),
    "truncated_weights": _weights_bytes(lambda data: data[: len(data) // 2]),
    "weights_cut_inside_the_header": _weights_bytes(lambda data: data[:20]),
    "empty_weights": _weights_bytes(lambda data: b""),
    "garbage_weights": _weights_bytes(lambda data: b"\x00\x01garbage" * 100),
    "weights_with_a_huge_header_length": _weights_bytes(
        lambda data: (2**60).to_bytes(8, "little") + data[8:]
    ),
    "pickle_in_place_of_the_weights": _weights_bytes(
        lambda data: pickle.dumps({"blocks.0.conv1.bias": [0.0]})
    ),
    "weights_with_a_corrupted_header_json": _weights_bytes(
        lambda data: data[:8] + b"{" * 10 + data[18:]
    ),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", sorted({**CARD_CASES, **WEIGHT_CASES}))
def test_damaged_model_is_refused_as_damaged(case, command, refused, models, strategies, tmp_path):
    folder = _version(models)
    {**CARD_CASES, **WEIGHT_CASES}[case](folder)
    args = [command, strategies / STRATEGY, "--models-dir", models]
    if command == "run":
        args += ["--reports-dir", tmp_path / "reports"]
    refused(*args, stored=[models, strategies], says=f"model {folder} is damaged: ")
    assert not (tmp_path / "reports").exists()


def test_unknown_normalisation_minmax_names_the_key_and_the_known_ones(refused, models, strategies):
    CARD_CASES["unknown_normalisation_minmax"](_version(models))
    result = refused("validate", strategies / STRATEGY, "--models-dir", models)
    assert "features.normalisation: got 'minmax'; expected 'zscore' or 'none'" in result.stderr


@pytest.mark.parametrize("missing", ["card.json", "weights.safetensors"])
def test_model_folder_without_one_of_its_files_is_refused(missing, refused, models, strategies):
    (_version(models) / missing).unlink()
    refused(
        "validate",
        strategies / STRATEGY,
        "--models-dir",
        models,
        stored=[models],
        says="not a model folder",
    )


def test_card_that_is_a_folder_is_refused(refused, models, strategies):
    (_version(models) / "card.json").unlink()
    (_version(models) / "card.json").mkdir()
    refused(
        "validate",
        strategies / STRATEGY,
        "--models-dir",
        models,
        says="not a model folder",
    )


def test_missing_encoder_is_refused_by_validate(refused, models, strategies):
    text = (strategies / STRATEGY).read_text().replace(MODEL, "no_such_model")
    (strategies / STRATEGY).write_text(text)
    refused(
        "validate",
        strategies / STRATEGY,
        "--models-dir",
        models,
        says="no model 'no_such_model'",
    )
