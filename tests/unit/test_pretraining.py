"""engine pretrain: config to model folder, card contents, range cut, resume and the CLI."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from engine.config import PretrainConfig
from engine.data.features import RELATIVE_FEATURES, compute_features
from engine.data.store import CandleStore, SeriesKey
from engine.errors import ConfigError, DataError
from engine.models.registry import Registry
from engine.pretraining import pretrain
from engine.ssl.folder import open_model
from engine.strategy.representations import model_representations

FIRST_DAY, LAST_DAY = pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-06", tz="UTC")


class _Killed(Exception):
    pass


@pytest.fixture
def store(tmp_path, shared_data):
    root = tmp_path / "store"
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        candles = pd.read_parquet(shared_data / f"bybit_linear_{symbol}_1h.parquet")
        ms = candles["timestamp"]
        window = (ms >= FIRST_DAY.value // 10**6) & (ms < LAST_DAY.value // 10**6)
        CandleStore(root).write(SeriesKey("bybit", "linear", symbol, "1h"), candles[window])
    # Binance spot days around the files' one missing bar (2023-03-24 13:00).
    candles = pd.read_parquet(shared_data / "binance_spot_BTCUSDT_1h.parquet")
    ms = candles["timestamp"]
    window = (ms >= _ms("2023-03-23")) & (ms < _ms("2023-03-27"))
    CandleStore(root).write(SeriesKey("binance", "spot", "BTCUSDT", "1h"), candles[window])
    return root


def _ms(day: str) -> int:
    return pd.Timestamp(day, tz="UTC").value // 10**6


def _spec(store, **training) -> dict:
    return {
        "name": "tiny_ts2vec",
        "seed": 7,
        "data": {
            "store": {"path": str(store)},
            "exchange": "bybit",
            "market": "linear",
            "symbols": ["BTCUSDT", "ETHUSDT"],
            "timeframe": "1h",
            "start": "2024-01-01",
            "end": "2024-01-03",
        },
        "features": {"extras": ["volatility_6"], "normalisation": "zscore"},
        "encoder": {"kind": "ts2vec", "params": {"output_dims": 8, "hidden_dims": 8, "depth": 2}},
        "training": {"iters": 4, "batch_size": 2, "max_train_length": 24, "checkpoint_every": 2}
        | training,
    }


def _config(store, **training) -> PretrainConfig:
    return PretrainConfig.model_validate(_spec(store, **training))


def test_pretrain_writes_weights_and_a_complete_card(store, tmp_path):
    result = pretrain(_config(store), models_dir=tmp_path / "models")
    folder = tmp_path / "models" / "tiny_ts2vec"
    assert result.folder == folder / result.version.version
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["checkpoints", result.version.version]
    )
    assert sorted(p.name for p in result.folder.iterdir()) == ["card.json", "weights.safetensors"]
    card = json.loads((result.folder / "card.json").read_text())
    assert card["lineage"]["parent"] is None and card["lineage"]["origin"] == "pretrain"
    data = card["data"]
    assert data["first_bar_utc"] == "2024-01-01T00:00:00Z"
    assert data["last_bar_utc"] == "2024-01-03T23:00:00Z"
    assert data["unseen_from_utc"] == "2024-01-04T00:00:00Z"
    assert data["bars"] == 2 * 72
    for entry in data["files"]:
        path = store / entry["file"]
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert entry["bars"] == 72
    features = card["features"]
    assert features["names"] == ["return_1", "log_volume", "range", "body", "volatility_6"]
    assert len(features["mean"]) == len(features["std"]) == 5
    training = card["training"]
    assert training["seed"] == 7 and training["iters"] == 4
    assert len(training["loss_curve"]) == 4 and training["seconds"] >= 0
    assert {"python", "torch", "numpy", "safetensors"} <= set(card["libraries"])
    assert card["encoder"]["config"]["depth"] == 2 and card["config"]["seed"] == 7


def test_normalisation_statistics_come_from_the_pretraining_bars_only(store, tmp_path):
    card = pretrain(_config(store), models_dir=tmp_path).card
    stacked = []
    for symbol in ("BTCUSDT", "ETHUSDT"):
        candles = CandleStore(store).load(SeriesKey("bybit", "linear", symbol, "1h"))
        candles = candles[
            candles["timestamp"] < pd.Timestamp("2024-01-04", tz="UTC").value // 10**6
        ]
        stacked.append(compute_features(candles, ["volatility_6"])[0])
    stacked = np.concatenate(stacked)
    np.testing.assert_allclose(card["features"]["mean"], stacked.mean(axis=0))
    np.testing.assert_allclose(card["features"]["std"], stacked.std(axis=0))


def test_the_model_folder_loads_and_embeds_causally(store, tmp_path):
    model = open_model(pretrain(_config(store), models_dir=tmp_path).folder)
    features = np.random.default_rng(0).standard_normal((50, 5))
    out = model.embed(features)
    assert out.shape == (50, 8) and out.dtype == np.float32
    changed = features.copy()
    changed[30:] *= -2.0
    assert np.array_equal(model.embed(changed)[:30], out[:30])


def test_resume_after_a_kill_gives_the_same_model_as_an_uninterrupted_run(store, tmp_path):
    uninterrupted = pretrain(_config(store, iters=6), models_dir=tmp_path / "a")

    def kill(iteration, iters, loss):
        if iteration == 5:
            raise _Killed

    with pytest.raises(_Killed):
        pretrain(_config(store, iters=6), models_dir=tmp_path / "b", progress=kill)
    resumed = pretrain(_config(store, iters=6), models_dir=tmp_path / "b")
    assert resumed.card["training"]["resumed_from"] == 4
    assert resumed.card["training"]["loss_curve"] == uninterrupted.card["training"]["loss_curve"]
    a = load_file(uninterrupted.folder / "weights.safetensors")
    b = load_file(resumed.folder / "weights.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_a_symbol_missing_from_the_store_is_a_data_error(store, tmp_path):
    spec = _spec(store)
    spec["data"]["symbols"] = ["BTCUSDT", "XRPUSDT"]
    with pytest.raises(DataError, match="XRPUSDT"):
        pretrain(PretrainConfig.model_validate(spec), models_dir=tmp_path)


def test_a_range_without_bars_is_a_data_error(store, tmp_path):
    spec = _spec(store)
    spec["data"] |= {"start": "2023-01-01", "end": "2023-01-31"}
    with pytest.raises(DataError, match="0 bar"):
        pretrain(PretrainConfig.model_validate(spec), models_dir=tmp_path)


def test_invalid_encoder_hyperparameters_are_a_config_error(store, tmp_path):
    spec = _spec(store)
    spec["encoder"]["params"] = {"width": 3}
    with pytest.raises(ConfigError, match="invalid hyperparameters"):
        pretrain(PretrainConfig.model_validate(spec), models_dir=tmp_path)


def test_cli_pretrain_writes_the_model_and_prints_a_summary(store, tmp_path, run_cli):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(_spec(store)))
    result = run_cli("pretrain", path, "--models-dir", tmp_path / "models")
    assert result.exit_code == 0, result.stderr
    assert "tiny_ts2vec" in result.stdout and "unseen from 2024-01-04T00:00:00Z" in result.stdout
    assert Registry(tmp_path / "models").load("tiny_ts2vec").name in result.stdout
    again = run_cli("pretrain", path, "--models-dir", tmp_path / "models")
    assert "resumed from iteration 4" in again.stdout


def test_cli_pretrain_reports_an_unknown_kind_without_a_traceback(store, tmp_path, run_cli):
    spec = _spec(store)
    spec["encoder"]["kind"] = "ts3vec"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = run_cli("pretrain", path)
    assert result.exit_code == 2
    assert "encoder.kind" in result.stderr and "Traceback" not in result.stderr


def test_a_non_causal_encoder_is_refused(store, tmp_path):
    spec = _spec(store)
    spec["encoder"]["params"]["causal"] = False
    with pytest.raises(ConfigError, match="must be causal"):
        pretrain(PretrainConfig.model_validate(spec), models_dir=tmp_path)


def _wide_spec(store, **binance) -> dict:
    spec = _spec(store)
    spec["data"]["also"] = [
        {
            "exchange": "bybit",
            "market": "linear",
            "symbols": ["SOLUSDT"],
            "start": "2024-01-02",
            "end": "2024-01-05",
        },
        {
            "exchange": "binance",
            "market": "spot",
            "symbols": ["BTCUSDT"],
            "start": "2023-03-23",
            "end": "2023-03-25",
            "max_gap_bars": 1,
        }
        | binance,
    ]
    spec["features"] = {"set": "relative", "extras": ["volatility_ratio_6"]}
    return spec


def test_one_pretraining_reads_series_of_several_exchanges_and_ranges(store, tmp_path):
    card = pretrain(PretrainConfig.model_validate(_wide_spec(store)), models_dir=tmp_path).card
    data = card["data"]
    series = [(f["exchange"], f["market"], f["symbol"], f["bars"]) for f in data["files"]]
    assert series == [
        ("bybit", "linear", "BTCUSDT", 72),
        ("bybit", "linear", "ETHUSDT", 72),
        ("bybit", "linear", "SOLUSDT", 96),
        ("binance", "spot", "BTCUSDT", 71),  # three days less the missing bar
    ]
    for entry in data["files"]:
        assert entry["sha256"] == hashlib.sha256((store / entry["file"]).read_bytes()).hexdigest()
    assert data["files"][2]["last_bar_utc"] == "2024-01-05T23:00:00Z"
    assert data["files"][3]["first_bar_utc"] == "2023-03-23T00:00:00Z"
    # The latest end of any series: nothing from it on was seen.
    assert data["unseen_from_utc"] == "2024-01-06T00:00:00Z"
    assert data["first_bar_utc"] == "2023-03-23T00:00:00Z" and data["bars"] == 72 + 72 + 96 + 71
    assert [source["exchange"] for source in data["also"]] == ["bybit", "binance"]
    assert "binance spot 1h candles of BTCUSDT" in card["description"]
    assert card["features"]["set"] == "relative"
    assert card["features"]["names"] == [*RELATIVE_FEATURES, "volatility_ratio_6"]


def test_a_gap_beyond_a_sources_tolerance_is_a_data_error(store, tmp_path):
    spec = _wide_spec(store, max_gap_bars=None)
    with pytest.raises(DataError, match="gap"):
        pretrain(PretrainConfig.model_validate(spec), models_dir=tmp_path)


def test_a_relative_model_represents_bars_with_the_feature_set_of_its_card(store, tmp_path):
    model = open_model(
        pretrain(PretrainConfig.model_validate(_wide_spec(store)), models_dir=tmp_path).folder
    )
    candles = CandleStore(store).load(SeriesKey("bybit", "linear", "ETHUSDT", "1h"))
    features, _ = compute_features(candles, ["volatility_ratio_6"], "relative")
    hour = 3_600_000
    expected = model.embed(features, candles["timestamp"].to_numpy() // hour)
    assert np.array_equal(model_representations(model, candles, hour), expected)


def test_continued_pretraining_trains_the_parent_on_its_unseen_bars_into_a_child(store, tmp_path):
    parent = pretrain(_config(store), models_dir=tmp_path).version
    child = pretrain(
        _config(store), models_dir=tmp_path, parent="tiny_ts2vec", until=dt.date(2024, 1, 5)
    ).version
    assert child.parent == parent.ref and child.lineage["origin"] == "continue"
    assert Registry(tmp_path).resolve("tiny_ts2vec") == child
    data = child.card["data"]
    assert data["first_bar_utc"] == "2024-01-04T00:00:00Z"
    assert data["last_bar_utc"] == "2024-01-05T23:00:00Z"
    assert data["unseen_from_utc"] == "2024-01-06T00:00:00Z" and data["bars"] == 2 * 48
    assert child.card["features"]["mean"] == parent.card["features"]["mean"]
    assert child.card["features"]["std"] == parent.card["features"]["std"]
    before = load_file(parent.path / "weights.safetensors")
    after = load_file(child.path / "weights.safetensors")
    assert any(not torch.equal(before[key], after[key]) for key in before)


def test_continued_pretraining_resumes_to_the_weights_of_an_uninterrupted_run(store, tmp_path):
    def continued(models_dir, progress=None):
        return pretrain(
            _config(store, iters=6),
            models_dir=models_dir,
            parent="tiny_ts2vec",
            until=dt.date(2024, 1, 5),
            progress=progress,
        )

    for folder in ("a", "b"):
        pretrain(_config(store), models_dir=tmp_path / folder)
    whole = continued(tmp_path / "a")

    def kill(iteration, iters, loss):
        if iteration == 5:
            raise _Killed

    with pytest.raises(_Killed):
        continued(tmp_path / "b", kill)
    resumed = continued(tmp_path / "b")
    assert resumed.card["training"]["resumed_from"] == 4
    a = load_file(whole.folder / "weights.safetensors")
    b = load_file(resumed.folder / "weights.safetensors")
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_continued_pretraining_refuses_an_until_before_the_parents_unseen_bars(store, tmp_path):
    pretrain(_config(store), models_dir=tmp_path)
    with pytest.raises(ConfigError, match="--until 2024-01-02: expected a day on or after"):
        pretrain(
            _config(store), models_dir=tmp_path, parent="tiny_ts2vec", until=dt.date(2024, 1, 2)
        )


def test_continued_pretraining_refuses_another_encoder_than_the_parents(store, tmp_path):
    pretrain(_config(store), models_dir=tmp_path)
    spec = _spec(store)
    spec["encoder"]["params"]["depth"] = 3
    with pytest.raises(ConfigError, match="holds a ts2vec encoder with config"):
        pretrain(PretrainConfig.model_validate(spec), models_dir=tmp_path, parent="tiny_ts2vec")


def test_cli_pretrain_from_a_version_writes_a_child_and_names_its_parent(store, tmp_path, run_cli):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(_spec(store)))
    models = tmp_path / "models"
    assert run_cli("pretrain", path, "--models-dir", models).exit_code == 0
    parent = Registry(models).resolve("tiny_ts2vec").ref
    result = run_cli(
        "pretrain", path, "--models-dir", models, "--from", parent, "--until", "2024-01-05"
    )
    assert result.exit_code == 0, result.stderr
    assert f"parent {parent}" in result.stdout
    assert "unseen from 2024-01-06T00:00:00Z" in result.stdout
    unknown = run_cli("pretrain", path, "--models-dir", models, "--from", "tiny_ts2vec@0000")
    assert unknown.exit_code == 2 and "is not a version of tiny_ts2vec" in unknown.stderr
    alone = run_cli("pretrain", path, "--models-dir", models, "--until", "2024-01-05")
    assert alone.exit_code == 2 and "--until: continues a version" in alone.stderr
