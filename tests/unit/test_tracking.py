"""MLflow tracking against a local SQLite store (no server): every command, and no mlflow."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.config import StrategyConfig, SweepConfig, load_config
from engine.errors import ConfigError
from engine.tracking import (
    ENV_URI,
    log_run,
    track_backtest,
    track_evaluation,
    track_sweep,
    tracking_uri,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
mlflow = pytest.importorskip("mlflow")
# one tracking store, on one worker
pytestmark = pytest.mark.xdist_group("tracking")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    # One store for the module: creating MLflow's tables takes seconds.
    return tracking_uri(True, tmp_path_factory.mktemp("reports"))


def _client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def test_tracking_is_off_unless_asked_and_the_variable_wins(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_URI, raising=False)
    assert tracking_uri(False, tmp_path) is None
    assert tracking_uri(True, tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow/mlflow.db"
    monkeypatch.setenv(ENV_URI, "http://tracking.example:5000")
    assert tracking_uri(False, tmp_path) == "http://tracking.example:5000"


def test_a_run_logs_params_metrics_series_artifacts_and_model_versions(store, tmp_path):
    artifact = tmp_path / "folder"
    artifact.mkdir()
    (artifact / "metrics.json").write_text("{}")
    run_id = log_run(
        store,
        experiment="unit",
        run_name="one",
        params={"market": {"symbols": ["BTCUSDT"]}, "seed": 7},
        metrics={"sharpe": 0.5, "missing": None, "nan": float("nan")},
        series={"loss": [3.0, 2.0, 1.5]},
        artifacts=[artifact],
        models=["cost_bybit_1h@6cf526b32216"],
    )
    client = _client(store)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"market.symbols": '["BTCUSDT"]', "seed": "7"}
    assert run.data.metrics == {"sharpe": 0.5, "loss": 1.5}
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == [3.0, 2.0, 1.5]
    assert run.data.tags["engine.models"] == "cost_bybit_1h@6cf526b32216"
    assert [a.path for a in client.list_artifacts(run_id, "folder")] == ["folder/metrics.json"]


def test_a_backtest_logs_its_strategy_metrics_and_exact_model(store, tmp_path):
    config = load_config(REPO_ROOT / "strategies" / "ssl_cost.yaml", StrategyConfig)
    folder = tmp_path / "ssl_cost-20260101T000000Z"
    folder.mkdir()
    (folder / "metrics.json").write_text("{}")
    result = SimpleNamespace(
        config=config,
        metrics={"total_return": 0.06, "trades": 237},
        inputs={"assets": [{"model": "cost_bybit_1h@6cf526b32216"}]},
    )
    run = _client(store).get_run(track_backtest(store, result, folder))
    assert run.data.params["encoder"] == "cost_bybit_1h"
    assert run.data.metrics["total_return"] == 0.06
    assert run.data.tags["engine.models"] == "cost_bybit_1h@6cf526b32216"


def test_cli_pretrain_with_mlflow_logs_the_version(monkeypatch, tmp_path, run_cli, shared_data):
    import pandas as pd
    import yaml

    from engine.data.store import CandleStore, SeriesKey

    candles = pd.read_parquet(shared_data / "bybit_linear_BTCUSDT_1h.parquet").head(72)
    CandleStore(tmp_path / "store").write(SeriesKey("bybit", "linear", "BTCUSDT", "1h"), candles)
    first = pd.Timestamp(int(candles["timestamp"].iloc[0]), unit="ms").date()
    spec = {
        "name": "tracked",
        "data": {
            "store": {"path": str(tmp_path / "store")},
            "exchange": "bybit",
            "market": "linear",
            "symbols": ["BTCUSDT"],
            "timeframe": "1h",
            "start": str(first),
        },
        "encoder": {"kind": "ts2vec", "params": {"output_dims": 4, "hidden_dims": 4, "depth": 1}},
        "training": {"iters": 3, "batch_size": 2, "max_train_length": 24},
    }
    path = tmp_path / "tracked.yaml"
    path.write_text(yaml.safe_dump(spec))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv(ENV_URI, uri)
    result = run_cli("pretrain", path, "--models-dir", tmp_path / "models")
    assert result.exit_code == 0, result.stderr
    [run] = _client(uri).search_runs(
        [_client(uri).get_experiment_by_name("engine pretrain").experiment_id]
    )
    assert run.data.tags["engine.models"].startswith("tracked@")
    assert run.data.tags["engine.models"] in result.stdout
    assert len(_client(uri).get_metric_history(run.info.run_id, "loss")) == 3


def test_asking_for_mlflow_without_it_says_how_to_install(monkeypatch, run_cli, tmp_path):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.delenv(ENV_URI, raising=False)
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[mlflow\]"'):
        log_run("sqlite:///unused.db", experiment="x", run_name="y", params={})
    strategy = REPO_ROOT / "strategies" / "buy_and_hold.yaml"
    result = run_cli("run", strategy, "--mlflow", "--reports-dir", tmp_path)
    assert result.exit_code == 2 and "MLflow is not installed" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_evaluation_logs_every_figure_and_the_exact_models(store, tmp_path):
    results = {
        "representations": {"cost_bybit_1h": "cost", "features": "features"},
        "train_series": ["bybit:linear:BTCUSDT:1h"],
        "embargo_bars": 5,
        "inputs": {"model_versions": {"cost_bybit_1h": "cost_bybit_1h@6cf526b32216"}},
        "probe": {"cost_bybit_1h": {"bybit:linear:BTCUSDT:1h": {"accuracy": 0.53}}},
        "volatility": {"features": {"bybit:linear:BTCUSDT:1h": {"qlike": None}}},
    }
    folder = tmp_path / "evaluate-seed-20260101T000000Z"
    folder.mkdir()
    (folder / "results.json").write_text("{}")
    run = _client(store).get_run(track_evaluation(store, results, folder))
    assert run.data.metrics == {"probe.cost_bybit_1h.bybit:linear:BTCUSDT:1h.accuracy": 0.53}
    assert run.data.params["embargo_bars"] == "5"
    assert run.data.tags["engine.models"] == "cost_bybit_1h@6cf526b32216"


def test_a_sweep_logs_its_space_best_trial_overfitting_files_and_models(store, tmp_path):
    space = load_config(REPO_ROOT / "sweeps" / "ssl_cost_small.yaml", SweepConfig)
    summary = {
        "strategy": "strategies/ssl_cost.yaml",
        "trials": 12,
        "failed": 1,
        "best": {
            "number": 4,
            "params": {"components.signal.params.entry": 0.2},
            "validation": {"sharpe": 1.25, "trades": 80},
            "test": {"sharpe": -0.5, "trades": 31},
        },
        "dsr": {"dsr": 0.41, "days": 365},
        "pbo": {"pbo": 0.3, "splits": 12870, "logits": [0.5, -0.2]},
        "models": ["cost_bybit_1h@6cf526b32216"],
    }
    folder = tmp_path / "sweep-ssl_cost_small-20260101T000000Z"
    folder.mkdir()
    for name in ("summary.json", "trials.csv", "report.html", "trials.sqlite"):
        (folder / name).write_text("x")
    run_id = track_sweep(store, space, summary, folder)
    client = _client(store)
    run = client.get_run(run_id)
    assert run.data.params["parameters.components.signal.params.exit"] == "[0.0, 0.05, 0.1]"
    assert run.data.params["best_params.components.signal.params.entry"] == "0.2"
    assert run.data.params["validation.start"] == "2025-01-01"
    assert run.data.metrics == {
        "trials": 12,
        "failed": 1,
        "best.number": 4,
        "best.validation.sharpe": 1.25,
        "best.validation.trades": 80,
        "best.test.sharpe": -0.5,
        "best.test.trades": 31,
        "dsr.dsr": 0.41,
        "dsr.days": 365,
        "pbo.pbo": 0.3,
        "pbo.splits": 12870,
    }
    assert run.data.tags["engine.models"] == "cost_bybit_1h@6cf526b32216"
    artifacts = sorted(a.path for a in client.list_artifacts(run_id))
    assert artifacts == ["report.html", "summary.json", "trials.csv"]


def test_a_sweep_where_every_trial_failed_logs_its_counts(store, tmp_path):
    space = load_config(REPO_ROOT / "sweeps" / "ssl_cost_small.yaml", SweepConfig)
    summary = {"strategy": "s.yaml", "trials": 2, "failed": 2, "best": None}
    summary |= {"dsr": None, "pbo": None, "models": []}
    folder = tmp_path / "sweep-failed"
    folder.mkdir()
    for name in ("summary.json", "trials.csv", "report.html"):
        (folder / name).write_text("x")
    run = _client(store).get_run(track_sweep(store, space, summary, folder))
    assert run.data.metrics == {"trials": 2, "failed": 2}
    assert run.data.tags["engine.models"] == ""


@pytest.mark.slow
def test_cli_sweep_with_mlflow_logs_one_run_with_the_summary(
    monkeypatch, tmp_path, run_cli, shared_data
):
    import json

    import yaml

    space = tmp_path / "tiny.yaml"
    spec = {
        "name": "tiny",
        "validation": {"start": "2025-03-01", "end": "2025-03-31"},
        "test": {"start": "2025-04-01", "end": "2025-04-10"},
        "cscv_blocks": 2,
        "parameters": {"components.signal.params.entry": [0.1, 0.3]},
    }
    space.write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("ENGINE_DATA_DIR", str(shared_data))
    monkeypatch.delenv(ENV_URI, raising=False)
    result = run_cli(
        "sweep", REPO_ROOT / "strategies" / "ssl_cost.yaml", "--space", space, "--workers", "1",
        "--models-dir", REPO_ROOT / "models", "--reports-dir", tmp_path / "reports", "--mlflow",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    uri = tracking_uri(True, tmp_path / "reports")
    client = _client(uri)
    [run] = client.search_runs([client.get_experiment_by_name("engine sweep").experiment_id])
    [folder] = (tmp_path / "reports").glob("sweep-tiny-*")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["models"] and all(m.startswith("cost_bybit_1h@") for m in summary["models"])
    assert run.data.tags["engine.models"] == ", ".join(summary["models"])
    assert run.data.metrics["best.test.sharpe"] == summary["best"]["test"]["sharpe"]
    assert run.data.metrics["trials"] == 2
    assert run.info.run_id in result.stdout
