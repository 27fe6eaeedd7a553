"""What a representation knows, out of sample: the tasks of ``engine evaluate``.

``evaluate`` reads the candles of every series an evaluation file names,
computes each representation of every bar (causally: row t uses bars 0..t),
and runs the tasks on test bars that come after the training bars, with an
embargo of at least the label horizon between them:

- ``probe``: the strategy layer's own linear probe (``ProbeSignal``: a
  multinomial logistic regression standardised on the training rows) trained
  on a series' training range and tested on its test range. Its
  regularisation is chosen on a validation slice at the end of the training
  range, never on test bars.
- ``transfer``: the same probe trained on series A and tested on series B.
- ``finetuned``: each pretrained encoder fine-tuned with an MLP head on the
  training labels (``engine.ssl.finetune``), early-stopped on the validation
  slice.
- ``label_efficiency``: probes trained on N labelled bars, several disjoint
  windows per N.
- ``anomaly``: anomaly scores against future large moves.
- ``volatility``: a ridge probe forecasting the next bars' realised variance,
  against a HAR-RV model of the returns.

Every accuracy comes with a moving-block bootstrap interval over the test
bars; every representation is resampled with the same blocks, so differences
to the raw features and to the majority class are paired. The majority
predictor always predicts the training rows' most frequent class, and the raw
features are always evaluated, as the two references every figure is set
against. A pretrained model's probe is paired, too, with a probe on the
features its encoder reads (``minus_inputs``), so a result says whether the
encoder adds to its own inputs. The supervised baselines (``supervised``, ``lstm``) learn from the
training rows before the validation slice, so the slice that chooses their
probe's regularisation is unseen by them too.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score, log_loss

from engine.config import BASELINES, EvaluateConfig
from engine.data.store import CandleStore, SeriesKey
from engine.data.times import day_range_ms, iso_utc
from engine.errors import ConfigError, DataError
from engine.research.anomaly import (
    detection_metrics,
    large_move_events,
    large_moves,
    resampled_auc,
    roc_points,
    trailing_max_abs_z,
    volatility_zscore,
)
from engine.research.baselines import indicator_representations, lstm_representations, train_lstm
from engine.research.stats import (
    block_bootstrap_indices,
    mean_estimate,
    paired_difference,
    percentile_interval,
)
from engine.research.volatility import (
    fit_har,
    fit_ridge,
    future_log_variance,
    har_features,
    qlike_losses,
    r2,
)
from engine.scaling import Standardiser
from engine.ssl.finetune import finetune
from engine.ssl.folder import PretrainedModel
from engine.ssl.infer import encode_series
from engine.strategy.base import Costs, FitContext, History
from engine.strategy.components import AnomalyRisk, ProbeSignal
from engine.strategy.features import DOWN, UP, direction_labels
from engine.strategy.representations import (
    bar_numbers,
    cached,
    cached_model_representations,
    feature_representations,
    hash_candles,
    load_unseen_model,
    model_feature_matrix,
    model_hash,
    pca_representations,
    train_supervised_encoder,
)

#: Inverse L2 strengths among which each probe's is chosen on the validation slice.
PROBE_GRID = (0.001, 0.01, 0.1, 1.0)
#: Share of the training rows, at their end, that validates probes and fine-tuning.
VALIDATION_SHARE = 0.2
#: Fewest training and test rows an evaluation accepts.
MIN_TRAIN_ROWS, MIN_TEST_ROWS = 200, 100
#: Representations that are references for every other one.
REFERENCES = ("features", "majority")
#: Prefix of the reference made of a model's own input features, before its encoder.
INPUTS = "inputs:"
#: Baselines trained on the labels: their representation depends on the training series.
SUPERVISED = ("supervised", "lstm")

Progress = Callable[[str], None]

#: Evaluation fits probes and anomaly scores to measure representations; it trades nothing.
NO_COSTS = Costs(maker_fee=0.0, taker_fee=0.0)


@dataclass(frozen=True)
class Series:
    """One series of an evaluation: candles, labels and its training and test rows."""

    name: str
    key: SeriesKey
    candles: pd.DataFrame
    labels: np.ndarray
    train: slice
    test: slice
    sha256: str

    @property
    def close(self) -> np.ndarray:
        """Return the closes."""
        return self.candles["close"].to_numpy(dtype=np.float64)


@dataclass
class Evaluation:
    """The outcome of ``evaluate``: ``results`` is what results.json holds."""

    config: EvaluateConfig
    results: dict
    curves: dict = field(default_factory=dict)
    maps: dict = field(default_factory=dict)


def _parse_series(name: str) -> SeriesKey:
    exchange, market, symbol, timeframe = name.split(":")
    return SeriesKey(exchange, market, symbol, timeframe)


def _rows(timestamps: np.ndarray, start_ms: int, stop_ms: int | None) -> slice:
    stop = len(timestamps) if stop_ms is None else np.searchsorted(timestamps, stop_ms)
    return slice(int(np.searchsorted(timestamps, start_ms)), int(stop))


def load_series(config: EvaluateConfig, store: CandleStore) -> dict[str, Series]:
    """Return every series the config names, with labels and its training and test rows.

    Training rows lie in the training range and end ``embargo_bars`` before
    the first test bar; test rows are the test range's bars whose label is
    known. A series is cut after the test range, so no later bar is ever read.

    Raises
    ------
    DataError
        If a series is missing from the store, or has too few training or
        test bars.
    """
    train_start, train_stop = day_range_ms(config.train.start, config.train.end)
    test_start, test_stop = day_range_ms(config.test.start, config.test.end)
    horizon = config.labels.horizon
    out = {}
    for name in dict.fromkeys([*config.train_series, *config.test_series]):
        key = _parse_series(name)
        if not store.exists(key):
            raise DataError(
                f"series {name}: the store {store.root} has no {key.filename}; fetch it with "
                "`engine data fetch`, or point --store or ENGINE_DATA_DIR at a store that has it"
            )
        candles = store.load(key, config.store.gap_policy, config.store.max_gap_bars)
        timestamps = candles["timestamp"].to_numpy()
        if test_stop is not None:
            candles = candles.iloc[: np.searchsorted(timestamps, test_stop)].reset_index(drop=True)
            timestamps = timestamps[: len(candles)]
        test = _rows(timestamps, test_start, None)
        test = slice(test.start, max(test.start, len(candles) - horizon))
        train = _rows(timestamps, train_start, train_stop)
        train = slice(train.start, min(train.stop, test.start - config.embargo_bars))
        if train.stop - train.start < MIN_TRAIN_ROWS or test.stop - test.start < MIN_TEST_ROWS:
            raise DataError(
                f"series {name}: {max(train.stop - train.start, 0)} training and "
                f"{test.stop - test.start} test bars in the store; expected at least "
                f"{MIN_TRAIN_ROWS} and {MIN_TEST_ROWS} (check train, test and the store's range)"
            )
        labels = direction_labels(candles["close"].to_numpy(), horizon, config.labels.threshold)
        out[name] = Series(name, key, candles, labels, train, test, hash_candles(candles))
    return out


class Representations:
    """Every representation of every series, computed once and cached on disk."""

    def __init__(
        self, config: EvaluateConfig, series: dict[str, Series], models_dir: Path, cache_dir
    ) -> None:
        self.config, self.series, self.cache_dir = config, series, cache_dir
        test_start = day_range_ms(config.test.start, None)[0]
        checked = test_start if config.pretraining_overlap == "refuse" else None
        self.models: dict[str, PretrainedModel] = {
            name: load_unseen_model(models_dir, name, checked, "test.start")
            for name in config.representations
            if name not in BASELINES
        }
        #: Models whose pretraining saw test bars, by name, with their unseen-from date.
        self.overlapping = {
            name: model.spec.unseen_from.isoformat()
            for name, model in self.models.items()
            if pd.Timestamp(model.spec.unseen_from).value // 1_000_000 > test_start
        }
        self._memo: dict[tuple[str, str, str], np.ndarray | None] = {}
        self._trained: dict[tuple[str, str], object] = {}

    @property
    def names(self) -> list[str]:
        """Return the representations evaluated: the config's, then the missing references."""
        listed = list(self.config.representations)
        return listed + [name for name in REFERENCES if name not in listed]

    def kind(self, name: str) -> str:
        """Return ``name``'s baseline kind, or the encoder kind of a model."""
        if name in BASELINES:
            return name
        return self.models[name].encoder.kind

    def get(self, name: str, train: str, target: str) -> np.ndarray | None:
        """Return representation ``name`` of series ``target`` (None for ``majority``).

        ``train`` is the series whose labels a supervised baseline learns
        from; other representations ignore it.
        """
        memo = (name, train if name in SUPERVISED else "", target)
        if memo not in self._memo:
            self._memo[memo] = self._compute(name, self.series[train], self.series[target])
        return self._memo[memo]

    def _compute(self, name: str, train: Series, target: Series) -> np.ndarray | None:
        spec, candles = self.config.baselines, target.candles
        if name == "majority":
            return None
        if name.startswith(INPUTS):
            return model_feature_matrix(self.models[name.removeprefix(INPUTS)], candles)
        if name in self.models:
            model = self.models[name]
            return cached_model_representations(
                model, candles, target.key.interval_ms, self.cache_dir
            )
        if name == "features":
            return feature_representations(candles, spec.features.extras)
        if name == "indicators":
            return indicator_representations(candles)[0]
        if name == "pca":
            pca = spec.pca
            return pca_representations(candles, target.train.stop, pca.window, pca.dims, pca.extras)
        settings = getattr(spec, name)
        digest = hashlib.sha256(
            f"{settings.model_dump_json()}|{self.config.labels.model_dump_json()}|"
            f"{train.sha256}|{train.train}|{self.config.seed}".encode()
        ).hexdigest()[:20]
        key = f"evaluate-{name}-fit-{digest}-{target.sha256[:20]}"
        return cached(self.cache_dir, key, lambda: self._supervised(name, train, target))

    def _supervised(self, name: str, train: Series, target: Series) -> np.ndarray:
        # The supervised baseline trained once on `train` (features scaled with its
        # training rows' statistics), applied to `target` scaled the same way.
        settings = getattr(self.config.baselines, name)
        fitted = feature_representations(train.candles, settings.extras)[train.train]
        scale = Standardiser.fit(fitted)
        scaled = scale(feature_representations(target.candles, settings.extras))
        scaled = scaled.astype(np.float32)
        if (name, train.name) not in self._trained:
            inputs = scale(feature_representations(train.candles, settings.extras))
            inputs = inputs.astype(np.float32)
            # Trained on the fitting rows only: the validation slice that chooses the
            # probe's regularisation stays unseen by the labels it learns from.
            rows = _split(train.train, self.config.embargo_bars)[0]
            if name == "lstm":
                model = train_lstm(
                    inputs,
                    train.labels,
                    rows,
                    seed=self.config.seed,
                    **settings.model_dump(exclude={"extras"}),
                )
            else:
                model = train_supervised_encoder(
                    inputs,
                    train.labels,
                    rows,
                    settings.architecture,
                    settings.params,
                    settings.iters,
                    settings.crop_length,
                    self.config.seed,
                )
            self._trained[name, train.name] = model
        model = self._trained[name, train.name]
        if name == "lstm":
            return lstm_representations(model, scaled, settings.window)
        return encode_series(model, scaled, bar_numbers(target.candles, target.key.interval_ms))


