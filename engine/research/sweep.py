"""Parameter sweeps: many backtests of one strategy file, ranked on a validation range.

A search space (``engine.config.SweepConfig``) names strategy-file values by
dotted path and the values they take, as a grid or an Optuna search. Each
trial is the strategy file with its values and ``out_of_sample`` set to the
validation range, written to ``trials/<number>.yaml`` in the sweep folder, and
backtested by ``engine.runner.backtest.run_backtest``, the code of ``engine
run``: its metrics are those ``engine run`` writes for that file, bit for bit.
The candles and representations are loaded once per market and
representation and shared by every trial.

Trials run in this process or as Ray tasks (``engine.executor``), which get
the shared inputs from Ray's object store; a task whose worker dies is
retried by Ray. Every finished trial is journaled
in ``trials.sqlite`` as it finishes; a sweep started again on the same
strategy and space resumes its unfinished folder and skips the journaled
trials. An Optuna search asks its trials in batches and tells each batch in
trial order before asking the next, so its trials do not depend on the
number of workers or on the order they finish in.

When every trial is done, the best trial by the objective is run once on
the test range, which no trial saw, and the Deflated Sharpe Ratio and the
PBO (``engine.research.overfitting``) are computed from the trials' daily
validation returns.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import itertools
import json
import math
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from engine.atomic import write_text
from engine.config import IntRange, StrategyConfig, SweepConfig, load_config
from engine.data.store import CandleStore
from engine.data.times import day_start_ms
from engine.errors import ConfigError, EngineError
from engine.executor import RAY_INSTALL, Executor
from engine.report.run import metrics_json
from engine.runner.backtest import Inputs, load_inputs, run_backtest
from engine.safe_yaml import load_yaml
from engine.strategy.representations import default_cache_dir

#: Metrics written to trials.csv beside each trial's values.
TABLE_METRICS = ("sharpe", "sortino", "total_return", "max_drawdown", "direction_accuracy")
TABLE_METRICS += ("turnover", "fees", "trades")


@dataclass(frozen=True)
class Trial:
    """One point of the search space, numbered in the order it was planned."""

    number: int
    params: dict[str, Any]


@dataclass(frozen=True)
class TrialResult:
    """What one trial's backtest produced (or the error that stopped it)."""

    metrics: str | None
    daily: str | None
    error: str | None
    seconds: float


# --- the search space --------------------------------------------------------


def _grid_values(spec) -> list:
    # The values a grid takes for one parameter: the list, or the range's steps.
    if isinstance(spec, list):
        return spec
    count = int(math.floor((spec.high - spec.low) / spec.step + 1e-9)) + 1
    values = [spec.low + i * spec.step for i in range(count)]
    return values if isinstance(spec, IntRange) else [round(v, 12) for v in values]


def grid(space: SweepConfig) -> list[Trial]:
    """Return every combination of the space's values, the last parameter varying fastest."""
    paths = list(space.parameters)
    combos = itertools.product(*(_grid_values(space.parameters[p]) for p in paths))
    return [Trial(i, dict(zip(paths, combo, strict=True))) for i, combo in enumerate(combos)]


class GridPlan:
    """A grid: one batch of every combination."""

    def __init__(self, space: SweepConfig) -> None:
        self.trials = grid(space)
        self.total = len(self.trials)
        self._done = False

    def next_batch(self) -> list[Trial]:
        """Return the next trials to run; empty when the plan is done."""
        if self._done:
            return []
        self._done = True
        return self.trials

    def tell(self, trial: Trial, value: float | None) -> None:
        """Record a trial's objective (a grid does not use it)."""


