"""Optional experiment tracking in MLflow.

Tracking is on when a command gets ``--mlflow`` or the environment variable
``ENGINE_MLFLOW_URI`` names a tracking URI (any URI MLflow accepts: a
server, ``sqlite:///...``, Databricks). Without a URI it logs to a local
store, ``reports/mlflow/mlflow.db`` (SQLite) with artifacts beside it in
``reports/mlflow/artifacts/``; no server is needed. ``mlflow ui
--backend-store-uri sqlite:///reports/mlflow/mlflow.db`` shows it.

``log_run`` is the one way the engine logs: one MLflow run per backtest,
evaluation, pretraining or sweep, with its parameters (nested keys
flattened with dots), its final metrics, metric series by step (a loss
curve), its files as artifacts, and the exact model versions it used as the
tag ``engine.models``. MLflow is the ``[mlflow]`` extra, imported only when
tracking is on.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.models.compare import card_sections, flatten

ENV_URI = "ENGINE_MLFLOW_URI"
DEFAULT_FOLDER = "mlflow"
# MLflow refuses parameter values longer than this.
_PARAM_CHARS = 6000
_BATCH = 1000


def tracking_uri(enabled: bool, reports_dir: Path = Path("reports")) -> str | None:
    """Return the tracking URI to log to, or None when tracking is off.

    Tracking is on when ``enabled`` (the ``--mlflow`` flag) or when
    ``ENGINE_MLFLOW_URI`` is set; that variable's URI wins over the default
    local store under ``reports_dir``.
    """
    uri = os.environ.get(ENV_URI, "").strip()
    if uri:
        return uri
    if not enabled:
        return None
    database = (reports_dir / DEFAULT_FOLDER / "mlflow.db").resolve()
    return f"sqlite:///{database}"


def log_run(
    uri: str,
    *,
    experiment: str,
    run_name: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
    series: Mapping[str, Sequence[float]] | None = None,
    artifacts: Iterable[Path] = (),
    models: Iterable[str] = (),
    tags: Mapping[str, str] | None = None,
) -> str:
    """Log one run to the MLflow store at ``uri`` and return its run id.

    Parameters
    ----------
    uri : str
        The tracking URI (see ``tracking_uri``).
    experiment : str
        The experiment, created if missing (for a ``sqlite:///`` store, with
        its artifacts in ``artifacts/`` beside the database).
    run_name : str
        The run's name.
    params : mapping
        Parameters; nested mappings are flattened to dotted keys, values
        longer than MLflow accepts are cut.
    metrics : mapping, optional
        Final metrics; values that are not finite numbers are left out.
    series : mapping, optional
        Metric series, logged with steps 0, 1, 2...
    artifacts : iterable of Path
        Files and folders to attach (a folder keeps its name).
    models : iterable of str
        The exact model versions used (``name@version``), tagged ``engine.models``.
    tags : mapping, optional
        More tags.

    Raises
    ------
    ConfigError
        If MLflow is not installed.
    """
    require_mlflow()
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        location = None
        if uri.startswith("sqlite:///"):
            location = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
        experiment_id = client.create_experiment(experiment, artifact_location=location)
    else:
        experiment_id = found.experiment_id
    all_tags = {**(tags or {}), "engine.models": ", ".join(models)}
    run = client.create_run(experiment_id, run_name=run_name, tags=all_tags)
    run_id = run.info.run_id
    try:
        flat = {
            _key(key): str(value)[:_PARAM_CHARS] for key, value in flatten(dict(params)).items()
        }
        now = _now_ms()
        values = [
            Metric(_key(key), float(value), now, 0)
            for key, value in (metrics or {}).items()
            if _finite(value)
        ]
        for key, points in (series or {}).items():
            values += [
                Metric(_key(key), float(v), now, step)
                for step, v in enumerate(points)
                if _finite(v)
            ]
        items = list(flat.items())
        for start in range(0, max(len(items), len(values)), _BATCH):
            client.log_batch(
                run_id,
                metrics=values[start : start + _BATCH],
                params=[Param(k, v) for k, v in items[start : start + _BATCH]],
            )
        for path in artifacts:
            if path.is_dir():
                client.log_artifacts(run_id, str(path), artifact_path=path.name)
            else:
                client.log_artifact(run_id, str(path))
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id)
    return run_id


def require_mlflow() -> None:
    """Check that MLflow can be imported.

    Raises
    ------
    ConfigError
        If it cannot, saying how to install it.
    """
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--mlflow/ENGINE_MLFLOW_URI: MLflow is not installed; "
            'install the extra with pip install -e ".[mlflow]"'
        ) from None


def _key(name: str) -> str:
    # MLflow keys hold letters, digits, '_', '-', '.', ' ', ':' and '/' only.
    return re.sub(r"[^\w\-. :/]", "_", name)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _now_ms() -> int:
    return int(time.time() * 1000)


def track_backtest(uri: str, result: Any, folder: Path) -> str:
    """Log a backtest (an ``engine.runner.backtest.Backtest``) and its run folder."""
    models = [asset["model"] for asset in result.inputs["assets"] if asset.get("model")]
    return log_run(
        uri,
        experiment="engine run",
        run_name=folder.name,
        params=result.config.model_dump(mode="json"),
        metrics=result.metrics,
        artifacts=[folder],
        models=models,
        tags={"engine.strategy": result.config.name},
    )


def track_evaluation(uri: str, results: Mapping[str, Any], folder: Path) -> str:
    """Log an evaluation's ``results.json`` contents: every number as a metric, its folder."""
    tasks = ("probe", "finetuned", "label_efficiency", "anomaly", "volatility")
    settings = ("representations", "train_series", "test_series", "labels", "ranges")
    return log_run(
        uri,
        experiment="engine evaluate",
        run_name=folder.name,
        params={key: results[key] for key in (*settings, "embargo_bars") if key in results},
        metrics=flatten({task: results.get(task, {}) for task in tasks}),
        artifacts=[folder],
        models=results["inputs"].get("model_versions", {}).values(),
    )


