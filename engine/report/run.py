"""A run folder: the metrics, trades, equity and tearsheet of a backtest or a paper session.

``performance`` computes the headline metrics of the bars acted on;
``write_run`` writes the folder that ``engine run`` and ``engine paper
report`` both write, with the same files and columns (and, for a strategy
with drift monitoring, ``drift.csv`` and ``drift.png``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from engine.atomic import atomic_path, write_text
from engine.config import StrategyConfig
from engine.errors import EngineError
from engine.report.metrics import daily_returns, direction_accuracy, summarise
from engine.runner.assemble import build_pipeline
from engine.runner.walkforward import Fitted
from engine.sim.enums import Kind, Liquidity, Reason, Side
from engine.sim.run import SimResult
from engine.strategy.features import forward_return

#: Evaluation horizon of direction accuracy for signals without a label horizon.
DEFAULT_ACCURACY_HORIZON = 5


@dataclass(frozen=True)
class Backtest:
    """Everything a backtest produced, ready for the run folder."""

    config: StrategyConfig
    timestamps: np.ndarray
    close: np.ndarray
    fitted: Fitted
    sim: SimResult
    metrics: dict
    daily: pd.Series
    benchmark: pd.Series
    inputs: dict
    timings: dict = field(default_factory=dict)


def performance(
    config: StrategyConfig, fitted: Fitted, sim: SimResult, start: int, stop: int
) -> tuple[np.ndarray, dict, pd.Series, pd.Series]:
    """Return the closes, metrics, daily returns and buy-and-hold benchmark of rows ``start:stop``.

    The direction accuracy counts only forward returns that end before ``stop``.
    """
    rows = slice(start, stop)
    timestamps = fitted.histories[0].timestamp
    close = np.column_stack([h.close[rows] for h in fitted.histories])
    first_open = np.array([h.open[start] for h in fitted.histories])
    horizon = build_pipeline(config).signal.horizon or DEFAULT_ACCURACY_HORIZON
    accuracy = direction_accuracy(
        np.concatenate([d.outputs["score"] for d in fitted.decisions]),
        np.concatenate([forward_return(h.close[:stop], horizon)[rows] for h in fitted.histories]),
    )
    capital = config.initial_capital
    daily = daily_returns(timestamps[rows], sim.equity, capital)
    hold = capital * (close / first_open).mean(axis=1)
    benchmark = daily_returns(timestamps[rows], hold, capital).rename("benchmark")
    metrics = summarise(daily, sim.equity, sim.position, capital, sim.fills, sim.ledger, accuracy)
    metrics["benchmark_return"] = float(hold[-1] / capital - 1.0)
    metrics["bars"] = stop - start
    return close, metrics, daily, benchmark


def metrics_json(metrics: dict) -> str:
    """Return the text of a run folder's ``metrics.json``."""
    return json.dumps(metrics, indent=2) + "\n"


def bar_time(ms: int) -> str:
    """Return the ISO 8601 time, in UTC, of a bar opening at ``ms``."""
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").isoformat()