def _split(rows: slice, embargo: int) -> tuple[slice, slice]:
    # The fitting rows and the validation slice at the end of `rows`, `embargo` bars apart.
    validation = max(1, int((rows.stop - rows.start) * VALIDATION_SHARE))
    return slice(rows.start, rows.stop - validation - embargo), slice(
        rows.stop - validation, rows.stop
    )


def _probe(regularisation: float, config: EvaluateConfig) -> ProbeSignal:
    return ProbeSignal(
        horizon=config.labels.horizon,
        threshold=config.labels.threshold,
        probe="linear",
        regularisation=regularisation,
        seed=config.seed,
    )


def _fit_probe(
    z: np.ndarray | None, series: Series, rows: slice, regularisation: float, config
) -> Callable[[np.ndarray | None], np.ndarray]:
    # Return a function from representations to (n, 3) probabilities: the probe fitted
    # on `rows`, or the training rows' class frequencies for the majority predictor.
    if z is None:
        share = np.bincount(series.labels[rows], minlength=3) / (rows.stop - rows.start)
        return lambda zs: np.tile(share, (len(zs), 1))
    probe = _probe(regularisation, config)
    past = History.from_candles(series.candles, z).upto(rows.stop + config.labels.horizon)
    probe.fit(FitContext(past=past, train=rows, costs=NO_COSTS))
    return probe.probabilities


