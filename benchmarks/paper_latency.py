"""Latency and memory of a paper session replayed over real candles.

The session runs a strategy (by default ``strategies/ssl_cost.yaml``, TS2Vec)
on the last ``--bars`` hourly bars of ``bybit_linear_BTCUSDT_1h``, read by the
replay source (``engine paper run --replay``) with a simulated clock that moves
on to the next bar's close as soon as a bar is done; the bars before them are
the warm-up store.

- Latency: from a closed bar's arrival (the source's answer) to its decision,
  fills and book committed to the journal, per bar; p50, p99 and max.
- Store: the session appends every bar to the warm-up store after journaling
  it, as a live session does (one atomic rewrite of the parquet file per bar,
  off the decision's critical path); the time of each write, p50, p99 and max.
- Threads: torch runs on ``--threads`` intra-op threads, 1 by default, as
  ``engine paper run`` does. On a 2-core machine that other work shares, two
  OpenMP threads meet at a barrier after every convolution and wait whenever
  the other core is busy: the p99 rose from about 50 ms to about 1 s.
- Memory: the process's resident set size every ``--sample`` bars.

Run from the repository root (``ENGINE_SHARED_DATA`` overrides ../shared/data)::

    python benchmarks/paper_latency.py --bars 10000

The last lines are ``latency_ms p50 ... p99 ... max ...``,
``store_ms p50 ... p99 ... max ...`` and ``rss_mb first ... last ... max ...``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from engine.config import StrategyConfig, load_config
from engine.data.retry import RetryPolicy
from engine.data.store import CandleStore, FundingKey, SeriesKey
from engine.paper.session import PaperSession, SessionOptions
from engine.paper.sources import ReplayClock, replay_source

REPO_ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    """Return the resident set size of this process in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> None:
    """Replay the bars and print latency percentiles and the memory profile."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", type=Path, default=REPO_ROOT / "strategies/ssl_cost.yaml")
    parser.add_argument("--bars", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shared = Path(os.environ.get("ENGINE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    config: StrategyConfig = load_config(args.strategy, StrategyConfig)
    key = SeriesKey(*(config.market.exchange, config.market.market), config.market.symbols[0], "1h")
    candles = pd.read_parquet(shared / key.filename)
    first = int(candles["timestamp"].iloc[-args.bars])
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        store = CandleStore(root / "store")
        store.write(key, candles[candles["timestamp"] < first])
        funding = FundingKey(key.exchange, key.market, key.symbol)
        if (shared / funding.filename).is_file():
            shutil.copy(shared / funding.filename, store.root / funding.filename)
        options = SessionOptions(
            "benchmark",
            journal_dir=root / "journal",
            models_dir=REPO_ROOT / "models",
            retry=RetryPolicy(retries=2, base_delay_s=0.0, max_delay_s=0.0),
            bar_store=store.root,
        )
        writes_ms = []
        append = CandleStore.append

        def timed_append(self, *args, **kwargs):
            started = time.perf_counter()
            written = append(self, *args, **kwargs)
            writes_ms.append((time.perf_counter() - started) * 1000)
            return written

        CandleStore.append = timed_append
        clock_start = time.perf_counter()
        clock = ReplayClock(0)
        source = replay_source(config, shared / key.filename, store, clock)
        session = PaperSession(config, options, source, clock, store)
        print(f"warm-up {time.perf_counter() - clock_start:.1f} s; replaying {args.bars} bars")
        clock.jump(session.last_ts + session.interval)
        memory = [rss_mb()]
        done = 0
        while done < args.bars:
            chunk = min(args.sample, args.bars - done)
            until = session.last_ts + (chunk + 1) * session.interval
            session.options = replace(options, until_ms=until)
            done += session.run()
            memory.append(rss_mb())
            print(f"bars {done:>6}: rss {memory[-1]:.1f} MB")
        bars = session.journal.table("bars")
        refits = session.journal.table("decisions")["refit"].to_numpy() == 1
        session.close()
    latency = bars["latency_ms"].to_numpy()
    slowest = np.argsort(latency)[::-1][:10]
    print(
        "slowest bars (ms):",
        ", ".join(f"{latency[i]:.0f}{' refit' if refits[i] else ''}" for i in slowest),
    )
    p50, p99 = np.percentile(latency, [50, 99])
    print(
        f"latency_ms p50 {p50:.1f} p99 {p99:.1f} max {latency.max():.1f} over {len(latency)} bars"
    )
    s50, s99 = np.percentile(writes_ms, [50, 99])
    writes = f"over {len(writes_ms)} writes"
    print(f"store_ms p50 {s50:.1f} p99 {s99:.1f} max {max(writes_ms):.1f} {writes}")
    print(f"rss_mb first {memory[1]:.1f} last {memory[-1]:.1f} max {max(memory[1:]):.1f}")


if __name__ == "__main__":
    main()