def track_pretraining(uri: str, version: Any) -> str:
    """Log a pretraining: its config, data range, loss curve and the version folder."""
    card = version.card
    sections = card_sections(card)
    return log_run(
        uri,
        experiment="engine pretrain",
        run_name=version.ref,
        params={**sections["config"], **sections["lineage"], "version": version.ref},
        metrics=sections["metrics"],
        series={"loss": card["training"]["loss_curve"]},
        artifacts=[version.path],
        models=[version.ref],
        tags={"engine.parent": version.parent or ""},
    )


def track_sweep(uri: str, space: Any, summary: Mapping[str, Any], folder: Path) -> str:
    """Log a finished sweep: its space, the best trial's figures, DSR and PBO, and its files.

    Parameters are the search space (``engine.config.SweepConfig``), the
    strategy file and the best trial's values; metrics are the trial counts,
    the best trial's validation and test metrics, and the DSR's and PBO's
    numbers; the artifacts are ``summary.json``, ``trials.csv`` and
    ``report.html``.
    """
    best = summary["best"] or {}
    overfit = {key: value for key, value in (summary["pbo"] or {}).items() if key != "logits"}
    figures = {
        "trials": summary["trials"],
        "failed": summary["failed"],
        "best": {k: best[k] for k in ("number", "validation", "test") if k in best},
        "dsr": summary["dsr"] or {},
        "pbo": overfit,
    }
    return log_run(
        uri,
        experiment="engine sweep",
        run_name=folder.name,
        params={
            **space.model_dump(mode="json"),
            "strategy": summary["strategy"],
            "best_params": best.get("params", {}),
        },
        metrics=flatten(figures),
        artifacts=[folder / name for name in ("summary.json", "trials.csv", "report.html")],
        models=summary["models"],
    )
