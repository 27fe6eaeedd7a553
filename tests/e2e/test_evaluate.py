"""End to end: `engine evaluate` on the shared candles, over a short range."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from browser import open_page

REPO_ROOT = Path(__file__).resolve().parents[2]
# the evaluation runs once, on one worker
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("evaluate")]

BTC, ETH, DOGE = "bybit:linear:BTCUSDT:1h", "bybit:linear:ETHUSDT:1h", "binance:spot:DOGEUSDT:1h"
SHORT = {
    "name": "short",
    "store": {"max_gap_bars": 1},
    "representations": [
        "ts2vec_bybit_1h",
        "features",
        "indicators",
        "pca",
        "supervised",
        "lstm",
        "majority",
    ],
    "baselines": {
        "supervised": {"iters": 5, "crop_length": 64, "params": {"output_dims": 8, "depth": 2}},
        "lstm": {"iters": 20, "window": 24, "hidden": 8},
    },
    "train_series": [BTC],
    "test_series": [BTC, ETH, DOGE],
    "train": {"start": "2024-10-01", "end": "2024-12-31"},
    "test": {"start": "2025-01-01", "end": "2025-03-31"},
    "finetune": {"iters": 4, "eval_every": 2, "crop_length": 64, "loss_bars": 32},
    "label_efficiency": {"sizes": [50, 500, 5000], "windows": 3},
    "anomaly": {"moves": [0.02], "history": 720},
    "bootstrap": {"reps": 200},
}


@pytest.fixture(scope="module")
def evaluated(shared_data, tmp_path_factory):
    """Run the short evaluation once for the tests that read its folder."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("evaluate")
    config = root / "short.yaml"
    config.write_text(yaml.safe_dump(SHORT))
    env = {
        "ENGINE_DATA_DIR": str(shared_data),
        "ENGINE_CACHE_DIR": str(root / "cache"),
        "PATH": str(Path(sys.executable).parent),
        "HOME": str(root),
        "PYTHONPATH": str(REPO_ROOT),
    }
    command = [str(Path(sys.executable).parent / "engine"), "evaluate", str(config)]
    command += ["--reports-dir", str(root / "reports"), "--models-dir", str(REPO_ROOT / "models")]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr
    folder = next((root / "reports").iterdir())
    return folder, done.stdout + done.stderr, json.loads((folder / "results.json").read_text())


def test_the_run_folder_holds_results_tables_and_report(evaluated):
    folder, stdout, _ = evaluated
    assert folder.name.startswith("evaluate-short-")
    names = {p.name for p in folder.iterdir()}
    tables = ("main", "transfer", "label_efficiency", "anomaly", "volatility")
    expected = {"results.json", "report.html", "config.yaml"}
    expected |= {f"{t}.{x}" for t in tables for x in ("md", "csv")}
    assert expected <= names
    assert "ts2vec_bybit_1h" in stdout and "probe accuracy" in stdout
    from engine.config import EvaluateConfig
    from engine.research.evaluate import count_steps

    # Off a terminal each step prints a line (then the report is written); lines ending in
    # ", working" only break a silence.
    steps = [line for line in stdout.splitlines() if line.startswith("[") and " s] " in line]
    steps = [line for line in steps if not line.endswith(", working")]
    assert len(steps) == count_steps(EvaluateConfig.model_validate(SHORT)) + 1
    assert "evaluate short: writing the report" in steps[-1]
    main = (folder / "main.md").read_text()
    assert "TS2Vec (contrastive)" in main and "55.2%" in main


def test_probe_results_have_the_layout_and_consistent_intervals(evaluated):
    _, _, results = evaluated
    for name in SHORT["representations"]:
        for target in (BTC, ETH, DOGE):
            m = results["probe"][name][BTC][target]
            for key in ("accuracy", "ci_low", "ci_high", "balanced_accuracy", "majority_rate"):
                assert 0.0 <= m[key] <= 1.0, (name, target, key)
            assert m["ci_low"] <= m["accuracy"] <= m["ci_high"]
            assert m["minus_features_ci"][0] <= m["minus_features"] <= m["minus_features_ci"][1]
    own = results["probe"]["features"][BTC][BTC]
    assert own["minus_features"] == 0.0 and own["minus_features_ci"] == [0.0, 0.0]
    majority = results["probe"]["majority"][BTC][BTC]
    assert majority["minus_majority"] == 0.0
    assert results["ranges"][BTC]["test"][0] == "2025-01-01T00:00:00Z"
    assert results["ranges"][BTC]["train"][1] < "2024-12-31T19:00:00Z"
    assert results["inputs"]["models"]["ts2vec_bybit_1h"]


def test_an_encoder_is_paired_with_the_features_it_reads(evaluated):
    # ts2vec_bybit_1h reads the same six features as the `features` baseline, so its
    # inputs' probe is that baseline's probe, bar for bar.
    _, _, results = evaluated
    for target in (BTC, ETH, DOGE):
        m = results["probe"]["ts2vec_bybit_1h"][BTC][target]
        features = results["probe"]["features"][BTC][target]
        assert m["inputs_accuracy"] == features["accuracy"]
        assert m["minus_inputs"] == m["minus_features"]
        assert m["minus_inputs_ci"] == m["minus_features_ci"]
        assert "minus_inputs" not in features


