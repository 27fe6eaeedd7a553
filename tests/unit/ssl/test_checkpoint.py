"""Model folders: safetensors round trip without unpickling, cards and clear errors."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from engine.errors import ConfigError, DataError
from engine.ssl.checkpoint import load_tensors, save_model, save_tensors
from engine.ssl.folder import open_model
from engine.ssl.ts2vec import TS2Vec

CONFIG = {
    "input_dims": 2,
    "output_dims": 8,
    "hidden_dims": 8,
    "depth": 2,
    "temporal_unit": 0,
    "alpha": 0.5,
    "causal": True,
}
CARD = {
    "name": "tiny",
    "kind": "ts2vec",
    "data": {"unseen_from_utc": "2025-01-01T00:00:00Z"},
    "features": {
        "names": ["a", "b"],
        "normalisation": "zscore",
        "mean": [1.0, -2.0],
        "std": [2.0, 0.5],
    },
    "encoder": {"kind": "ts2vec", "config": CONFIG},
}


@pytest.fixture
def no_unpickling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("unpickling was attempted")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)


def _encoder() -> TS2Vec:
    torch.manual_seed(0)
    return TS2Vec(**CONFIG).eval()


def test_model_folder_round_trip_rebuilds_the_same_encoder(tmp_path, no_unpickling):
    encoder = _encoder()
    save_model(tmp_path / "tiny", encoder, CARD)
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == [
        "card.json",
        "weights.safetensors",
    ]
    model = open_model(tmp_path / "tiny")
    assert model.card == CARD
    assert model.encoder.config() == encoder.config()
    x = torch.randn(1, 30, 2)
    assert torch.equal(model.encoder(x), encoder(x))


def test_weights_file_names_its_encoder_in_the_metadata(tmp_path):
    save_model(tmp_path, _encoder(), CARD)
    with safe_open(str(tmp_path / "weights.safetensors"), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["kind"] == "ts2vec"
    assert json.loads(metadata["config"])["depth"] == 2


def test_normalise_applies_the_card_statistics_and_embed_is_causal(tmp_path):
    save_model(tmp_path, _encoder(), CARD)
    model = open_model(tmp_path)
    raw = np.array([[1.0, -2.0], [3.0, -1.5]])
    np.testing.assert_allclose(model.normalise(raw), [[0.0, 0.0], [1.0, 1.0]])
    assert model.normalise(raw).dtype == np.float32
    features = np.random.default_rng(0).standard_normal((40, 2))
    changed = features.copy()
    changed[20:] += 1.0
    assert np.array_equal(model.embed(features)[:20], model.embed(changed)[:20])


def test_features_of_the_wrong_width_are_refused(tmp_path):
    save_model(tmp_path, _encoder(), CARD)
    with pytest.raises(DataError, match=r"expects features of shape \(T, 2\) \(a, b\)"):
        open_model(tmp_path).normalise(np.zeros((5, 3)))


def test_missing_model_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not a model folder"):
        open_model(tmp_path / "absent")


def test_weights_of_another_encoder_than_the_card_describes_are_refused(tmp_path):
    save_model(tmp_path, _encoder(), CARD)
    other = TS2Vec(**{**CONFIG, "hidden_dims": 4})
    save_model(tmp_path / "other", other, CARD)
    (tmp_path / "other" / "weights.safetensors").replace(tmp_path / "weights.safetensors")
    with safe_open(str(tmp_path / "weights.safetensors"), framework="pt") as handle:
        assert json.loads(handle.metadata()["config"])["hidden_dims"] == 4
    with pytest.raises(DataError, match=r"is damaged: weights.safetensors holds a ts2vec encoder"):
        open_model(tmp_path)


def test_weights_file_that_is_not_safetensors_is_refused(tmp_path):
    save_model(tmp_path, _encoder(), CARD)
    (tmp_path / "weights.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(DataError, match="is damaged: weights.safetensors is not a readable"):
        open_model(tmp_path)


def test_training_state_round_trip_keeps_tensors_and_json(tmp_path, no_unpickling):
    generator = torch.Generator().manual_seed(7)
    tensors = {"w": torch.randn(3, 2), "generator": generator.get_state()}
    save_tensors(tmp_path / "state.safetensors", tensors, {"losses": [1.5, 0.5], "iteration": 2})
    loaded, state = load_tensors(tmp_path / "state.safetensors")
    assert state == {"losses": [1.5, 0.5], "iteration": 2}
    assert torch.equal(loaded["w"], tensors["w"])
    restored = torch.Generator()
    restored.set_state(loaded["generator"])
    assert torch.equal(torch.rand(4, generator=restored), torch.rand(4, generator=generator))
    assert not (tmp_path / "state.safetensors.tmp").exists()


def test_unreadable_training_state_is_a_data_error(tmp_path):
    (tmp_path / "state.safetensors").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a readable checkpoint"):
        load_tensors(tmp_path / "state.safetensors")


def test_weights_that_do_not_fit_the_architecture_are_refused_when_the_encoder_is_built(
    tmp_path,
):
    # The card and the weights' metadata agree, so the folder opens without torch; the
    # misfit shows when the encoder is first read.
    save_model(tmp_path, _encoder(), CARD)
    path = tmp_path / "weights.safetensors"
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    name = next(iter(tensors))
    tensors[name] = torch.zeros(3, 3)
    save_file(tensors, str(path), metadata=metadata)
    model = open_model(tmp_path)
    with pytest.raises(DataError, match=rf"is damaged: weights.safetensors: tensor {name} is"):
        model.embed(np.zeros((5, 2)))