def _choose_regularisation(z: np.ndarray | None, series: Series, config: EvaluateConfig) -> float:
    # The grid value with the lowest log loss on the validation slice.
    if z is None:
        return float("nan")
    fit, validation = _split(series.train, config.embargo_bars)
    labels = series.labels[validation]
    losses = [
        log_loss(labels, _fit_probe(z, series, fit, c, config)(z[validation]), labels=[0, 1, 2])
        for c in PROBE_GRID
    ]
    return PROBE_GRID[int(np.argmin(losses))]


def _scores(proba: np.ndarray, labels: np.ndarray) -> tuple[dict, np.ndarray]:
    # Point metrics of probabilities against labels, and the per-bar correctness.
    predicted = proba.argmax(axis=1)
    correct = (predicted == labels).astype(np.float64)
    moved = labels != 1
    direction = np.sign(proba[:, UP] - proba[:, DOWN])
    truth = np.where(labels == UP, 1.0, -1.0)
    counts = np.bincount(labels, minlength=3)
    metrics = {
        "accuracy": float(correct.mean()),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
        "majority_rate": float(counts.max() / counts.sum()),
        "log_loss": float(log_loss(labels, proba, labels=[0, 1, 2])),
        "direction_hit_rate": float((direction[moved] == truth[moved]).mean())
        if moved.any()
        else float("nan"),
        "predicted_share": [float(s) for s in np.bincount(predicted, minlength=3) / len(labels)],
        "rows": int(len(labels)),
    }
    return metrics, correct


