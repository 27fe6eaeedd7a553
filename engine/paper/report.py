"""A paper session's run folder, written from its journal as ``engine run`` writes a backtest's.

The journal is turned back into the backtest's result types (the per-bar
decisions, the event loop's fills, rejects and equity) and handed to
``engine.report.run.write_run``, so both folders have the same files and columns
and can be diffed: tearsheet.html, metrics.json, trades.csv, equity.csv,
config.yaml, inputs.json and timings.json, and with drift monitoring drift.csv
and drift.png. A session's timings are its
decision latencies (from a bar's arrival to its journaled decision: median,
99th percentile and maximum, in milliseconds) and the time the report took to
read the journal. ``engine paper report`` writes it as
``reports/paper-<session>-<UTC time>/``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from engine.config import StrategyConfig
from engine.errors import DataError
from engine.paper.journal import Journal, journal_path
from engine.report.run import Backtest, bar_time, performance
from engine.runner.decisions import DECISION_FIELDS
from engine.runner.drift import READING_FIELDS, Reading
from engine.runner.walkforward import Decisions, Fitted
from engine.sim.enums import account_dt, asset_dt, fill_dt, reject_dt
from engine.sim.run import SimResult
from engine.strategy.base import History
from engine.strategy.representations import hash_candles


def _records(frame: pd.DataFrame, dtype: np.dtype, bar: np.ndarray) -> np.ndarray:
    # Journal rows as event-loop records, with `bar` the row of each record's bar.
    records = np.zeros(len(frame), dtype)
    records["bar"] = bar
    for name in dtype.names[1:]:
        records[name] = frame[name].to_numpy()
    return records


def _readings(drift: pd.DataFrame, stamps: np.ndarray) -> dict[int, Reading]:
    # The journaled drift readings by bar row.
    rows = np.searchsorted(stamps, drift["ts"].to_numpy())
    records = drift.to_dict("records")
    return {
        int(r): Reading(
            **(
                {name: record[name] for name in READING_FIELDS}
                | {"triggered": record["triggered"] == 1}
            )
        )
        for r, record in zip(rows, records, strict=True)
    }


def session_backtest(journal_dir: Path, session: str) -> Backtest:
    """Return a session's journal as the result of a backtest over its bars."""
    started = time.perf_counter()
    journal = Journal.open_existing(journal_path(journal_dir, session), session)
    try:
        meta = journal.meta()
        tables = {name: journal.table(name) for name in ("bars", "decisions", "outputs")}
        tables |= {name: journal.table(name) for name in ("balances", "fills", "rejects")}
        positions = journal.table("positions")
        drift = journal.table("drift") if journal.has_table("drift") else None
        last = journal.resume()
    finally:
        journal.close()
    read_s = time.perf_counter() - started
    per_asset = [frame for _, frame in tables["bars"].groupby("asset", sort=True)]
    n_bars = len(per_asset[0]) if per_asset else 0
    if n_bars < 2:
        raise DataError(f"paper session {session!r} has {n_bars} bars; a report needs 2")
    config = StrategyConfig.model_validate_json(meta["config"])
    stamps = per_asset[0]["ts"].to_numpy()
    candles = [frame.rename(columns={"ts": "timestamp"}) for frame in per_asset]
    histories = [History.from_candles(c, np.zeros((len(stamps), 0))) for c in candles]
    outputs = tables["outputs"]
    decided = [frame for _, frame in tables["decisions"].groupby("asset", sort=True)]
    decisions = []
    for asset, chosen in enumerate(decided):
        mine = outputs[outputs["asset"] == asset].pivot(index="ts", columns="name", values="value")
        decisions.append(
            Decisions(
                start=0,
                stop=len(stamps),
                **{name: chosen[name].to_numpy() for name in DECISION_FIELDS},
                outputs={name: mine[name].to_numpy() for name in mine.columns},
                refits=[(int(r), -1, -1) for r in np.flatnonzero(chosen["refit"].to_numpy())],
                drift={} if drift is None else _readings(drift, stamps),
            )
        )
    weights = np.column_stack([chosen["weight"].to_numpy() for chosen in decided])
    fitted = Fitted(histories, decisions, weights, [{"session": session}] * len(per_asset))
    balances = tables["balances"]
    row = {ts: i for i, ts in enumerate(stamps)}
    close = np.column_stack([history.close for history in histories])
    sim = SimResult.from_columns(
        equity=balances["equity"].to_numpy(),
        cash=balances["cash"].to_numpy(),
        funding=balances["funding"].to_numpy(),
        position=positions["position"].to_numpy().reshape(len(stamps), -1),
        fills=_records(tables["fills"], fill_dt, tables["fills"]["ts"].map(row).to_numpy()),
        rejects=_records(tables["rejects"], reject_dt, tables["rejects"]["ts"].map(row).to_numpy()),
        account=last.account if last else np.zeros(1, account_dt),
        assets=last.assets if last else np.zeros(1, asset_dt),
        close=close,
    )
    close, metrics, daily, benchmark = performance(config, fitted, sim, 0, n_bars)
    inputs = {
        "first_bar": bar_time(stamps[0]),
        "last_bar": bar_time(stamps[-1]),
        "paper_session": session,
        "config_sha256": meta["config_sha256"],
        "model": meta.get("model") or None,
        "assets": [
            {"candles": f"journal of {session}", "candles_sha256": hash_candles(c)} for c in candles
        ],
    }
    # Every asset's row of a bar holds the bar's latency.
    latency = per_asset[0]["latency_ms"].to_numpy()
    timings = {
        "read_journal_s": read_s,
        "latency_p50_ms": float(np.percentile(latency, 50)),
        "latency_p99_ms": float(np.percentile(latency, 99)),
        "latency_max_ms": float(latency.max()),
    }
    return Backtest(config, stamps, close, fitted, sim, metrics, daily, benchmark, inputs, timings)
