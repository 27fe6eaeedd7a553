"""Lookahead audit of a strategy: change the future, and nothing in the past may move.

At a sample of out-of-sample bars t, the bars after t are replaced by a
different but valid price path (and other volumes), the representation is
recomputed from scratch (no cache), the components are refitted
walk-forward, and every output at or before t is compared bit for bit with
the original run: the representation, every component output and decision,
the bars at which components and encoders were refitted (the representation
is each bar's encoder version's, so encoders re-tuned walk-forward are audited
too) and, with drift monitoring, every drift reading. A causal strategy
changes nothing; any changed value is a leak and is reported with the output
it appeared in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from engine.config import StrategyConfig
from engine.data.store import CandleStore
from engine.runner.assemble import check_schedule
from engine.runner.backtest import decide
from engine.runner.decisions import DECISION_FIELDS
from engine.runner.drift import READING_FIELDS
from engine.runner.sources import load_candles, out_of_sample_rows
from engine.runner.walkforward import Decisions, Fitted


@dataclass(frozen=True)
class Finding:
    """Outputs at or before bar ``t`` that changed when the bars after ``t`` changed."""

    bar: int
    time: str
    output: str
    changed: int
    compared: int
    #: Values after ``t`` that changed: evidence that the perturbation took effect.
    moved_after: int


def perturb_after(candles: pd.DataFrame, t: int, seed: int) -> pd.DataFrame:
    """Return ``candles`` with every bar after ``t`` replaced by another valid price path.

    Later prices are mirrored and stretched around the close of bar t in log
    space (a log distance d from it becomes -1.5 d), so every later return
    changes sign and size, and later volumes are shuffled. Bars up to ``t``
    are left exactly as they were.
    """
    rng = np.random.default_rng(seed)
    out = candles.copy()
    later = out.index[t + 1 :]
    anchor = np.log(candles["close"].iloc[t])

    def mirrored(column: str) -> np.ndarray:
        return np.exp(anchor - 1.5 * (np.log(candles[column].to_numpy()[t + 1 :]) - anchor))

    # Mirroring turns highs into lows and lows into highs.
    for column, source in (("open", "open"), ("close", "close"), ("high", "low"), ("low", "high")):
        out.loc[later, column] = mirrored(source)
    out.loc[later, "volume"] = rng.permutation(candles["volume"].to_numpy()[t + 1 :])
    return out


def _outputs(fitted: Fitted, symbols: list[str]) -> dict[str, np.ndarray]:
    outputs = {}
    for symbol, history, decisions in zip(symbols, fitted.histories, fitted.decisions, strict=True):
        rows = slice(decisions.start, decisions.stop)
        outputs[f"{symbol} representation"] = history.z[rows]
        for name in DECISION_FIELDS:
            outputs[f"{symbol} {name}"] = getattr(decisions, name)
        for name, values in decisions.outputs.items():
            outputs[f"{symbol} component:{name}"] = values
        outputs[f"{symbol} refits"] = _marks(decisions, [r[0] for r in decisions.refits])
        outputs[f"{symbol} encoder refits"] = _marks(decisions, [v.bar for v in decisions.encoders])
        if decisions.drift:
            for name in READING_FIELDS:
                if name != "alarms":
                    values = {t: float(getattr(r, name)) for t, r in decisions.drift.items()}
                    outputs[f"{symbol} drift:{name}"] = _marks(decisions, values)
    outputs["portfolio weights"] = fitted.weights
    return outputs


def _marks(decisions: Decisions, values: dict[int, float] | list[int]) -> np.ndarray:
    # One value per decided bar: the given values at their bars (1 at listed bars), else NaN.
    column = np.full(decisions.stop - decisions.start, np.nan)
    pairs = values.items() if isinstance(values, dict) else ((t, 1.0) for t in values)
    for t, value in pairs:
        column[t - decisions.start] = value
    return column


def audit(
    config: StrategyConfig,
    models_dir: Path = Path("models"),
    store: CandleStore | None = None,
    samples: int = 4,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[Finding]:
    """Return one finding per sampled bar and output: how many past values changed.

    An honest strategy has ``changed == 0`` everywhere. Representations are
    recomputed without the cache, so the encoder is audited too. ``progress``
    is called with the name of each of the ``samples + 2`` stages as it starts.
    """
    say = progress or (lambda _: None)
    store = store or CandleStore(config.store.path)
    say("loading candles")
    _, frames = load_candles(config, store)
    timestamps = frames[0]["timestamp"].to_numpy()
    start, stop = out_of_sample_rows(config, timestamps)
    check_schedule(config, start)
    symbols = config.market.symbols
    say("decisions on the bars as they are")
    base = _outputs(decide(config, frames, start, stop, models_dir, None), symbols)
    fractions = np.arange(1, samples + 1) / (samples + 1)
    findings = []
    for i, t in enumerate(start + (fractions * (stop - start - 1)).astype(int)):
        say(f"decisions with the bars after sample {i + 1} of {samples} changed")
        changed = [perturb_after(frame, int(t), seed + i) for frame in frames]
        other = _outputs(decide(config, changed, start, stop, models_dir, None), symbols)
        upto = int(t) - start + 1
        when = pd.Timestamp(int(timestamps[t]), unit="ms", tz="UTC").isoformat()
        for name, values in base.items():
            differs = ~((values == other[name]) | (np.isnan(values) & np.isnan(other[name])))
            findings.append(
                Finding(
                    int(t),
                    when,
                    name,
                    int(differs[:upto].sum()),
                    int(differs[:upto].size),
                    int(differs[upto:].sum()),
                )
            )
    return findings