def _with_intervals(
    metrics: dict, correct: np.ndarray, refs: dict[str, np.ndarray], indices, level: float
) -> dict:
    estimate = mean_estimate(correct, indices, level)
    metrics["ci_low"], metrics["ci_high"] = estimate.ci_low, estimate.ci_high
    for ref, ref_correct in refs.items():
        diff = paired_difference(correct, ref_correct, indices, level)
        metrics[f"minus_{ref}"] = diff.estimate
        metrics[f"minus_{ref}_ci"] = [diff.ci_low, diff.ci_high]
    return metrics


class _Run:
    """The state of one evaluation: series, representations, bootstrap indices, results."""

    def __init__(self, config, series, reps, progress: Progress) -> None:
        self.config, self.series, self.reps, self.progress = config, series, reps, progress
        self.level = config.bootstrap.level
        self._indices: dict[str, np.ndarray] = {}
        self._regularisation: dict[tuple[str, str], float] = {}
        self._probes: dict[tuple[str, str, str], tuple[dict, np.ndarray]] = {}

    def indices(self, target: str) -> np.ndarray:
        if target not in self._indices:
            test = self.series[target].test
            self._indices[target] = block_bootstrap_indices(
                test.stop - test.start,
                self.config.block_bars,
                self.config.bootstrap.reps,
                self.config.bootstrap.seed,
            )
        return self._indices[target]

    def pairs(self) -> Iterator[tuple[str, str]]:
        """Yield (training series, test series): A to A for probes, A to B for transfer."""
        for train in self.config.train_series:
            if "probe" in self.config.tasks:
                yield train, train
            if "transfer" in self.config.tasks:
                yield from ((train, t) for t in self.config.test_series if t != train)

    def regularisation(self, name: str, train: str) -> float:
        if (name, train) not in self._regularisation:
            z = self.reps.get(name, train, train)
            self._regularisation[name, train] = _choose_regularisation(
                z, self.series[train], self.config
            )
        return self._regularisation[name, train]

    def probe(self, name: str, train: str, target: str) -> tuple[dict, np.ndarray]:
        """Return the probe's point metrics and per-bar correctness, train -> target."""
        memo = (name, train, target)
        if memo not in self._probes:
            source, dest = self.series[train], self.series[target]
            z_test = self.reps.get(name, train, target)
            c = self.regularisation(name, train)
            predict = _fit_probe(
                self.reps.get(name, train, train), source, source.train, c, self.config
            )
            labels = dest.labels[dest.test]
            proba = predict(np.zeros((len(labels), 0)) if z_test is None else z_test[dest.test])
            metrics, correct = _scores(proba, labels)
            metrics["regularisation"] = c
            self._probes[memo] = (metrics, correct)
        return self._probes[memo]

    def references(self, train: str, target: str) -> dict[str, np.ndarray]:
        """Return the references' per-bar correctness, train -> target."""
        return {ref: self.probe(ref, train, target)[1] for ref in REFERENCES}

    def finetuned(self, name: str, train: str, targets: list[str]) -> dict:
        spec, source = self.config.finetune, self.series[train]
        model = self.reps.models[name]
        fit, validation = _split(source.train, self.config.embargo_bars)
        key = hashlib.sha256(
            f"{model_hash(model)}|{spec.model_dump_json()}|{source.sha256}|{source.train}|"
            f"{self.config.labels.model_dump_json()}|{self.config.seed}".encode()
        ).hexdigest()[:20]
        bars = bar_numbers(source.candles, source.key.interval_ms)
        tuned = None

        self.progress(f"fine-tuning {name} on {train}")

        def tune():
            nonlocal tuned
            if tuned is None:
                tuned = finetune(
                    model.encoder,
                    model.normalise(model_feature_matrix(model, source.candles)),
                    source.labels,
                    fit,
                    validation,
                    bars=bars,
                    **spec.model_dump(),
                    seed=self.config.seed,
                )
            return tuned

        out = {}
        for target in targets:
            dest = self.series[target]
            features = model.normalise(model_feature_matrix(model, dest.candles))
            dest_bars = bar_numbers(dest.candles, dest.key.interval_ms)
            proba = cached(
                self.reps.cache_dir,
                f"finetuned-{key}-{dest.sha256[:20]}",
                lambda f=features, b=dest_bars: tune().probabilities(f, b),
            )
            metrics, correct = _scores(proba[dest.test], dest.labels[dest.test])
            refs = self.references(train, target)
            out[target] = _with_intervals(metrics, correct, refs, self.indices(target), self.level)
        return out