def _names(enum, values: np.ndarray) -> list[str]:
    return [enum(int(v)).name.lower() for v in values]


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` atomically as CSV, floats to 15 significant digits.

    Fifteen digits is what a float64 holds exactly, so a quantity of 0.173
    reads 0.173 rather than 0.17300000000000001; a zero is written 0, never
    -0.
    """
    floats = frame.select_dtypes("float").columns
    # Adding 0.0 turns -0.0 into 0.0 and leaves every other value as it is.
    cleaned = frame.assign(**{column: frame[column] + 0.0 for column in floats})
    with atomic_path(path) as tmp:
        cleaned.to_csv(tmp, index=False, float_format="%.15g")


def trades_frame(backtest: Backtest) -> pd.DataFrame:
    """Return one row per fill, with times, symbols and enum names spelled out."""
    fills = backtest.sim.fills
    symbols = np.array(backtest.config.market.symbols)
    return pd.DataFrame(
        {
            "time": [bar_time(backtest.timestamps[b]) for b in fills["bar"]],
            "symbol": symbols[fills["asset"]],
            "side": _names(Side, fills["side"]),
            "quantity": fills["quantity"],
            "price": fills["price"],
            "fee": fills["fee"],
            "slippage": fills["slippage"],
            "liquidity": _names(Liquidity, fills["liquidity"]),
            "kind": _names(Kind, fills["kind"]),
            "reason": _names(Reason, fills["reason"]),
        }
    )


def equity_frame(backtest: Backtest) -> pd.DataFrame:
    """Return one row per out-of-sample bar: equity, costs, and per asset its book and decisions.

    Per-asset columns end in ``_<SYMBOL>``.
    """
    sim = backtest.sim
    columns = {
        "time": [bar_time(t) for t in backtest.timestamps],
        "equity": sim.equity,
        "cash": sim.cash,
    }
    for column in sim.ledger.dtype.names:
        columns[column] = sim.ledger[column]
    fitted = backtest.fitted
    for i, symbol in enumerate(backtest.config.market.symbols):
        decisions = fitted.decisions[i]
        per_asset = {
            "close": backtest.close[:, i],
            "position": sim.position[:, i],
            "notional": sim.notional[:, i],
            "weight": fitted.weights[:, i],
            "target": decisions.target,
            "risk_scale": decisions.risk_scale,
            "mode": decisions.mode,
            **dict(sorted(decisions.outputs.items())),
        }
        columns.update({f"{name}_{symbol}": values for name, values in per_asset.items()})
    return pd.DataFrame(columns)


def write_run(
    backtest: Backtest,
    reports_dir: Path,
    config_path: Path | None = None,
    name: str | None = None,
) -> Path:
    """Write the run folder ``reports_dir/<name>-<UTC time>/`` and return its path.

    ``name`` is the strategy's name when not given. The folder is assembled
    under a hidden name and renamed when complete, so a crash leaves no
    half-written run; on an error the partial folder is removed, and an
    ``OSError`` (a full disk) becomes an ``EngineError``.
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    final = reports_dir / f"{name or backtest.config.name}-{stamp}"
    building = reports_dir / f".{final.name}.partial"
    try:
        building.mkdir(parents=True, exist_ok=False)
    except OSError as exc:
        raise EngineError(f"cannot write the run folder {final}: {exc}") from None
    try:
        _write_run_files(backtest, building, config_path)
        building.rename(final)
    except BaseException as exc:
        shutil.rmtree(building, ignore_errors=True)
        if isinstance(exc, OSError):
            raise EngineError(f"cannot write the run folder {final}: {exc}") from None
        raise
    return final


def _write_run_files(backtest: Backtest, building: Path, config_path: Path | None) -> None:
    # Every file of a run folder, written into `building`.
    from engine.report.drift import drift_frame, write_drift_plot
    from engine.report.tearsheet import write_tearsheet

    inputs = dict(backtest.inputs)
    if config_path is not None:
        inputs["config_file"] = str(config_path)
        inputs["config_sha256"] = hashlib.sha256(config_path.read_bytes()).hexdigest()
    write_text(building / "metrics.json", metrics_json(backtest.metrics))
    write_text(building / "inputs.json", json.dumps(inputs, indent=2) + "\n")
    write_text(building / "timings.json", json.dumps(backtest.timings, indent=2) + "\n")
    resolved = backtest.config.model_dump(mode="json", by_alias=True)
    write_text(building / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))
    write_csv(trades_frame(backtest), building / "trades.csv")
    write_csv(equity_frame(backtest), building / "equity.csv")
    drift = backtest.config.drift
    if drift is not None:
        symbols = backtest.config.market.symbols
        frame = drift_frame(backtest.fitted, symbols)
        write_csv(frame, building / "drift.csv")
        write_drift_plot(backtest.fitted, symbols, drift, frame, building / "drift.png")
    write_tearsheet(
        backtest.daily,
        backtest.benchmark,
        building / "tearsheet.html",
        title=f"{backtest.config.name}: out-of-sample {inputs['first_bar'][:10]} to "
        f"{inputs['last_bar'][:10]}",
        metrics=backtest.metrics,
        bar=backtest.config.market.timeframe,
    )