def test_finetuning_label_efficiency_anomaly_and_volatility_are_reported(evaluated):
    _, _, results = evaluated
    tuned = results["finetuned"]["ts2vec_bybit_1h"][BTC]
    assert set(tuned) == {BTC, ETH, DOGE}
    assert tuned[BTC]["ci_low"] <= tuned[BTC]["accuracy"] <= tuned[BTC]["ci_high"]
    curve = results["label_efficiency"]["features"]
    assert curve["50"]["windows"] == 3 and curve["5000"]["windows"] == 0
    assert curve["50"]["min"] <= curve["50"]["mean"] <= curve["50"]["max"]
    event = "abs_return>0.02_within_5"
    for detector in ("vol_zscore", "max_abs_z:ts2vec_bybit_1h", "anomaly_risk:ts2vec_bybit_1h"):
        m = results["anomaly"][detector][DOGE][event]
        assert 0.0 <= m["flag_rate"] <= 1.0 and 0.0 <= m["roc_auc"] <= 1.0
        assert 0.0 <= m["roc_auc_ci"][0] <= m["roc_auc_ci"][1] <= 1.0
        low, high = m["roc_auc_minus_vol_zscore_ci"]
        assert -1.0 <= low <= high <= 1.0
    trivial = results["anomaly"]["vol_zscore"][DOGE][event]
    assert trivial["roc_auc_minus_vol_zscore_ci"] == [0.0, 0.0]
    vol = results["volatility"]["ts2vec_bybit_1h"][ETH]
    assert vol["qlike_minus_har_ci"][0] <= vol["qlike_minus_har"] <= vol["qlike_minus_har_ci"][1]
    assert np.isfinite(vol["har_r2"])


def test_report_renders_in_headless_chromium(evaluated):
    folder, _, _ = evaluated
    with open_page(folder / "report.html") as (page, errors):
        text = page.inner_text("body")
        widths = page.eval_on_selector_all("img", "images => images.map(i => i.naturalWidth)")
    assert errors == []
    assert "Label efficiency" in text and "Transfer" in text and "ROC" in text and "PCA" in text
    assert len(widths) >= 4 and min(widths) > 100


def _config(tmp_path: Path, **changes) -> Path:
    spec = {**SHORT, **changes}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"test": {"start": "2024-12-01"}}, "test.start after train.end"),
        ({"embargo_bars": 2}, "embargo_bars of at least the label horizon"),
        ({"test_series": ["bybit:linear:BTC:1h"]}, "test_series[0]: got 'bybit:linear:BTC:1h'"),
        ({"train_series": ["BTCUSDT"]}, "exchange:market:SYMBOL:timeframe"),
        ({"tasks": ["probe", "backtest"]}, "tasks[1]: got 'backtest'"),
        ({"representations": ["no_such_model"]}, "no model 'no_such_model'"),
        ({"test_series": ["binance:spot:DOTUSDT:1h"]}, "has no binance_spot_DOTUSDT_1h.parquet"),
        (
            {
                "train": {"start": "2023-07-01", "end": "2023-12-31"},
                "test": {"start": "2024-06-01"},
            },
            "overlaps the pretraining range of ts2vec_bybit_1h",
        ),
    ],
)
def test_bad_evaluation_files_are_refused_with_exit_code_2(
    shared_data, tmp_path, monkeypatch, run_cli, changes, message
):
    monkeypatch.setenv("ENGINE_DATA_DIR", str(shared_data))
    monkeypatch.setenv("ENGINE_CACHE_DIR", str(tmp_path / "cache"))
    result = run_cli(
        "evaluate",
        _config(tmp_path, **changes),
        "--models-dir",
        REPO_ROOT / "models",
        "--reports-dir",
        tmp_path / "reports",
    )
    assert result.exit_code == 2, result.stdout
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())


def test_allowed_pretraining_overlap_runs_and_is_named_in_the_results(
    shared_data, tmp_path, monkeypatch, run_cli
):
    monkeypatch.setenv("ENGINE_DATA_DIR", str(shared_data))
    monkeypatch.setenv("ENGINE_CACHE_DIR", str(tmp_path / "cache"))
    spec = {
        **SHORT,
        "representations": ["ts2vec_bybit_1h", "features", "majority"],
        "test_series": [BTC],
        "train": {"start": "2024-03-01", "end": "2024-05-31"},
        "test": {"start": "2024-06-01", "end": "2024-07-31"},
        "tasks": ["probe"],
        "pretraining_overlap": "allow",
    }
    path = tmp_path / "overlap.yaml"
    path.write_text(yaml.safe_dump(spec))
    reports = tmp_path / "reports"
    result = run_cli(
        "evaluate", path, "--models-dir", REPO_ROOT / "models", "--reports-dir", reports
    )
    assert result.exit_code == 0, result.stderr
    assert "saw these test bars unlabelled in pretraining" in result.stdout
    folder = next(reports.iterdir())
    results = json.loads((folder / "results.json").read_text())
    assert list(results["pretraining_overlap"]) == ["ts2vec_bybit_1h"]
    assert "not to report out-of-sample results" in (folder / "report.html").read_text()