class OptunaPlan:
    """An Optuna search (TPE, seeded) asked in batches of ``space.batch`` trials."""

    def __init__(self, space: SweepConfig) -> None:
        optuna = _import_optuna()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self.study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=space.seed)
        )
        self.distributions = {p: _distribution(optuna, s) for p, s in space.parameters.items()}
        self.total = space.trials
        self.batch = space.batch
        self._asked: dict[int, Any] = {}

    def next_batch(self) -> list[Trial]:
        """Ask the next batch of trials; empty when the budget is spent."""
        count = min(self.batch, self.total - len(self.study.trials))
        batch = []
        for _ in range(max(count, 0)):
            asked = self.study.ask(self.distributions)
            self._asked[asked.number] = asked
            batch.append(Trial(asked.number, dict(asked.params)))
        return batch

    def tell(self, trial: Trial, value: float | None) -> None:
        """Tell the study a trial's objective; None (failed or undefined) fails the trial."""
        asked = self._asked.pop(trial.number)
        if value is None:
            self.study.tell(asked, state=self._optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(asked, value)


def _import_optuna():
    try:
        import optuna
    except ImportError:
        raise EngineError(
            f"search: optuna needs Optuna, which is not installed; install it with {RAY_INSTALL}"
        ) from None
    return optuna


def _distribution(optuna, spec):
    dists = optuna.distributions
    if isinstance(spec, list):
        return dists.CategoricalDistribution(spec)
    if isinstance(spec, IntRange):
        return dists.IntDistribution(spec.low, spec.high, log=spec.log, step=spec.step)
    return dists.FloatDistribution(spec.low, spec.high, log=spec.log, step=spec.step)


def make_plan(space: SweepConfig) -> GridPlan | OptunaPlan:
    """Return the space's plan of trials."""
    return GridPlan(space) if space.search == "grid" else OptunaPlan(space)


def apply(raw: dict, params: dict[str, Any], space_path: Path) -> dict:
    """Return a copy of the strategy file's values ``raw`` with ``params`` set by dotted path.

    Every key on a path must exist in the strategy file, except the last key
    under a component's ``params``, which may be added.
    """
    out = copy.deepcopy(raw)
    for path, value in params.items():
        node, parts = out, path.split(".")
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            addable = last and depth > 0 and parts[depth - 1] == "params"
            if not isinstance(node, dict) or (part not in node and not addable):
                where = ".".join(parts[:depth]) or "the top level"
                raise ConfigError(
                    f"{space_path}: parameters.{path}: the strategy file has no key {part!r} "
                    f"at {where}; expected the dotted path of a value in the strategy file"
                )
            if last:
                node[part] = value
            else:
                node = node[part]
    return out


def with_range(raw: dict, window) -> dict:
    """Return ``raw`` with ``out_of_sample`` set to the date range ``window``."""
    end = None if window.end is None else window.end.isoformat()
    return {**raw, "out_of_sample": {"start": window.start.isoformat(), "end": end}}


# --- the journal -------------------------------------------------------------


class Journal:
    """The SQLite journal of a sweep's finished trials (``trials.sqlite``).

    Each trial is committed in one transaction as it finishes, so a sweep
    killed at any moment keeps every trial it finished.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA synchronous=FULL")
        with self.db:
            self.db.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT)")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS trials(number INTEGER PRIMARY KEY, params TEXT NOT "
                "NULL, metrics TEXT, daily TEXT, error TEXT, seconds REAL NOT NULL)"
            )

    def meta(self, key: str) -> str | None:
        """Return a value of the sweep's description, or None."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        """Record a value of the sweep's description."""
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def record(self, trial: Trial, result: TrialResult) -> None:
        """Journal a finished trial."""
        with self.db:
            self.db.execute(
                "INSERT INTO trials VALUES (?, ?, ?, ?, ?, ?)",
                (
                    trial.number,
                    json.dumps(trial.params, sort_keys=True),
                    result.metrics,
                    result.daily,
                    result.error,
                    result.seconds,
                ),
            )

    def finished(self) -> dict[int, tuple[dict, TrialResult]]:
        """Return every journaled trial by number: its values and result."""
        rows = self.db.execute(
            "SELECT number, params, metrics, daily, error, seconds FROM trials ORDER BY number"
        )
        return {
            number: (json.loads(params), TrialResult(metrics, daily, error, seconds))
            for number, params, metrics, daily, error, seconds in rows
        }

    def close(self) -> None:
        """Close the database."""
        self.db.close()


# --- running trials ----------------------------------------------------------


def run_trial(raw: dict, inputs: Inputs, models_dir: Path, store_root: Path) -> TrialResult:
    """Backtest one trial's strategy values on the shared inputs, as ``engine run`` would.

    An ``EngineError`` (values the strategy cannot run with) is the trial's
    result; any other error propagates.
    """
    from engine.threads import one_thread

    clock = time.perf_counter()
    try:
        with one_thread():
            config = StrategyConfig.model_validate(raw)
            backtest = run_backtest(
                config, models_dir, CandleStore(store_root), cache_dir=None, inputs=inputs
            )
    except EngineError as exc:
        return TrialResult(None, None, str(exc), time.perf_counter() - clock)
    daily = {
        "dates": [d.date().isoformat() for d in backtest.daily.index],
        "returns": backtest.daily.tolist(),
    }
    return TrialResult(
        metrics_json(backtest.metrics), json.dumps(daily), None, time.perf_counter() - clock
    )


# --- the sweep ---------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """How far a sweep is: trials done of planned, and the best so far."""

    done: int
    total: int
    best_number: int | None
    best_value: float | None


@dataclass(frozen=True)
class SweepResult:
    """A finished sweep: its folder and summary."""

    folder: Path
    summary: dict
    resumed: int


def objective_value(metrics: str | None, objective: str) -> float | None:
    """Return a trial's objective from its metrics JSON; None if it failed or is undefined."""
    if metrics is None:
        return None
    value = json.loads(metrics).get(objective)
    return None if value is None or not math.isfinite(value) else float(value)


def fingerprint(raw: dict, space: SweepConfig) -> str:
    """Return the hash that tells whether a sweep folder belongs to this strategy and space."""
    text = json.dumps(raw, sort_keys=True, default=str) + space.model_dump_json()
    return hashlib.sha256(text.encode()).hexdigest()


def sweep_folder(reports_dir: Path, name: str, digest: str, fresh: bool) -> tuple[Path, bool]:
    """Return the sweep's folder and whether it is resumed.

    The latest unfinished folder of this sweep (no ``summary.json``) with the
    same fingerprint is resumed unless ``fresh``.
    """
    if not fresh:
        for folder in sorted(reports_dir.glob(f"sweep-{name}-*"), reverse=True):
            journal = folder / "trials.sqlite"
            if (folder / "summary.json").exists() or not journal.is_file():
                continue
            db = Journal(journal)
            try:
                if db.meta("fingerprint") == digest:
                    return folder, True
            finally:
                db.close()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = reports_dir / f"sweep-{name}-{stamp}"
    suffix = 1
    while True:
        try:
            folder.mkdir(parents=True)
            return folder, False
        except FileExistsError:
            # Another sweep of this name started in the same second.
            suffix += 1
            folder = reports_dir / f"sweep-{name}-{stamp}-{suffix}"


def _inputs_key(config: StrategyConfig) -> str:
    # Trials with the same key share candles and representations.
    fields = ("market", "store", "encoder", "representation", "seed")
    return config.model_dump_json(include=set(fields))


class Sweep:
    """One sweep of a strategy over a search space, run into its folder."""

    def __init__(
        self,
        strategy_path: Path,
        space_path: Path,
        models_dir: Path,
        reports_dir: Path,
        fresh: bool = False,
    ) -> None:
        self.strategy_path = strategy_path
        self.space_path = space_path
        self.space = load_config(space_path, SweepConfig)
        self.base = load_config(strategy_path, StrategyConfig)
        self.raw = load_yaml(strategy_path)
        self.models_dir = models_dir.resolve()
        self.store_root = CandleStore(self.base.store.path).root.resolve()
        apply(self.raw, dict.fromkeys(self.space.parameters), space_path)
        digest = fingerprint(self.raw, self.space)
        self.folder, self.resumed = sweep_folder(reports_dir, self.space.name, digest, fresh)
        self.journal = Journal(self.folder / "trials.sqlite")
        self.journal.set_meta("fingerprint", digest)
        self.journal.set_meta("space", self.space.model_dump_json())
        (self.folder / "trials").mkdir(exist_ok=True)
        self._local: dict[str, Inputs] = {}

    def trial_config(self, trial: Trial) -> tuple[dict, StrategyConfig]:
        """Write a trial's strategy file and return its values and validated config."""
        raw = with_range(apply(self.raw, trial.params, self.space_path), self.space.validation)
        path = self.folder / "trials" / f"{trial.number:04d}.yaml"
        write_text(path, yaml.safe_dump(raw, sort_keys=False))
        return raw, load_config(path, StrategyConfig)

    def inputs(self, config: StrategyConfig) -> tuple[str, Inputs]:
        """Return the key and the candles and representations of a trial's config, once loaded."""
        key = _inputs_key(config)
        if key not in self._local:
            start = day_start_ms(self.space.validation.start)
            store = CandleStore(self.store_root)
            self._local[key] = load_inputs(
                config, start, self.models_dir, store, default_cache_dir()
            )
            used = set(self.models())
            sources = [source for _, source in self._local[key].representations]
            used |= {source["model"] for source in sources if "model" in source}
            self.journal.set_meta("models", json.dumps(sorted(used)))
        return key, self._local[key]

    def models(self) -> list[str]:
        """Return the exact model versions (``name@version``) the trials and test run used.

        They are journaled as each market and representation is loaded, so a
        resumed sweep keeps the versions of the trials it skips.
        """
        return json.loads(self.journal.meta("models") or "[]")

    def run(
        self,
        executor: Executor,
        progress: Callable[[Progress], None] | None = None,
    ) -> SweepResult:
        """Run every trial not yet journaled, then the test run, and write the folder."""
        report = progress or (lambda _: None)
        plan = make_plan(self.space)
        finished = self.journal.finished()
        resumed = len(finished)
        shared: dict[str, Any] = {}
        best: tuple[float, int] | None = None
        done = 0
        while batch := plan.next_batch():
            jobs = []
            for trial in batch:
                raw, config = self.trial_config(trial)
                if trial.number in finished:
                    _check_params(self.folder, trial, finished[trial.number][0])
                    continue
                key, local = self.inputs(config)
                if key not in shared:
                    shared[key] = executor.share(local)
                jobs.append((trial.number, raw, shared[key]))
            for trial in batch:
                if trial.number in finished:
                    done += 1
                    best = _better(best, finished[trial.number][1], trial, self.space.objective)
            report(Progress(done, plan.total, *_unpack(best)))
            by_number = {t.number: t for t in batch}
            calls = [(raw, inputs, self.models_dir, self.store_root) for _, raw, inputs in jobs]
            for index, result in executor.map(run_trial, calls):
                number = jobs[index][0]
                self.journal.record(by_number[number], result)
                finished[number] = (by_number[number].params, result)
                done += 1
                best = _better(best, result, by_number[number], self.space.objective)
                report(Progress(done, plan.total, *_unpack(best)))
            for trial in batch:
                plan.tell(
                    trial, objective_value(finished[trial.number][1].metrics, self.space.objective)
                )
        from engine.research.sweep_report import summarise, write_outputs

        summary = summarise(self, finished, executor.workers)
        write_outputs(self, finished, summary)
        return SweepResult(self.folder, summary, resumed)

    def test_run(self, params: dict[str, Any]) -> dict:
        """Run the chosen values once on the test range; return the metrics."""
        raw = with_range(apply(self.raw, params, self.space_path), self.space.test)
        path = self.folder / "test.yaml"
        write_text(path, yaml.safe_dump(raw, sort_keys=False))
        config = load_config(path, StrategyConfig)
        _, inputs = self.inputs(config)
        backtest = run_backtest(
            config, self.models_dir, CandleStore(self.store_root), cache_dir=None, inputs=inputs
        )
        return backtest.metrics

    def close(self) -> None:
        """Close the journal."""
        self.journal.close()


def _check_params(folder: Path, trial: Trial, journaled: dict) -> None:
    if json.loads(json.dumps(trial.params, sort_keys=True)) != journaled:
        raise EngineError(
            f"{folder}: trial {trial.number} was journaled with {journaled}, but the plan now "
            f"gives {trial.params}; start a new sweep with --fresh"
        )


def _better(best, result: TrialResult, trial: Trial, objective: str):
    # The best (value, number) so far; ties go to the earlier trial.
    value = objective_value(result.metrics, objective)
    if value is None:
        return best
    if best is None or value > best[0] or (value == best[0] and trial.number < best[1]):
        return value, trial.number
    return best


def _unpack(best) -> tuple[int | None, float | None]:
    return (None, None) if best is None else (best[1], best[0])


def returns_matrix(finished: dict[int, tuple[dict, TrialResult]]) -> pd.DataFrame:
    """Return the daily validation returns of every successful trial (days x trials)."""
    columns = {}
    for number, (_, result) in sorted(finished.items()):
        if result.daily is not None:
            daily = json.loads(result.daily)
            columns[number] = pd.Series(daily["returns"], index=daily["dates"])
    return pd.DataFrame(columns).dropna()


def trial_rows(finished: dict[int, tuple[dict, TrialResult]], paths: list[str]) -> Iterator[dict]:
    """Yield one row per trial: number, values, status, metrics and error."""
    for number, (params, result) in sorted(finished.items()):
        metrics = {} if result.metrics is None else json.loads(result.metrics)
        yield {
            "number": number,
            **{path: params.get(path) for path in paths},
            "status": "failed" if result.error else "ok",
            **{name: metrics.get(name) for name in TABLE_METRICS},
            "error": result.error or "",
        }
