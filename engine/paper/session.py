"""A paper session: a strategy on live bars, with the backtest's components and kernel.

A session trades every symbol of its strategy: one symbol, or several under a
portfolio component (``strategies/ssl_portfolio.yaml``). It warms up from the
candle store (each symbol's candles, cut to the bars all of them have), then
for every newly closed bar:

1. reads it, for every symbol, from its bar source (``engine.paper.sources``):
   live, the exchange's public kline endpoint through ccxt (with the feed's
   retries and backoff), either polling once the bar is due or, with a bar
   stream, as soon as ccxt.pro's ``watch_ohlcv`` shows it closed; in a
   replay, parquet files of candles released as a simulated clock passes each
   bar's close;
2. computes each symbol's representation and components' outputs, and the
   portfolio weights when the bar starts a refit block;
3. advances the event loop (``engine.sim.run.simulate`` on that one bar of
   all symbols, with the book carried over) with the backtest's costs and
   fill rules;
4. journals every symbol's bar, outputs and decision, and the fills,
   balance, positions and book, in one transaction (see
   ``engine.paper.journal``);
5. stores the bars in the parquet candle store (``SessionOptions.bar_store``).

Steps 2 and 3 are the runner's per-bar path (``engine.runner.stepper``):
the refit schedule, the mapping from component outputs to decisions and the
event loop's settings are the ones a backtest uses, and funding is aligned by
``align_funding``, so a session agrees with ``engine run`` by construction
(within the tolerance that stepper's docstring states). The schedule's anchor
is the out-of-sample start of the run a session is taken from (``from_run``),
else the session's first bar (fitted on the most recent window at start).

A new live session processes every bar after the store's last one, so bring
the store up to date first (``engine data fetch``). A replay warms up on the
store's bars before its first bar and ignores the later ones
(``SessionOptions.warmup_before_ms``), so any store that reaches back before
the replay will do.

A bar is closed when the clock (the earlier of the local and the exchange's
time) has passed its open time plus the interval; only bars after the last
journaled one are fetched, in order, and a hole in the exchange's answer stops
processing at the hole until the bar arrives: a bar is never skipped, and the
journal's keys make processing one twice impossible. An outage is logged and
retried until the exchange answers (attempts 1, 2, 4, 8... are logged, so a bar
that never comes cannot grow the journal without bound); the missed bars are
then caught up in order.

With a bar stream (``engine paper run --feed ws``, see ``engine.paper.stream``)
the stream only says when to fetch: once the clock has passed a bar's close,
the session waits up to ``stream_wait_s`` for the stream to show a later bar,
then fetches through the same REST path as polling, so the stream's own values
(which ccxt gives without Bybit's ``confirm`` flag) are never used. A silent or
lost stream changes nothing but the timing: the bar is polled when due, and
after a reconnect the bars missed meanwhile are caught up by that same path.

Storing follows the journal, off the decision's critical path: after every
fetched batch (one bar when live, many when catching up) the bars journaled
since the last write are merged into each symbol's store file in one atomic
write (``CandleStore.append``). The journal is the source of truth: bars
journaled but not stored when a session was killed are stored when it runs
again, and a failed write is logged and tried again after the next batch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd

from engine.config import StrategyConfig
from engine.data.retry import RetryPolicy
from engine.data.store import CandleStore, SeriesKey
from engine.data.times import iso_utc
from engine.data.times import now_ms as wall_ms
from engine.data.validate import CANDLE_COLUMNS, find_violations, raise_on_violations
from engine.errors import ConfigError, DataError, EngineError
from engine.models.registry import Registry
from engine.paper.journal import DEFAULT_JOURNAL_DIR, AssetRecord, BarRecord, Journal, journal_path
from engine.paper.sources import BarSource, series_keys
from engine.runner.drift import ENDING_POLICIES
from engine.runner.encoders import EncoderVersion
from engine.runner.representation import strategy_representation
from engine.runner.sources import common_bars
from engine.runner.stepper import Bars, BarStepper, DriftResume
from engine.sim.run import SETTLEMENT_MS, align_funding
from engine.strategy.representations import default_cache_dir

if TYPE_CHECKING:
    import ccxt

#: Wait after a bar's close before asking for it.
POLL_MARGIN_MS = 2_000

log = logging.getLogger("engine.paper")


class Clock(Protocol):
    """What the session loop needs of time."""

    def now_ms(self) -> int:
        """Return the time in milliseconds since the epoch."""

    def wait_until(self, ms: int, stop: threading.Event) -> None:
        """Return at ``ms``, or earlier once ``stop`` is set."""


class WallClock:
    """The real time."""

    def now_ms(self) -> int:
        """Return the current time."""
        return wall_ms()

    def wait_until(self, ms: int, stop: threading.Event) -> None:
        """Sleep until ``ms`` or until ``stop`` is set."""
        stop.wait(max(0.0, (ms - wall_ms()) / 1000))


@dataclass(frozen=True)
class SessionOptions:
    """How a session runs.

    Attributes
    ----------
    session : str
        The session's name; its journal is ``journal_dir/<session>.sqlite``.
    journal_dir, models_dir : Path
        Where journals are and where encoders are.
    force : bool
        Resume even if the configuration changed.
    anchor_ms : int, optional
        The first bar of the refit schedule (a run's out-of-sample start);
        the session's first bar when not given.
    until_ms : int, optional
        Stop before the bar opening at this time.
    retry : RetryPolicy
        Retries of each request.
    outage_pause_ms : int
        Wait after the exchange kept failing before asking again.
    poll_margin_ms : int
        Wait after a bar's close before asking for it.
    stream_wait_s : float
        With a bar stream: real seconds to wait, once the clock has passed a
        bar's close, for the stream to show it closed; then it is polled.
    bar_store : Path, optional
        The store folder each processed bar is appended to (the layout of
        ``engine data fetch``); None keeps the bars in the journal only.
    warmup_before_ms : int, optional
        A new session warms up on the store's bars opening before this time
        (a replay's first bar) and processes bars from there on; on all the
        store's bars when not given.
    """

    session: str
    journal_dir: Path = DEFAULT_JOURNAL_DIR
    models_dir: Path = Path("models")
    force: bool = False
    anchor_ms: int | None = None
    until_ms: int | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    outage_pause_ms: int = 60_000
    poll_margin_ms: int = POLL_MARGIN_MS
    stream_wait_s: float = POLL_MARGIN_MS / 1000
    bar_store: Path | None = None
    warmup_before_ms: int | None = None


def config_hash(config: StrategyConfig) -> str:
    """Return the SHA-256 of a resolved configuration."""
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()


class PaperSession:
    """One paper session of a strategy (one or several symbols), new or resumed from its journal.

    Parameters
    ----------
    config : StrategyConfig
        The strategy.
    options : SessionOptions
        Name, folders and timing of the session.
    source : BarSource
        Where bars and funding come from: ``ExchangeSource`` live,
        ``ReplaySource`` in a replay.
    clock : Clock
        The time: ``WallClock`` live, ``ReplayClock`` in a replay.
    store : CandleStore
        The candles the session warms up from.
    stream : ccxt.Exchange, optional
        A ccxt.pro client from ``make_exchange(..., streaming=True)``: its
        public kline stream of the first symbol tells when a bar has closed.
        The session owns it and closes it. Without it the session polls.
    """

    def __init__(
        self,
        config: StrategyConfig,
        options: SessionOptions,
        source: BarSource,
        clock: Clock,
        store: CandleStore,
        stream: ccxt.Exchange | None = None,
    ) -> None:
        market = config.market
        self.config, self.options, self.source, self.clock = config, options, source, clock
        self.keys = series_keys(config)
        self.interval = self.keys[0].interval_ms
        self.journal = Journal(journal_path(options.journal_dir, options.session), options.session)
        policy = config.store
        frames = [store.load(key, policy.gap_policy, policy.max_gap_bars) for key in self.keys]
        frames = common_bars(frames, market.symbols)
        meta = self.journal.meta()
        model = self._pin_encoder(meta)
        if meta:
            warmup_until = int(meta["warmup_until"])
        else:
            warmup_until = _last_bar_before(frames[0], options.warmup_before_ms, store, self.keys)
        frames = [f[f["timestamp"] <= warmup_until].reset_index(drop=True) for f in frames]
        first_ms = warmup_until + self.interval
        anchor_ms = int(meta["anchor_ms"]) if meta else (options.anchor_ms or first_ms)
        self.journal.start(
            {
                "config_sha256": config_hash(config),
                "strategy": config.name,
                "symbols": json.dumps(market.symbols),
                "timeframe": market.timeframe,
                "warmup_until": str(warmup_until),
                "anchor_ms": str(anchor_ms),
                "initial_capital": repr(config.initial_capital),
                "config": config.model_dump_json(),
                "model": model,
            },
            options.force,
        )
        config = self.config
        representations = [
            strategy_representation(
                config, candles, anchor_ms, options.models_dir, default_cache_dir()
            )
            for candles in frames
        ]
        self.bars = [
            Bars(candles, representation.series(candles))
            for candles, representation in zip(frames, representations, strict=True)
        ]
        for row in self.journal.table("bars").itertuples(index=False):
            bar = {c: getattr(row, c) for c in CANDLE_COLUMNS[1:]} | {"timestamp": row.ts}
            bars = self.bars[row.asset]
            bars.append(bar, np.frombuffer(row.z, dtype=bars.z.dtype))
        self.warmup_rows = len(frames[0])
        stamps = self.bars[0].timestamps()
        anchor = min(int(np.searchsorted(stamps, anchor_ms)), self.warmup_rows)
        adaptive = config.drift is not None or config.encoder_refit is not None
        if adaptive and len(market.symbols) > 1:
            raise ConfigError(
                "drift, encoder_refit: a paper session monitors drift and re-tunes encoders for "
                f"one symbol; got {market.symbols}"
            )
        if config.drift is not None and anchor < self.warmup_rows:
            raise ConfigError(
                "drift: a session with drift monitoring starts its refit schedule at its first "
                "bar; it cannot continue a run's schedule (--from-run), whose drift readings "
                "and refits need the run's scores"
            )
        model = None
        if config.encoder_refit is not None:
            model = Registry(options.models_dir).load(config.encoder)
        self.stepper = BarStepper(
            config, self.bars, anchor, representations, model, default_cache_dir()
        )
        resumed = self.journal.resume()
        self.last_ts = warmup_until
        if resumed is not None:
            self.last_ts = resumed.last_ts
            self.stepper.resume(resumed.account, resumed.assets, resumed.states)
            if config.drift is not None:
                self.stepper.resume_drift(self._drift_state())
            versions = self.journal.table("encoders")
            if self.stepper.walk is not None and not versions.empty:
                last = versions.iloc[-1]
                row = int(np.searchsorted(stamps, int(last["ts"])))
                self.stepper.resume_encoder(
                    EncoderVersion(row, str(last["version"]), float(last["seconds"]))
                )
        self.bar_store = None if options.bar_store is None else CandleStore(options.bar_store)
        # The last bar known to be in the bar store; None until the first write.
        self._stored_until: int | None = None
        self.stream = None
        if stream is not None:
            from engine.paper.stream import BarStream

            self.stream = BarStream(stream, self.keys[0], options.retry)

    def _pin_encoder(self, meta: dict[str, str]) -> str:
        # A resumed session keeps the exact encoder version it started with (journaled
        # as "model"), whatever version its strategy's model name resolves to later.
        if self.config.encoder is None:
            return ""
        same = meta.get("config_sha256") == config_hash(self.config)
        pinned = meta.get("model") if same else None
        pinned = pinned or Registry(self.options.models_dir).resolve(self.config.encoder).ref
        self.config = self.config.model_copy(update={"encoder": pinned})
        return pinned

    def _drift_state(self) -> DriftResume:
        # The drift policy's state after the last journaled bar: the block it is in (its last
        # refit), whether the policy ended it there, the flatten flag and the block's scores.
        decisions = self.journal.table("decisions")
        block_ts = int(decisions["ts"][decisions["refit"] == 1].iloc[-1])
        drift = self.journal.table("drift")
        drift = drift[drift["ts"] >= block_ts]
        outputs = self.journal.table("outputs")
        scores = outputs[(outputs["name"] == "score") & (outputs["ts"] >= block_ts)]
        last = self.stepper.n - 1
        triggered = not drift.empty and bool(drift["triggered"].iloc[-1])
        ends = (
            triggered
            and int(drift["ts"].iloc[-1]) == self.last_ts
            and self.config.drift.policy in ENDING_POLICIES
        )
        return DriftResume(
            int(np.searchsorted(self.bars[0].timestamps(), block_ts)),
            last if ends else None,
            triggered,
            scores["value"].tolist(),
        )

    def close(self) -> None:
        """Close the bar stream, if any, and the journal."""
        if self.stream is not None:
            self.stream.close()
            self._stream_events()
        self.journal.close()

    def _event(self, level: int, message: str) -> None:
        log.log(level, message)
        self.journal.log(self.clock.now_ms(), logging.getLevelName(level), message)

    def run(
        self,
        stop: threading.Event | None = None,
        progress: Callable[[BarRecord], None] | None = None,
    ) -> int:
        """Process closed bars until ``stop`` is set or ``until_ms`` is reached.

        ``progress``, if given, is called with each bar's journaled record.

        Returns
        -------
        int
            The number of bars processed.
        """
        stop = stop or threading.Event()
        options, processed, failures = self.options, 0, 0
        # Bars journaled but not stored when the last run ended (a crash) are stored first.
        self._store_bars()
        stepper = self.stepper
        if stepper.fitted_block is None:
            # Fit before the first bar arrives rather than on its critical path.
            stepper.refit(stepper.window(stepper.n)[0])
        while not stop.is_set():
            since = self.last_ts + self.interval
            if options.until_ms is not None and since >= options.until_ms:
                break
            due = since + self.interval + options.poll_margin_ms
            if self.clock.now_ms() < due and not self._streamed(since, stop):
                self.clock.wait_until(due, stop)
                continue
            try:
                bars, rates, received = self._fetch(since)
            except EngineError as exc:
                failures += 1
                # Attempts 1, 2, 4, 8... are logged: a bar that never comes cannot flood
                # the journal and the log.
                if failures & (failures - 1) == 0:
                    self._event(
                        logging.WARNING,
                        f"no bar from {iso_utc(since)} (attempt {failures}): {exc}; asking "
                        f"again every {options.outage_pause_ms / 1000:g} s",
                    )
                self.clock.wait_until(self.clock.now_ms() + options.outage_pause_ms, stop)
                continue
            failures = 0
            if len(bars[0]) > 1:
                self._event(
                    logging.INFO,
                    f"catching up {len(bars[0])} bars from {iso_utc(since)} to "
                    f"{iso_utc(int(bars[0]['timestamp'].iloc[-1]))}",
                )
            rows = [frame.to_dict("records") for frame in bars]
            for i, stamp in enumerate(bars[0]["timestamp"]):
                if options.until_ms is not None and stamp >= options.until_ms:
                    break
                record = self.process([r[i] for r in rows], [float(r[i]) for r in rates], received)
                processed += 1
                if progress is not None:
                    progress(record)
                if stop.is_set():
                    break
                self._prepare()
            self._store_bars()
        return processed

    def _prepare(self) -> None:
        # Refit before the next bar when it starts a block, journaling an encoder re-tuning
        # before it starts (a pause between bars) and its version and time once done.
        stepper = self.stepper
        following = stepper.window(stepper.n)[0]
        tuning = following == stepper.n and stepper.will_tune(following)
        if tuning:
            self._event(logging.INFO, f"re-tuning the encoder on the bars before bar {following}")
        stepper.prepare()
        if tuning:
            tuned = stepper.tuned
            self._event(
                logging.INFO,
                f"encoder version {tuned.version} tuned in {tuned.seconds:.1f} s; it encodes "
                f"from the next bar on",
            )

    def _streamed(self, since: int, stop: threading.Event) -> bool:
        # Whether the bar stream shows bar `since` closed (a later bar streaming), waited for
        # up to `stream_wait_s` once the clock has passed the close. False without a stream.
        if self.stream is None:
            return False
        self._stream_events()
        close = since + self.interval
        if self.clock.now_ms() < close:
            self.clock.wait_until(close, stop)
        return self.stream.wait_past(since, self.options.stream_wait_s, stop)

    def _stream_events(self) -> None:
        # Journal what the stream's thread reported (lost, back, connected).
        for level, message in self.stream.events():
            self._event(level, message)

    def _store_bars(self) -> None:
        # Append the journaled bars the bar store lacks, in one atomic write per symbol.
        if self.bar_store is None:
            return
        stamps = self.bars[0].timestamps()
        first = self.warmup_rows
        if self._stored_until is not None:
            first = max(first, int(np.searchsorted(stamps, self._stored_until, side="right")))
        if first == len(stamps):
            return
        store = self.config.store
        # Flat bars are never stored; a store that tolerates gaps keeps them as they are.
        policy = "error" if store.gap_policy == "error" else "drop"
        try:
            for key, bars in zip(self.keys, self.bars, strict=True):
                self.bar_store.append(key, bars.frame(first, bars.n), policy, store.max_gap_bars)
        except (DataError, OSError) as exc:
            self._event(
                logging.WARNING,
                f"bars from {iso_utc(int(stamps[first]))} not stored in {self.bar_store.root} "
                f"({exc}); they are in the journal, and storing them is tried after the next bar",
            )
            return
        self._stored_until = int(stamps[-1])

    def _fetch(self, since: int) -> tuple[list[pd.DataFrame], list[np.ndarray], float]:
        # Each symbol's closed bars from `since` on, contiguous and on the same timestamps
        # (as many as every symbol has), with their funding rates.
        now = min(self.clock.now_ms(), self.source.time_ms())
        frames = self.source.closed_bars(since, now)
        received = time.perf_counter()
        count = min(len(frame) for frame in frames)
        for key, frame in zip(self.keys, frames, strict=True):
            stamps = frame["timestamp"].to_numpy()
            expected = since + self.interval * np.arange(len(stamps))
            if (stamps != expected).any():
                hole = int(np.argmin(stamps == expected))
                self._event(
                    logging.WARNING,
                    f"the exchange left out the {key.symbol} bar at "
                    f"{iso_utc(int(expected[hole]))}; waiting for it before any later bar",
                )
                count = min(count, hole)
        if count == 0:
            raise DataError(f"the exchange has no closed bar from {iso_utc(since)} yet")
        frames = [frame.iloc[:count] for frame in frames]
        for key, frame in zip(self.keys, frames, strict=True):
            raise_on_violations(
                find_violations(frame, CANDLE_COLUMNS, self.interval),
                f"{key.symbol} bars from the exchange",
            )
        stamps = frames[0]["timestamp"].to_numpy()
        rates = [self._funding(asset, stamps, now) for asset in range(len(frames))]
        return frames, rates, received

    def _funding(self, asset: int, stamps: np.ndarray, now: int) -> np.ndarray:
        # An asset's funding rate settling in each bar, as the backtest aligns it (0 without
        # funding).
        config = self.config
        settles = (-stamps) % SETTLEMENT_MS < self.interval
        if not config.costs.funding or config.market.market != "linear" or not settles.any():
            return np.zeros(len(stamps))
        rates = self.source.funding(asset, int(stamps[0]), int(stamps[-1]) + self.interval, now)
        if rates.empty:
            # Nothing settled yet or published for these bars: no funding, as in a backtest.
            return np.zeros(len(stamps))
        return align_funding(stamps, rates["timestamp"].to_numpy(), rates["rate"].to_numpy())

    def process(
        self, bars: list[dict[str, float]], funding: list[float], received: float
    ) -> BarRecord:
        """Decide on one closed bar of every asset, advance the book, journal both at once.

        ``bars`` and ``funding`` hold each asset's bar (all opening at one
        time) and funding rate, in the order of ``market.symbols``.

        Returns
        -------
        BarRecord
            What the journal recorded for the bar.
        """
        step = self.stepper.step(bars, funding)
        result = step.result
        costs = result.ledger[0]
        balance = {"equity": float(result.equity[0]), "cash": float(result.cash[0])}
        for name in costs.dtype.names:
            balance[name] = float(costs[name])
        ts = int(bars[0]["timestamp"])
        per_asset = [
            AssetRecord(
                bar={c: float(bar[c]) for c in CANDLE_COLUMNS[1:]},
                z=z,
                funding_rate=rate,
                outputs=outputs,
                decision=asdict(decision),
                weight=float(weight),
                state=state,
            )
            for bar, z, rate, outputs, decision, weight, state in zip(
                bars,
                step.z,
                funding,
                step.outputs,
                step.decisions,
                step.weights,
                step.states,
                strict=True,
            )
        ]
        record = BarRecord(
            ts=ts,
            received_ms=self.clock.now_ms(),
            latency_ms=(time.perf_counter() - received) * 1000,
            refit=step.refit,
            per_asset=per_asset,
            fills=result.fills,
            rejects=result.rejects,
            balance=balance,
            account=result.account,
            assets=result.assets,
            drift=step.drift,
            encoder=step.encoder,
        )
        self.journal.record(record)
        self.stepper.commit(step)
        self.last_ts = ts
        if step.drift is not None and step.drift.alarms:
            action = self.config.drift.policy if step.drift.triggered else "alert"
            self._event(logging.WARNING, f"{iso_utc(ts)} {step.drift.describe()}; {action}")
        log.info(
            "%s %s, %d fills, equity %.2f",
            iso_utc(ts),
            "; ".join(
                f"{key.symbol} close {bar['close']:.2f}: target {d.target:+.4f} mode {d.mode}"
                for key, bar, d in zip(self.keys, bars, step.decisions, strict=True)
            ),
            len(result.fills),
            balance["equity"],
        )
        return record


def _last_bar_before(
    candles: pd.DataFrame, before_ms: int | None, store: CandleStore, keys: list[SeriesKey]
) -> int:
    # The last warm-up bar of a new session: the store's last bar opening before `before_ms`.
    stamps = candles["timestamp"].to_numpy()
    if before_ms is not None:
        stamps = stamps[stamps < before_ms]
    if len(stamps) == 0:
        before = "" if before_ms is None else f" before {iso_utc(before_ms)}"
        names = ", ".join(key.filename for key in keys)
        raise DataError(
            f"the store {store.root} has no {names} bars{before}; a session warms up on the "
            "store's bars before its first bar"
        )
    return int(stamps[-1])
