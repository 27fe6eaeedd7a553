"""Typed schemas of every YAML file the engine reads, and one loader with clear errors.

Every model is frozen and rejects unknown keys. A file that does not load or
does not validate raises one ``ConfigError`` that names the file, and for each
problem the key path (``sizing.max_leverage``), the value received and what
was expected.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from engine.data.symbols import SYMBOL_FORM, SYMBOL_PATTERN, TIMEFRAME_MS
from engine.errors import ConfigError
from engine.safe_yaml import load_yaml

__all__ = [
    "ComponentSpec",
    "CostsConfig",
    "DataConfig",
    "DriftConfig",
    "EncoderRefitConfig",
    "EncoderSpec",
    "EvaluateConfig",
    "FeaturesConfig",
    "FinetuneSpec",
    "FinetunedRepresentation",
    "FOLDER_KINDS",
    "SeriesSpec",
    "PretrainConfig",
    "SCHEMAS",
    "StoreConfig",
    "StrategyConfig",
    "SweepConfig",
    "check_name",
    "load_config",
    "schema_for",
]


def _check_symbol(symbol: str) -> str:
    if not SYMBOL_PATTERN.match(symbol):
        raise ValueError(f"a symbol of the form {SYMBOL_FORM}")
    return symbol


def _check_timeframe(timeframe: str) -> str:
    if timeframe not in TIMEFRAME_MS:
        raise ValueError(f"a timeframe, one of {', '.join(TIMEFRAME_MS)}")
    return timeframe


_COMPONENT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def _check_component_path(path: str) -> str:
    if not _COMPONENT_PATH.match(path):
        raise ValueError("an import path of the form 'package.module:ClassName'")
    return path


Symbol = Annotated[str, AfterValidator(_check_symbol)]
Timeframe = Annotated[str, AfterValidator(_check_timeframe)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Fee = Annotated[float, Field(ge=0.0, lt=0.01)]
#: A name that becomes a file or folder name: no separator, no leading dot.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]
#: A model in the registry: ``NAME`` (its latest version) or ``NAME@VERSION``.
MODEL_REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*(@[0-9a-f]{4,64})?$"
ModelName = Annotated[str, Field(pattern=MODEL_REF_PATTERN, max_length=170)]


def check_name(value: str, what: str) -> str:
    """Return ``value`` if it is a ``Name`` (safe as a file name), else raise ``ConfigError``."""
    if len(value) > 100 or not re.match(NAME_PATTERN, value):
        raise ConfigError(
            f"{what}: got {value!r}; expected a name of letters, digits, '_', '.' and '-' "
            "that starts with a letter or digit (at most 100 characters)"
        )
    return value


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )


class StoreConfig(_Model):
    """Where candles live and how gaps in them are treated on load."""

    path: Path | None = Field(
        None, description="Store folder; null means ENGINE_DATA_DIR, else ./data."
    )
    gap_policy: Literal["error", "drop", "flat"] = Field(
        "error",
        description="On a gap longer than max_gap_bars: fail, keep the bars as they are, "
        "or insert flat zero-volume bars that are flagged.",
    )
    max_gap_bars: int = Field(0, ge=0, description="Gaps up to this many bars are tolerated.")


class SeriesSpec(_Model):
    """A set of series on one exchange: market type, symbols and bar size."""

    exchange: Literal["bybit", "binance"] = "bybit"
    market: Literal["linear", "spot"] = "linear"
    symbols: list[Symbol] = Field(min_length=1)
    timeframe: Timeframe = "1h"


class DateRange(_Model):
    """A UTC date range; ``end`` is inclusive and null means up to the last bar."""

    start: dt.date
    end: dt.date | None = None

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: dt.date | None, info: ValidationInfo) -> dt.date | None:
        start = info.data.get("start")
        if end is not None and start is not None and end < start:
            raise ValueError(f"a date on or after start ({start})")
        return end


class DataConfig(_Model):
    """A data file (``configs/data/*.yaml``): which series the store should hold."""

    store: StoreConfig = StoreConfig()
    series: SeriesSpec
    range: DateRange
    funding: bool = Field(True, description="Also fetch funding rates (linear markets only).")


class FeaturesConfig(_Model):
    """Per-bar features fed to an encoder, and their normalisation."""

    set: Literal["raw", "relative"] = Field(
        "raw",
        description="Seed features: the candles' own levels (raw) or each measured against "
        "the series' trailing week (relative, one scale for every asset).",
    )
    extras: list[str] = Field(default_factory=list, description="Optional named extra features.")
    normalisation: Literal["zscore", "none"] = "zscore"


class EncoderSpec(_Model):
    """Which encoder architecture to build, with its hyperparameters."""

    kind: Literal["ts2vec", "tnc", "cost", "mae", "hybrid"]
    params: dict[str, Any] = Field(default_factory=dict)


class TrainingConfig(_Model):
    """Optimisation settings of self-supervised pretraining."""

    iters: int | None = Field(
        None, gt=0, description="Null: 200 when the data holds <= 100,000 values, else 600."
    )
    batch_size: int = Field(8, gt=0)
    lr: float = Field(0.001, gt=0.0)
    max_train_length: int = Field(3000, gt=1)
    checkpoint_every: int = Field(50, gt=0)


class PretrainSource(SeriesSpec, DateRange):
    """One more set of series an encoder is pretrained on."""

    max_gap_bars: int | None = Field(
        None, ge=0, description="Gaps tolerated in these series; null means the store's."
    )


class PretrainData(SeriesSpec, DateRange):
    """The candles an encoder is pretrained on: one set of series, and optionally more."""

    store: StoreConfig = StoreConfig()
    also: list[PretrainSource] = Field(
        default_factory=list,
        description="More series, from any exchange, market and range, pretrained on together.",
    )


class PretrainConfig(_Model):
    """A pretraining file (``configs/pretrain/*.yaml``)."""

    name: Name
    seed: int = Field(42, ge=0)
    data: PretrainData
    features: FeaturesConfig = FeaturesConfig()
    encoder: EncoderSpec
    training: TrainingConfig = TrainingConfig()


class ComponentSpec(_Model):
    """A strategy component loaded by import path, with its parameters."""

    cls: Annotated[str, AfterValidator(_check_component_path)] = Field(alias="class")
    params: dict[str, Any] = Field(default_factory=dict)


class CostsConfig(_Model):
    """Trading costs: fees per side on notional, slippage, funding, liquidation fee."""

    maker_fee: Fee = 0.0003
    taker_fee: Fee = 0.0003
    slippage_bps: float = Field(0.0, ge=0.0, le=1000.0)
    funding: bool = True
    liquidation_fee: Fee = 0.005


class WalkForwardConfig(_Model):
    """How components are refitted as the window rolls forward."""

    fit_bars: int = Field(gt=0, description="Bars in each fitting window.")
    refit_every: int = Field(gt=0, description="Bars between refits.")
    embargo_bars: int = Field(ge=0, description="Bars between fitting data and use.")


class Components(_Model):
    """The components that turn representations into decisions."""

    signal: ComponentSpec
    sizing: ComponentSpec | None = None
    risk: ComponentSpec | None = None
    timing: ComponentSpec | None = None
    portfolio: ComponentSpec | None = None


class PcaRepresentation(_Model):
    """Baseline representation: PCA of a trailing window of candle features."""

    kind: Literal["pca"]
    window: int = Field(32, gt=0)
    dims: int = Field(16, gt=0)
    extras: list[str] = Field(default_factory=list)
    fit_end: dt.date = Field(description="Last day of the bars the PCA is fitted on.")


class FinetuneSpec(_Model):
    """How a pretrained encoder is fine-tuned with a classification head."""

    mode: Literal["frozen", "partial", "full"] = Field(
        "full", description="Train the head only, the head and the encoder's last layer, or all."
    )
    iters: int = Field(150, gt=0)
    batch_size: int = Field(8, gt=0)
    crop_length: int = Field(384, gt=1, description="Bars per training crop.")
    loss_bars: int = Field(128, gt=0, description="Last bars of each crop that carry the loss.")
    lr: float = Field(0.0001, gt=0.0)
    hidden: int = Field(64, gt=0, description="Hidden units of the MLP head.")
    eval_every: int = Field(25, gt=0)
    patience: int = Field(3, gt=0, description="Evaluations without improvement before stopping.")


class FinetunedRepresentation(FinetuneSpec):
    """A pretrained encoder fine-tuned with a classification head on direction labels.

    Fine-tuned once on the labels of bars from ``fit_start`` to ``fit_end``
    (the last 20% of them validate, for early stopping); its representation
    then feeds the components walk-forward.
    """

    kind: Literal["finetuned"]
    encoder: ModelName = Field(
        description="A pretrained model in models/: NAME (latest version) or NAME@VERSION."
    )
    fit_start: dt.date = Field(description="First day of the labelled bars it is tuned on.")
    fit_end: dt.date = Field(description="Last day of the labelled bars it is tuned on.")
    horizon: int = Field(5, gt=0)
    threshold: float = Field(0.005, gt=0.0)

    @field_validator("fit_end")
    @classmethod
    def _after_fit_start(cls, end: dt.date, info: ValidationInfo) -> dt.date:
        start = info.data.get("fit_start")
        if start is not None and end <= start:
            raise ValueError(f"a date after fit_start ({start})")
        return end


class SupervisedRepresentation(_Model):
    """Baseline representation: an encoder architecture trained supervised from scratch."""

    kind: Literal["supervised"]
    architecture: Literal["ts2vec", "tnc", "cost", "mae"] = "ts2vec"
    params: dict[str, Any] = Field(default_factory=dict)
    extras: list[str] = Field(default_factory=list)
    fit_end: dt.date = Field(description="Last day of the bars it is trained on.")
    iters: int = Field(200, gt=0)
    crop_length: int = Field(256, gt=1)
    horizon: int = Field(5, gt=0)
    threshold: float = Field(0.005, gt=0.0)


class FeatureRepresentation(_Model):
    """Baseline representation: the causal candle features themselves."""

    kind: Literal["features"]
    extras: list[str] = Field(default_factory=list)


class MarginConfig(_Model):
    """Margin rules of the simulated account (cross margin)."""

    max_leverage: float = Field(1.0, gt=0.0, le=100.0)
    maintenance_margin: float = Field(0.005, ge=0.0, lt=1.0)


class MarketRules(_Model):
    """An exchange's order rules for one market."""

    qty_step: float = Field(0.0, ge=0.0)
    min_qty: float = Field(0.0, ge=0.0)
    min_notional: float = Field(0.0, ge=0.0)


#: The drift statistics a policy can act on.
DRIFT_KINDS = ("representation", "prediction", "performance", "health")


class DriftConfig(_Model):
    """Drift monitoring against each refit's fitting window, and what an alarm does.

    From ``window`` bars after a refit on, and then every ``stride`` bars, the
    last ``window`` bars of the block are compared with the fitting window:
    representation drift (energy distance on a fixed random projection, with a
    permutation p-value), prediction drift (PSI of the signal's scores),
    performance decay (accuracy of the score's sign on matured labels, with a
    Wilson interval) and data health (gaps, stale bars, volume collapse).
    """

    stride: int = Field(24, gt=0, description="Bars between evaluations.")
    window: int = Field(168, gt=9, description="Recent bars compared with the fitting window.")
    reference_bars: int = Field(
        384, gt=9, description="Rows of the fitting window, evenly spaced, as the reference."
    )
    projection_dims: int = Field(8, gt=0, description="Dimensions of the fixed projection.")
    permutations: int = Field(99, ge=19, le=9999)
    p_value: float = Field(
        0.01, gt=0.0, lt=1.0, description="Representation drift at or below this p-value."
    )
    psi: float = Field(0.25, gt=0.0, description="Prediction drift above this PSI.")
    confidence: float = Field(
        0.99, gt=0.5, lt=1.0, description="Of the accuracy interval; decay when it is all below."
    )
    max_stale: float = Field(
        0.1, ge=0.0, le=1.0, description="Largest fraction of flat or volumeless bars."
    )
    volume_collapse: float = Field(
        0.2, ge=0.0, le=1.0, description="Collapse below this fraction of the median volume."
    )
    triggers: list[Literal["representation", "prediction", "performance", "health"]] = Field(
        default_factory=lambda: list(DRIFT_KINDS),
        description="The statistics whose alarm triggers the policy.",
    )
    policy: Literal["alert", "refit_components", "retrain_encoder", "flatten"] = Field(
        "alert",
        description="On an alarm: only alert; refit the components from the next bar; re-tune "
        "the encoder (encoder_refit) and refit the components from the next bar; or go flat "
        "until an evaluation without alarm or the next refit.",
    )

    @model_validator(mode="after")
    def _reachable_p_value(self) -> DriftConfig:
        if (self.permutations + 1) * self.p_value < 1:
            raise ValueError(
                f"permutations of at least {math.ceil(1 / self.p_value) - 1} for p_value "
                f"{self.p_value}: the smallest p-value is 1 / (permutations + 1)"
            )
        return self


class EncoderRefitConfig(FinetuneSpec):
    """Re-tune the strategy's encoder walk-forward, at the start of a refit block.

    The pretrained encoder is fine-tuned (``FinetuneSpec``) on the direction
    labels of the ``fit_bars`` bars before the block, whose labels are all
    known when the block starts; the components are then refitted on its
    representations. A refit happens at the first block ``every`` bars or more
    after the last one, and after a block the drift policy ``retrain_encoder``
    ended.
    """

    every: int | None = Field(
        None, gt=0, description="Bars between encoder refits; none: on drift only."
    )
    fit_bars: int = Field(4320, gt=0, description="Labelled bars the encoder is tuned on.")
    horizon: int = Field(5, gt=0)
    threshold: float = Field(0.005, gt=0.0)


class StrategyConfig(_Model):
    """A strategy file (``strategies/*.yaml``)."""

    name: Name
    seed: int = Field(42, ge=0)
    market: SeriesSpec
    store: StoreConfig = StoreConfig()
    encoder: ModelName | None = Field(
        None, description="A pretrained model in models/: NAME (latest version) or NAME@VERSION."
    )
    representation: (
        Annotated[
            PcaRepresentation
            | SupervisedRepresentation
            | FeatureRepresentation
            | FinetunedRepresentation,
            Field(discriminator="kind"),
        ]
        | None
    ) = Field(None, description="A baseline representation, instead of an encoder.")
    components: Components
    walk_forward: WalkForwardConfig
    out_of_sample: DateRange
    costs: CostsConfig = CostsConfig()
    margin: MarginConfig = MarginConfig()
    rules: dict[Symbol, MarketRules] = Field(default_factory=dict)
    initial_capital: float = Field(100_000.0, gt=0.0, le=1e12)
    drift: DriftConfig | None = Field(None, description="Drift monitoring and its policy.")
    encoder_refit: EncoderRefitConfig | None = Field(
        None, description="Re-tune the encoder walk-forward (needs an encoder)."
    )

    @model_validator(mode="after")
    def _one_representation(self) -> StrategyConfig:
        if (self.encoder is None) == (self.representation is None):
            raise ValueError(
                "exactly one of 'encoder' (a model in models/) and 'representation' "
                "(a baseline: pca, supervised or features; or a fine-tuned encoder: finetuned)"
            )
        if self.encoder_refit is not None and self.encoder is None:
            raise ValueError("an 'encoder' with 'encoder_refit': only an encoder can be re-tuned")
        retrain = self.drift is not None and self.drift.policy == "retrain_encoder"
        if retrain and self.encoder_refit is None:
            raise ValueError(
                "an 'encoder_refit' section with drift.policy retrain_encoder: it says how the "
                "encoder is re-tuned"
            )
        return self


class IntRange(_Model):
    """Integers from ``low`` to ``high`` inclusive, every ``step`` (or log-uniform in a search)."""

    low: int
    high: int
    step: int = Field(1, gt=0)
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.high < self.low:
            raise ValueError(f"high of at least low ({self.low}), got {self.high}")
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError("log: true with low >= 1 and step 1")
        return self


class FloatRange(_Model):
    """Reals from ``low`` to ``high``; a grid needs a ``step``; ``log`` draws log-uniformly."""

    low: float
    high: float
    step: float | None = Field(None, gt=0.0)
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> FloatRange:
        if self.high < self.low:
            raise ValueError(f"high of at least low ({self.low}), got {self.high}")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError("log: true with low > 0 and no step")
        return self


Scalar = bool | int | float | str | None
#: The metrics a sweep can rank its trials by (largest first).
OBJECTIVES = ("sharpe", "sortino", "total_return", "direction_accuracy")
_DOTTED_PATH = r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$"


class SweepConfig(_Model):
    """A search space file (``sweeps/*.yaml``): which strategy values vary, and how trials rank.

    ``parameters`` maps a dotted path into the strategy file
    (``components.signal.params.entry``, ``walk_forward.refit_every``,
    ``costs.taker_fee``, ``encoder``) to a list of values or a range. Trials
    run on the ``validation`` range and are ranked by ``objective``; the best
    is then run once on the ``test`` range, which starts after it.
    """

    name: Name
    search: Literal["grid", "optuna"] = "grid"
    trials: int | None = Field(
        None, gt=0, description="Optuna: the trial budget. A grid runs every combination."
    )
    batch: int = Field(
        4,
        gt=0,
        description="Optuna: trials asked together; each batch is told in trial order before "
        "the next is asked, so the trials do not depend on how many workers run them.",
    )
    seed: int = Field(0, ge=0, description="Seed of the Optuna sampler.")
    objective: Literal[OBJECTIVES] = "sharpe"
    validation: DateRange
    test: DateRange
    cscv_blocks: int = Field(16, ge=2, description="Blocks of validation days for the PBO (even).")
    parameters: dict[
        Annotated[str, Field(pattern=_DOTTED_PATH)],
        Annotated[list[Scalar], Field(min_length=1)] | IntRange | FloatRange,
    ] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> SweepConfig:
        if self.validation.end is None:
            raise ValueError("validation.end: a last day of the validation range")
        if self.test.start <= self.validation.end:
            raise ValueError(
                f"test.start after validation.end ({self.validation.end}): no trial may see "
                "the test range"
            )
        if self.cscv_blocks % 2:
            raise ValueError(f"cscv_blocks: an even number, got {self.cscv_blocks}")
        if self.search == "optuna" and self.trials is None:
            raise ValueError("trials: the trial budget of an optuna search")
        if self.search == "grid":
            if self.trials is not None:
                raise ValueError("trials only with search: optuna (a grid runs every combination)")
            for path, values in self.parameters.items():
                if isinstance(values, FloatRange) and values.step is None:
                    raise ValueError(f"parameters.{path}: a step, for a grid over a real range")
        return self


_SERIES_NAME = re.compile(
    r"^(?P<exchange>[a-z]+):(?P<market>[a-z]+):(?P<symbol>[^:]+):(?P<timeframe>[^:]+)$"
)
_SERIES_FORM = "'exchange:market:SYMBOL:timeframe', for example 'bybit:linear:BTCUSDT:1h'"


def _check_series(name: str) -> str:
    match = _SERIES_NAME.match(name)
    if match is None:
        raise ValueError(f"a series written {_SERIES_FORM}")
    if match["exchange"] not in ("bybit", "binance"):
        raise ValueError(f"a series on exchange bybit or binance, written {_SERIES_FORM}")
    if match["market"] not in ("linear", "spot"):
        raise ValueError(f"a series on market linear or spot, written {_SERIES_FORM}")
    _check_symbol(match["symbol"])
    _check_timeframe(match["timeframe"])
    return name


SeriesName = Annotated[str, AfterValidator(_check_series)]

#: Representation names that are baselines rather than model folders.
BASELINES = ("features", "indicators", "pca", "supervised", "lstm", "majority")
TASKS = ("probe", "finetuned", "transfer", "label_efficiency", "anomaly", "volatility")
DEFAULT_EXTRAS = ["volatility_24", "rsi_14"]


class LabelSpec(_Model):
    """Three-class labels: the forward return over ``horizon`` bars against +-threshold."""

    horizon: int = Field(5, gt=0, description="Bars the label looks ahead.")
    threshold: float = Field(0.005, gt=0.0, lt=1.0, description="Return that counts as a move.")


class FeaturesBaseline(_Model):
    """The raw causal candle features, as a representation."""

    extras: list[str] = Field(default_factory=lambda: list(DEFAULT_EXTRAS))


class PcaBaseline(_Model):
    """PCA of a trailing window of features, fitted on the training rows."""

    window: int = Field(32, gt=0)
    dims: int = Field(16, gt=0)
    extras: list[str] = Field(default_factory=lambda: list(DEFAULT_EXTRAS))


class SupervisedBaseline(_Model):
    """An encoder architecture trained from scratch on the training labels."""

    architecture: Literal["ts2vec", "tnc", "cost", "mae"] = "ts2vec"
    params: dict[str, Any] = Field(
        default_factory=lambda: {"output_dims": 64, "hidden_dims": 64, "depth": 7}
    )
    extras: list[str] = Field(default_factory=lambda: list(DEFAULT_EXTRAS))
    iters: int = Field(200, gt=0)
    crop_length: int = Field(256, gt=1)


class LstmBaseline(_Model):
    """A supervised LSTM over trailing windows of features."""

    window: int = Field(60, gt=1, description="Bars each representation reads, the bar included.")
    hidden: int = Field(64, gt=0)
    iters: int = Field(300, gt=0)
    batch_size: int = Field(64, gt=0)
    lr: float = Field(0.001, gt=0.0)
    extras: list[str] = Field(default_factory=lambda: list(DEFAULT_EXTRAS))


class Baselines(_Model):
    """Settings of the baseline representations."""

    features: FeaturesBaseline = FeaturesBaseline()
    pca: PcaBaseline = PcaBaseline()
    supervised: SupervisedBaseline = SupervisedBaseline()
    lstm: LstmBaseline = LstmBaseline()


class LabelEfficiencySpec(_Model):
    """Probe accuracy against the number of labelled bars."""

    sizes: list[Annotated[int, Field(gt=1)]] = Field(
        default_factory=lambda: [50, 100, 200, 500, 1000, 2000, 5000], min_length=1
    )
    windows: int = Field(5, gt=0, description="Disjoint training windows per size, at most.")
    range: DateRange | None = Field(
        None, description="Bars the windows come from; null means the training range."
    )
    regularisation: float = Field(0.1, gt=0.0, description="Inverse L2 strength of the probe.")


class AnomalySpec(_Model):
    """Anomaly scores against future large moves."""

    moves: list[Annotated[float, Field(gt=0.0, lt=1.0)]] = Field(
        default_factory=lambda: [0.02, 0.03, 0.05], min_length=1
    )
    within: int = Field(5, gt=0, description="Bars after a bar in which a move counts.")
    history: int = Field(4320, gt=1, description="Trailing bars of the article's z-score rule.")
    flag_above: float = Field(3.0, gt=0.0, description="z above which the z-score rules flag.")
    risk_threshold: float = Field(6.0, gt=0.0, description="AnomalyRisk's threshold.")


class VolatilitySpec(_Model):
    """Forecast of the next bars' realised volatility."""

    horizon: int = Field(24, gt=0)


class BootstrapSpec(_Model):
    """Moving-block bootstrap of the test bars."""

    reps: int = Field(1000, ge=100)
    block_bars: int | None = Field(
        None, gt=0, description="Null: the larger of 24 and twice the label horizon."
    )
    level: float = Field(0.95, gt=0.5, lt=1.0)
    seed: int = Field(0, ge=0)


class EvaluateConfig(_Model):
    """An evaluation file (``configs/evaluate/*.yaml``): what representations know."""

    name: Name
    seed: int = Field(42, ge=0)
    store: StoreConfig = StoreConfig()
    representations: list[ModelName] = Field(
        min_length=1,
        description=(
            f"Models in models/ (NAME or NAME@VERSION), or baselines: {', '.join(BASELINES)}."
        ),
    )
    baselines: Baselines = Baselines()
    train_series: list[SeriesName] = Field(min_length=1)
    test_series: list[SeriesName] = Field(min_length=1)
    labels: LabelSpec = LabelSpec()
    train: DateRange
    test: DateRange
    embargo_bars: int = Field(5, ge=0)
    tasks: list[Literal[TASKS]] = Field(default_factory=lambda: list(TASKS), min_length=1)
    pretraining_overlap: Literal["refuse", "allow"] = Field(
        "refuse",
        description="allow: evaluate encoders whose pretraining saw test bars (unlabelled), "
        "to choose among encoders on data before their unseen-from date; the results name them.",
    )
    finetune: FinetuneSpec = FinetuneSpec()
    label_efficiency: LabelEfficiencySpec = LabelEfficiencySpec()
    anomaly: AnomalySpec = AnomalySpec()
    volatility: VolatilitySpec = VolatilitySpec()
    bootstrap: BootstrapSpec = BootstrapSpec()

    @model_validator(mode="after")
    def _consistent(self) -> EvaluateConfig:
        if self.train.end is None:
            raise ValueError("train.end: a last day of the training range")
        if self.test.start <= self.train.end:
            raise ValueError(
                f"test.start after train.end ({self.train.end}): test bars come after training bars"
            )
        if self.embargo_bars < self.labels.horizon:
            raise ValueError(
                f"embargo_bars of at least the label horizon ({self.labels.horizon}), "
                f"got {self.embargo_bars}"
            )
        block = self.bootstrap.block_bars
        if block is not None and block < 2 * self.labels.horizon:
            raise ValueError(
                f"bootstrap.block_bars of at least twice the label horizon "
                f"({2 * self.labels.horizon}), got {block}"
            )
        for key in ("representations", "train_series", "test_series", "tasks"):
            values = getattr(self, key)
            if len(set(values)) != len(values):
                raise ValueError(f"{key} without repeats, got {values}")
        window = self.label_efficiency.range
        if window is not None and (window.end is None or window.end >= self.test.start):
            raise ValueError("label_efficiency.range ending before test.start")
        return self

    @property
    def block_bars(self) -> int:
        """Return the bootstrap's block length in bars."""
        return self.bootstrap.block_bars or max(24, 2 * self.labels.horizon)


Config = TypeVar("Config", bound=BaseModel)

SCHEMAS: dict[str, type[BaseModel]] = {
    "strategy": StrategyConfig,
    "data": DataConfig,
    "pretrain": PretrainConfig,
    "evaluate": EvaluateConfig,
    "sweep": SweepConfig,
}
#: The kind of config file each folder holds.
FOLDER_KINDS = {
    "strategies": "strategy",
    "data": "data",
    "pretrain": "pretrain",
    "evaluate": "evaluate",
    "sweeps": "sweep",
}


def schema_for(path: str | Path, kind: str | None = None) -> type[BaseModel]:
    """Return the schema of a config file, by ``kind`` or by the folder it is in.

    Files in ``strategies/`` are strategy files, in ``configs/pretrain/``
    pretraining files and in ``configs/data/`` data files.
    """
    if kind is None:
        kind = FOLDER_KINDS.get(Path(path).resolve().parent.name)
        if kind is None:
            raise ConfigError(
                f"{path}: cannot tell what kind of file this is from its folder; "
                f"give it with --kind, one of {', '.join(SCHEMAS)}"
            )
    if kind not in SCHEMAS:
        raise ConfigError(f"unknown kind of config {kind!r}; expected one of {', '.join(SCHEMAS)}")
    return SCHEMAS[kind]


def load_config(path: str | Path, schema: type[Config]) -> Config:
    """Load and validate a YAML file against ``schema``.

    Raises
    ------
    ConfigError
        If the file is missing, is not UTF-8 YAML, does not hold a mapping, or
        does not validate. The message names the file and every problem.
    """
    path = Path(path)
    data = _read_yaml(path)
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        problems = "\n".join(f"  - {_describe(error, schema)}" for error in exc.errors())
        raise ConfigError(f"{path}: invalid {_kind(schema)}:\n{problems}") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    data = load_yaml(path)
    if data is None:
        raise ConfigError(f"{path}: the file is empty; expected a mapping of keys to values")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of keys to values at the top level, "
            f"got a {type(data).__name__}: {_short(data)}"
        )
    return data


def _kind(schema: type[BaseModel]) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", " ", schema.__name__).lower()


def _key_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(f".{item}" if parts else str(item))
    return "".join(parts) or "(top level)"


def _short(value: Any, limit: int = 60) -> str:
    text = value.isoformat() if isinstance(value, dt.date) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(error: dict[str, Any], schema: type[BaseModel]) -> str:
    loc = tuple(error["loc"])
    key = _key_path(loc)
    kind = error["type"]
    if kind == "missing":
        return f"{key}: missing; this key is required"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(schema, loc[:-1])
        hint = f"; expected one of: {', '.join(allowed)}" if allowed else ""
        return f"{key}: unknown key{hint}"
    expected = error["msg"].removeprefix("Value error, ")
    if expected.startswith("Input should be "):
        expected = expected.removeprefix("Input should be ")
        if kind.startswith(("greater", "less", "multiple")):
            expected = f"a value {expected}"
    elif expected:
        expected = expected[0].lower() + expected[1:]
    if not loc:
        return f"expected {expected}"
    return f"{key}: got {_short(error.get('input'))}; expected {expected}"


def _allowed_keys(schema: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    model: Any = schema
    for item in loc:
        if isinstance(item, int):
            continue
        fields = getattr(model, "model_fields", {})
        field = fields.get(item) or next((f for f in fields.values() if f.alias == item), None)
        if field is None:
            return []
        model = _model_of(field.annotation)
    return [f.alias or name for name, f in getattr(model, "model_fields", {}).items()]


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