def _probe_task(run: _Run, results: dict) -> None:
    # A model's probe is also paired with the probe on the features its encoder reads
    # (``minus_inputs``): what the encoder adds to, or loses from, its own inputs.
    for train, target in run.pairs():
        for name in run.reps.names:
            run.progress(f"probe {name}: {train} -> {target}")
            refs = run.references(train, target)
            metrics = {}
            if name in run.reps.models:
                inputs, refs["inputs"] = run.probe(INPUTS + name, train, target)
                metrics["inputs_accuracy"] = inputs["accuracy"]
            own, correct = run.probe(name, train, target)
            results["probe"].setdefault(name, {}).setdefault(train, {})[target] = _with_intervals(
                {**own, **metrics}, correct, refs, run.indices(target), run.level
            )


def _label_efficiency(run: _Run, results: dict) -> None:
    spec, config = run.config.label_efficiency, run.config
    train = config.train_series[0]
    series = run.series[train]
    rows = series.train
    if spec.range is not None:
        start, stop = day_range_ms(spec.range.start, spec.range.end)
        rows = _rows(series.candles["timestamp"].to_numpy(), start, stop)
        rows = slice(rows.start, min(rows.stop, series.test.start - config.embargo_bars))
    labels = series.labels[series.test]
    for name in run.reps.names:
        run.progress(f"label efficiency {name}")
        z = run.reps.get(name, train, train)
        tested = np.zeros((len(labels), 0)) if z is None else z[series.test]
        curve = results["label_efficiency"].setdefault(name, {})
        for size in spec.sizes:
            windows = min(spec.windows, (rows.stop - rows.start) // size)
            scores = []
            for k in range(windows):
                stop = rows.stop - k * size
                window = slice(stop - size, stop)
                predict = _fit_probe(z, series, window, spec.regularisation, config)
                scores.append(float((predict(tested).argmax(axis=1) == labels).mean()))
            curve[str(size)] = {
                "windows": windows,
                "mean": float(np.mean(scores)) if scores else None,
                "min": float(np.min(scores)) if scores else None,
                "max": float(np.max(scores)) if scores else None,
            }


def _anomaly(run: _Run, results: dict, curves: dict) -> None:
    spec, config = run.config.anomaly, run.config
    train = config.train_series[0]
    for target in config.test_series:
        series = run.series[target]
        close, test = series.close, series.test
        run.progress(f"anomaly scores on {target}")
        scores = {"vol_zscore": (volatility_zscore(close, history=spec.history), spec.flag_above)}
        for name in run.reps.names:
            z = run.reps.get(name, train, target)
            if z is None:
                continue
            scores[f"max_abs_z:{name}"] = (
                trailing_max_abs_z(np.asarray(z, np.float64), spec.history, spec.history // 6),
                spec.flag_above,
            )
            risk = AnomalyRisk(threshold=spec.risk_threshold)
            history = History.from_candles(series.candles, z)
            risk.fit(FitContext(history.upto(series.train.stop), series.train, costs=NO_COSTS))
            anomaly = np.full(len(close), np.nan)
            anomaly[test] = risk.transform(history, test)["anomaly"]
            scores[f"anomaly_risk:{name}"] = (anomaly, spec.risk_threshold)
        indices = block_bootstrap_indices(
            test.stop - test.start,
            max(config.block_bars, 2 * spec.within),
            config.bootstrap.reps,
            config.bootstrap.seed,
        )
        for move in spec.moves:
            event_name = f"abs_return>{move:g}_within_{spec.within}"
            events = large_move_events(close, move, spec.within)[test]
            moves = large_moves(close, move)[test]
            # The trivial detector comes first: every other AUC is paired with its own.
            trivial = resampled_auc(scores["vol_zscore"][0][test], events, indices)
            point: dict[str, float] = {}
            for detector, (score, flag_above) in scores.items():
                metrics = detection_metrics(
                    score[test], events, flag_above, spec.within, moves=moves
                )
                aucs = resampled_auc(score[test], events, indices)
                metrics["roc_auc_ci"] = _nan_interval(aucs, run.level)
                point.setdefault("vol_zscore", metrics["roc_auc"])
                metrics["roc_auc_minus_vol_zscore"] = metrics["roc_auc"] - point["vol_zscore"]
                metrics["roc_auc_minus_vol_zscore_ci"] = _nan_interval(aucs - trivial, run.level)
                results["anomaly"].setdefault(detector, {}).setdefault(target, {})[event_name] = (
                    metrics
                )
                fpr, tpr = roc_points(score[test], events)
                curves.setdefault("roc", {}).setdefault(target, {}).setdefault(event_name, {})[
                    detector
                ] = (fpr.tolist(), tpr.tolist())


def _nan_interval(samples: np.ndarray, level: float) -> list[float]:
    # The percentile interval of the replicates that have a value (NaN without any).
    finite = samples[np.isfinite(samples)]
    return list(percentile_interval(finite, level)) if finite.size else [np.nan, np.nan]


def _volatility(run: _Run, results: dict) -> None:
    config, horizon = run.config, run.config.volatility.horizon
    train = config.train_series[0]
    for target in config.test_series:
        series = run.series[target]
        close, test = series.close, series.test
        run.progress(f"volatility forecast on {target}")
        fit = slice(series.train.start, min(series.train.stop, test.start - horizon))
        y = future_log_variance(close, horizon)
        har = har_features(close)

        har_fit = _finite_rows(y, har, fit)
        evaluated = _finite_rows(y, har, test)
        har_pred = fit_har(har[har_fit], y[har_fit]).predict(har[evaluated])
        truth = y[evaluated]
        har_loss = qlike_losses(truth, har_pred)
        indices = block_bootstrap_indices(
            len(evaluated),
            max(config.block_bars, 2 * horizon),
            config.bootstrap.reps,
            config.bootstrap.seed,
        )
        for name in run.reps.names:
            z = run.reps.get(name, train, target)
            if z is None:
                continue
            z = np.asarray(z, np.float64)
            rows = _finite_rows(y, z, fit)
            predicted = fit_ridge(z[rows], y[rows], gap=horizon).predict(z[evaluated])
            loss = qlike_losses(truth, predicted)
            diff = paired_difference(loss, har_loss, indices, run.level)
            own = mean_estimate(loss, indices, run.level)
            results["volatility"].setdefault(name, {})[target] = {
                "r2": r2(truth, predicted),
                "qlike": own.estimate,
                "qlike_ci": [own.ci_low, own.ci_high],
                "har_r2": r2(truth, har_pred),
                "har_qlike": float(har_loss.mean()),
                "qlike_minus_har": diff.estimate,
                "qlike_minus_har_ci": [diff.ci_low, diff.ci_high],
                "rows": int(len(evaluated)),
            }


def _finite_rows(y: np.ndarray, x: np.ndarray, rows: slice) -> np.ndarray:
    # The rows of `rows` whose target and inputs are all finite.
    idx = np.arange(rows.start, rows.stop)
    return idx[np.isfinite(y[idx]) & np.isfinite(x[idx]).all(axis=1)]


def _maps(run: _Run) -> dict:
    # 2-D PCA maps of each representation on the first training series' test bars,
    # with the forward return and the volatility regime to colour them.
    from sklearn.decomposition import PCA

    train = run.config.train_series[0]
    series = run.series[train]
    test = series.test
    close = series.close
    forward = close[test.start + run.config.labels.horizon : test.stop + run.config.labels.horizon]
    forward = forward / close[test] - 1.0
    vol = har_features(close)[test, 0]
    maps = {"forward_return": forward.tolist(), "log_variance_24": vol.tolist(), "points": {}}
    for name in run.reps.names:
        z = run.reps.get(name, train, train)
        if z is None:
            continue
        scale = Standardiser.fit(np.asarray(z[series.train], np.float64))
        pca = PCA(n_components=2, random_state=0).fit(scale(z[series.train]))
        maps["points"][name] = pca.transform(scale(z[test])).tolist()
    return maps


def count_steps(config: EvaluateConfig) -> int:
    """Return how many times ``evaluate`` calls its ``progress`` callback for ``config``."""
    reps = len(config.representations) + sum(r not in config.representations for r in REFERENCES)
    models = sum(name not in BASELINES for name in config.representations)
    tasks, trains, tests = config.tasks, len(config.train_series), len(config.test_series)
    pairs = sum(
        ("probe" in tasks) + ("transfer" in tasks) * sum(t != a for t in config.test_series)
        for a in config.train_series
    )
    return (
        2
        + pairs * reps
        + ("finetuned" in tasks) * models * trains
        + ("label_efficiency" in tasks) * reps
        + (("anomaly" in tasks) + ("volatility" in tasks)) * tests
    )


def evaluate(
    config: EvaluateConfig,
    store: CandleStore,
    models_dir: Path,
    cache_dir: Path | None,
    progress: Progress = lambda _: None,
) -> Evaluation:
    """Run the evaluation file's tasks and return the results.

    Raises
    ------
    ConfigError
        If a model does not exist, saw a test bar in pretraining, or the
        fine-tuning task has no pretrained model to tune.
    DataError
        If a series is missing or too short.
    """
    started = time.perf_counter()
    if "finetuned" in config.tasks and all(name in BASELINES for name in config.representations):
        raise ConfigError("tasks: 'finetuned' needs at least one model in representations")
    progress("loading candles")
    series = load_series(config, store)
    reps = Representations(config, series, models_dir, cache_dir)
    run = _Run(config, series, reps, progress)
    results: dict = {
        "name": config.name,
        "representations": {name: reps.kind(name) for name in reps.names},
        "train_series": list(config.train_series),
        "test_series": list(config.test_series),
        "labels": config.labels.model_dump(),
        "ranges": {
            name: {
                "train": [iso_utc(_ts(s, s.train.start)), iso_utc(_ts(s, s.train.stop - 1))],
                "test": [iso_utc(_ts(s, s.test.start)), iso_utc(_ts(s, s.test.stop - 1))],
                "train_rows": s.train.stop - s.train.start,
                "test_rows": s.test.stop - s.test.start,
            }
            for name, s in series.items()
        },
        "embargo_bars": config.embargo_bars,
        "pretraining_overlap": reps.overlapping,
        "bootstrap": {**config.bootstrap.model_dump(), "block_bars": config.block_bars},
        "inputs": {
            "series": {name: s.sha256 for name, s in series.items()},
            "models": {name: model_hash(model) for name, model in reps.models.items()},
            "model_versions": {name: model.name for name, model in reps.models.items()},
        },
        "probe": {},
        "finetuned": {},
        "label_efficiency": {},
        "anomaly": {},
        "volatility": {},
    }
    curves: dict = {}
    _probe_task(run, results)
    if "finetuned" in config.tasks:
        pairs = list(run.pairs()) or [(t, t) for t in config.train_series]
        for name in reps.models:
            for train in config.train_series:
                targets = [target for source, target in pairs if source == train]
                results["finetuned"].setdefault(name, {})[train] = run.finetuned(
                    name, train, targets
                )
    if "label_efficiency" in config.tasks:
        _label_efficiency(run, results)
    if "anomaly" in config.tasks:
        _anomaly(run, results, curves)
    if "volatility" in config.tasks:
        _volatility(run, results)
    progress("2-D maps")
    maps = _maps(run)
    results["seconds"] = round(time.perf_counter() - started, 1)
    return Evaluation(config=config, results=_finite(results), curves=curves, maps=maps)


def _ts(series: Series, row: int) -> int:
    return int(series.candles["timestamp"].iloc[row])


def _finite(value):
    # JSON has no NaN: write null instead.
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def results_json(evaluation: Evaluation) -> str:
    """Return results.json's text."""
    return json.dumps(evaluation.results, indent=2, allow_nan=False) + "\n"
