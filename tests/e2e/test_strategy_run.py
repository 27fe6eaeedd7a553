"""End to end: `engine run`, `engine compare` and `engine audit` on the shared Bybit candles."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from browser import open_page

from engine.models.registry import Registry

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

SHORT_RANGE = {"start": "2025-03-01", "end": "2025-04-30"}
# the tests that read the sma_cross run folder, run once on one worker
SMA_RUN = pytest.mark.xdist_group("sma_run")


@pytest.fixture
def env(monkeypatch, shared_data, tmp_path):
    monkeypatch.setenv("ENGINE_DATA_DIR", str(shared_data))
    monkeypatch.setenv("ENGINE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def _strategy(tmp_path: Path, name: str, **changes) -> Path:
    spec = yaml.safe_load((REPO_ROOT / "strategies" / f"{name}.yaml").read_text())
    spec.update(changes)
    path = tmp_path / "strategies" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(spec))
    return path


def _run(run_cli, strategy: Path, reports: Path, console: list | None = None) -> Path:
    result = run_cli(
        "run", strategy, "--reports-dir", reports, "--models-dir", REPO_ROOT / "models"
    )
    assert result.exit_code == 0, result.stderr
    folders = sorted(p for p in reports.iterdir() if p.is_dir())
    assert folders, result.stdout
    if console is not None:
        console.append(result)
    return folders[-1]


@pytest.fixture(scope="module")
def sma_run(shared_data, tmp_path_factory) -> tuple[Path, str]:
    """Return the run folder and console output of sma_cross over the short range, run once."""
    from engine.cli import main

    root = tmp_path_factory.mktemp("sma_run")
    strategy = _strategy(root, "sma_cross", out_of_sample=SHORT_RANGE)
    command = ["engine", "run", str(strategy), "--reports-dir", str(root / "reports")]
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setenv("ENGINE_DATA_DIR", str(shared_data))
        patch.setenv("ENGINE_CACHE_DIR", str(root / "cache"))
        patch.setattr(sys, "argv", [*command, "--models-dir", str(REPO_ROOT / "models")])
        with pytest.raises(SystemExit) as done:
            main()
    assert done.value.code in (0, None)
    (folder,) = (root / "reports").iterdir()
    return folder, out.getvalue()


@SMA_RUN
def test_run_writes_the_run_folder(sma_run):
    folder, stdout = sma_run
    # Off a terminal, progress is plain lines, one per stage, before the table.
    lines = [line for line in stdout.splitlines() if line.startswith("[")]
    stages = [line.split(": ", 1)[1] for line in lines if not line.endswith(", working")]
    assert stages[0] == "checking the strategy, its model and its candles"
    assert stages[1].startswith("loading candles (1/5, about ")
    assert stages[-1].startswith("writing the run folder and tearsheet (4/5, about ")
    names = {p.name for p in folder.iterdir()}
    expected = {"tearsheet.html", "metrics.json", "trades.csv", "equity.csv", "config.yaml"}
    assert expected | {"inputs.json", "timings.json"} <= names
    metrics = json.loads((folder / "metrics.json").read_text())
    for key in ("direction_accuracy", "total_return", "sharpe", "fees", "funding", "trades"):
        assert key in metrics
    equity = pd.read_csv(folder / "equity.csv")
    assert len(equity) == metrics["bars"] == 61 * 24
    assert equity["time"].iloc[0].startswith("2025-03-01T00:00")
    assert equity["time"].iloc[-1].startswith("2025-04-30T23:00")
    trades = pd.read_csv(folder / "trades.csv")
    assert len(trades) == metrics["trades"] > 0
    assert set(trades["side"]) <= {"buy", "sell"}
    total_fees = trades["fee"].sum()
    assert total_fees == pytest.approx(metrics["fees"], rel=1e-9)
    inputs = json.loads((folder / "inputs.json").read_text())
    assert [a["candles"] for a in inputs["assets"]] == ["bybit_linear_BTCUSDT_1h.parquet"]
    assert len(inputs["assets"][0]["candles_sha256"]) == 64 and len(inputs["config_sha256"]) == 64


@SMA_RUN
def test_a_second_run_writes_an_identical_metrics_file(env, run_cli, sma_run):
    second = _run(run_cli, _strategy(env, "sma_cross", out_of_sample=SHORT_RANGE), env / "two")
    assert (sma_run[0] / "metrics.json").read_bytes() == (second / "metrics.json").read_bytes()


_ROWS = """() => Array.from(document.querySelectorAll('tr')).map(
    row => Array.from(row.querySelectorAll('td')).map(cell => cell.innerText.trim()))"""
_HEATMAP_CELLS = """() => Array.from(document.querySelectorAll('#monthly_heatmap svg text'))
    .map(t => t.textContent.trim()).filter(t => /^-?[0-9]+[.][0-9]{2}$/.test(t))"""


def _points(text: str) -> float:
    # "+5.99%" or "-28.88%" as percentage points.
    return float(text.rstrip("%"))


@SMA_RUN
def test_tearsheet_renders_in_headless_chromium(sma_run, tmp_path):
    from engine.report.metrics import HEADLINE, format_metric

    folder, stdout = sma_run
    metrics = json.loads((folder / "metrics.json").read_text())
    shot = tmp_path / "tearsheet.png"
    with open_page(folder / "tearsheet.html") as (page, errors):
        text = page.inner_text("body")
        rows = {row[0]: row[1:] for row in page.evaluate(_ROWS) if row}
        heatmap = page.evaluate(_HEATMAP_CELLS)
        page.screenshot(path=str(shot), full_page=False)
    assert errors == []
    # The rendered page, metrics.json and the console agree to 0.01 percentage point.
    hold, strat = rows["Cumulative Return"]
    assert abs(_points(strat) - 100 * metrics["total_return"]) <= 0.01
    assert abs(_points(hold) - 100 * metrics["benchmark_return"]) <= 0.01
    for name in ("total_return", "benchmark_return", "max_drawdown"):
        shown = rows[HEADLINE[name][0]][0]
        assert abs(_points(shown) - 100 * metrics[name]) <= 0.01, name
        row = f"│ {HEADLINE[name][0]} │ {format_metric(metrics, name)} │"
        assert row in " ".join(stdout.split()), name
    # Two months hold bars (March and April 2025): the heatmap prints two numbers.
    assert len(heatmap) == 2, heatmap
    assert "sma_cross: out-of-sample 2025-03-01 to 2025-04-30" in text
    assert "Sharpe" in text and "Max Drawdown" in text
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10, "the screenshot is blank"
    assert (pixels < 128).mean() > 0.005, "the screenshot has almost no dark pixels"


def test_compare_prints_and_writes_a_side_by_side_table(env, run_cli):
    a = _strategy(env, "sma_cross", out_of_sample=SHORT_RANGE)
    b = _strategy(env, "buy_and_hold", out_of_sample=SHORT_RANGE)
    result = run_cli("compare", a, b, "--reports-dir", env / "reports")
    assert result.exit_code == 0, result.stderr
    csv = next((env / "reports").glob("compare-*.csv"))
    table = pd.read_csv(csv)
    assert table["strategy"].tolist() == ["sma_cross", "buy_and_hold"]
    hold = table.set_index("strategy").loc["buy_and_hold"]
    assert hold["trades"] == 1
    assert "sma_cross" in result.stdout and "buy_and_hold" in result.stdout


def test_audit_reports_no_leak_for_a_causal_strategy(env, run_cli):
    result = run_cli("audit", _strategy(env, "sma_cross", out_of_sample=SHORT_RANGE))
    assert result.exit_code == 0, result.stderr
    assert "changed values at or before t: 0" in result.stdout


def test_audit_catches_a_deliberately_leaky_component(env, run_cli, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    strategy = _strategy(
        env,
        "sma_cross",
        out_of_sample=SHORT_RANGE,
        components={"signal": {"class": "leaky:PeekingSignal"}},
    )
    result = run_cli("audit", strategy, "--samples", "2")
    assert result.exit_code == 1
    leaks = int(result.stdout.rsplit("changed values at or before t:", 1)[1].split()[0])
    # At each of the 2 sampled bars t, the score of bar t saw bar t + 1, and so did
    # the target and the order mode derived from it.
    assert leaks == 6


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"encoder": "no_such_model", "representation": None}, "no model 'no_such_model'"),
        ({"components": {"signal": {"class": "engine.strategy.nowhere:X"}}}, "cannot import"),
        ({"out_of_sample": {"start": "2030-01-01"}}, "holds 0 bars"),
        ({"market": {"symbols": ["DOGEUSDT"], "timeframe": "1h"}}, "DOGEUSDT"),
    ],
    ids=["missing_model", "unknown_component", "range_without_data", "missing_data"],
)
def test_bad_input_gets_a_clear_message_and_non_zero_exit(
    env, run_cli, monkeypatch, change, message
):
    monkeypatch.setenv("ENGINE_OFFLINE", "1")
    result = run_cli("run", _strategy(env, "sma_cross", **change), "--reports-dir", env / "r")
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_run_without_trades_writes_its_folder_and_says_there_is_nothing_to_chart(env, run_cli):
    # The RSI of hourly BTC never leaves 1..99 in these ten days, so the signal never fires.
    never = {"period": 14, "lower": 1, "upper": 99, "band": 0.5}
    signal = {"class": "engine.strategy.baselines:RsiReversion", "params": never}
    ten_days = {"start": "2025-03-01", "end": "2025-03-10"}
    strategy = _strategy(
        env, "rsi_reversion", components={"signal": signal}, out_of_sample=ten_days
    )
    folder = _run(run_cli, strategy, env / "reports")
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["trades"] == 0 and metrics["total_return"] == 0.0
    assert metrics["benchmark_return"] != 0.0
    assert "Nothing to chart" in (folder / "tearsheet.html").read_text(encoding="utf-8")


def test_portfolio_of_four_assets_runs_and_passes_the_audit(env, run_cli):
    strategy = _strategy(env, "ssl_portfolio", encoder="cost_bybit_1h", out_of_sample=SHORT_RANGE)
    folder = _run(run_cli, strategy, env / "reports")
    trades = pd.read_csv(folder / "trades.csv")
    assert set(trades["symbol"]) == {"BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"}
    equity = pd.read_csv(folder / "equity.csv")
    weights = equity[[f"weight_{s}" for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")]]
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    result = run_cli("audit", strategy, "--samples", "2")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "changed values at or before t: 0" in result.stdout


@SMA_RUN
def test_run_fetches_missing_candles_and_funding_through_ccxt(
    shared_data, tmp_path, monkeypatch, run_cli, sma_run
):
    from functools import partial

    from fakes.bybit import FakeBybit

    from engine.data import feed

    candles = pd.read_parquet(shared_data / "bybit_linear_BTCUSDT_1h.parquet")
    rates = pd.read_parquet(shared_data / "bybit_linear_BTCUSDT_funding_8h.parquet")
    empty_store = tmp_path / "store"
    monkeypatch.setenv("ENGINE_DATA_DIR", str(empty_store))
    monkeypatch.setenv("ENGINE_CACHE_DIR", str(tmp_path / "cache"))
    strategy = _strategy(tmp_path, "sma_cross", out_of_sample=SHORT_RANGE)
    with FakeBybit(now_ms=int(candles["timestamp"].iloc[-1]) + 1_800_000) as fake:
        fake.add_candles("linear", "BTCUSDT", "1h", candles)
        fake.add_funding("BTCUSDT", rates)
        monkeypatch.setattr(feed, "make_exchange", partial(feed.make_exchange, api_urls=fake.url))
        folder = _run(run_cli, strategy, tmp_path / "reports")
    stored = pd.read_parquet(empty_store / "bybit_linear_BTCUSDT_1h.parquet")
    assert stored["timestamp"].iloc[0] < pd.Timestamp("2025-03-01", tz="UTC").value // 10**6
    assert (empty_store / "bybit_linear_BTCUSDT_funding_8h.parquet").is_file()
    fetched = json.loads((folder / "metrics.json").read_text())
    # the same strategy run on the shared candles
    assert fetched == json.loads((sma_run[0] / "metrics.json").read_text())


SHIPPED = sorted(p.stem for p in (REPO_ROOT / "strategies").glob("*.yaml"))


def test_the_main_strategy_runs_with_the_shipped_encoder(env, run_cli, monkeypatch):
    # Tracked in a local MLflow file store (the quickest store to create).
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("ENGINE_MLFLOW_URI", (env / "mlruns").as_uri())
    folder = _run(run_cli, _strategy(env, "ssl_cost", out_of_sample=SHORT_RANGE), env / "r")
    inputs = json.loads((folder / "inputs.json").read_text())
    version = Registry(REPO_ROOT / "models").resolve("cost_bybit_1h").ref
    assert inputs["assets"][0]["model"] == version
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(env / "mlruns").as_uri())
    [run] = client.search_runs([client.get_experiment_by_name("engine run").experiment_id])
    assert run.data.tags["engine.models"] == version and run.info.run_name == folder.name
    assert run.data.metrics["trades"] == json.loads((folder / "metrics.json").read_text())["trades"]
    equity = pd.read_csv(folder / "equity.csv")
    for output in ("score", "size", "risk_scale", "anomaly", "similarity"):
        assert equity[f"{output}_BTCUSDT"].notna().all()
    assert set(equity["mode_BTCUSDT"]) >= {0, 2}  # market orders and waiting
    assert (equity["position_BTCUSDT"] != 0).any()


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_strategy_passes_the_lookahead_audit(env, run_cli, name):
    # The audit trains a supervised or fine-tuned representation once per run it compares;
    # which bars the training reads does not depend on how many steps it takes, so it takes
    # 20 rather than 150 or 200.
    changes = {"out_of_sample": SHORT_RANGE}
    representation = yaml.safe_load((REPO_ROOT / "strategies" / f"{name}.yaml").read_text()).get(
        "representation", {}
    )
    if "iters" in representation:
        changes["representation"] = {**representation, "iters": 20}
    result = run_cli("audit", _strategy(env, name, **changes), "--samples", "2")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "changed values at or before t: 0" in result.stdout
