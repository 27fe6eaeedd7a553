"""A paper session: a strategy on live bars, with the backtest's components and kernel.

The session warms up from the candle store, then for every newly closed bar:

1. fetches it through ccxt (the public kline endpoint over REST, with the
   feed's retries and backoff), either polling once the bar is due or, with a
   bar stream, as soon as ccxt.pro's ``watch_ohlcv`` shows it closed;
2. computes its representation and the components' outputs;
3. advances the event loop (``engine.sim.run.simulate`` on that one bar, with
   the book carried over) with the backtest's costs and fill rules;
4. journals the bar, the decision, fills, balance, positions and book, in one
   transaction (see ``engine.paper.journal``);
5. stores the bar in the parquet candle store (``SessionOptions.bar_store``).

Parity with ``engine run`` holds by construction where it can:

- the per-bar decision comes from ``walkforward.decide_bar``, the stepper that
  ``walk_forward`` loops over;
- components are refitted with ``walkforward.refit`` at the same bars as the
  backtest (every ``refit_every`` bars from the anchor, on the same windows and
  embargo); fitting is deterministic, so the fitted components are identical.
  The anchor is the out-of-sample start of the run a session is taken from
  (``from_run``), else the session's first bar (fitted on the most recent
  window at start);
- the event loop is the same kernel with the same settings
  (``backtest.sim_settings``) and funding aligned by ``align_funding``.

What cannot be bit-identical is stated here, not hidden. Components transform
one bar at a time in a session but a whole refit block at once in a backtest,
and BLAS sums a matrix-vector product in an order that depends on the number
of rows, so outputs such as the score can differ in the last bit (about 1e-16
relative); so can a realised volatility, summed from the start of the fitting
window rather than from the first bar. Fills, fees, funding and equity are
identical whenever no threshold or quantity step lies within that tolerance of
a value, which the parity tests check on real candles, with the features
representation and with the shipped TS2Vec encoder.

The representation itself is bit-identical. A new bar's features are computed
over a tail of the history that starts ``settle_bars`` before the first bar
they are needed for, after which features do not depend on where a series
starts (``engine.data.features``). An encoder then encodes the bar's block
window with the bars after it left as zeros, one forward pass of the same shape
as the backtest's pass over that block, on one thread, so the bar's row equals
the backtest's bit for bit (``engine.ssl.infer``). An encoder with an unbounded
receptive field would be the exception: it is run over the whole history, whose
length differs from the backtest's.

A new live session processes every bar after the store's last one, so bring
the store up to date first (``engine data fetch``).

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
since the last write are merged into the store file in one atomic write
(``CandleStore.append``). The journal is the source of truth: bars journaled
but not stored when a session was killed are stored when it runs again, and a
failed write is logged and tried again after the next batch.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import ccxt
import numpy as np
import pandas as pd

from engine.backtest import build_pipeline, compute_representation, sim_settings
from engine.config import StrategyConfig
from engine.data.features import settle_bars
from engine.data.feed import RetryPolicy, fetch_funding, fetch_ohlcv
from engine.data.store import CandleStore, FundingKey, SeriesKey
from engine.data.times import iso_utc
from engine.data.times import now_ms as wall_ms
from engine.data.validate import CANDLE_COLUMNS, find_violations, raise_on_violations
from engine.errors import ConfigError, DataError, EngineError
from engine.paper.journal import BarRecord, Journal
from engine.paper.stream import BarStream
from engine.sim.run import SETTLEMENT_MS, align_funding, new_state, simulate
from engine.ssl.checkpoint import load_model
from engine.ssl.infer import window_bars
from engine.strategy.base import History
from engine.strategy.representations import (
    default_cache_dir,
    feature_representations,
    model_features,
    model_representations,
)
from engine.strategy.walkforward import DecisionState, check_windows, decide_bar, refit

DEFAULT_JOURNAL_DIR = Path("reports") / "paper"
#: Bars before the current one that components always see, for their own trailing windows.
FEATURE_CONTEXT = 1000
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


class ReplayClock:
    """A simulated clock that also sets a fake exchange's clock.

    ``speed`` is simulated seconds per real second; 0 jumps at once.
    """

    def __init__(self, exchange_clock: object, now_ms: int, speed: float = 0.0) -> None:
        self._fake, self._now, self.speed = exchange_clock, now_ms, speed
        self._fake.now_ms = now_ms

    def now_ms(self) -> int:
        """Return the simulated time."""
        return self._now

    def jump(self, ms: int) -> None:
        """Set the simulated time to ``ms`` at once."""
        self._now = ms
        self._fake.now_ms = ms

    def wait_until(self, ms: int, stop: threading.Event) -> None:
        """Advance the simulated time to ``ms``, waiting ``(ms - now) / speed`` real time."""
        if self.speed > 0 and ms > self._now:
            stop.wait((ms - self._now) / 1000 / self.speed)
        self._now = max(self._now, ms)
        self._fake.now_ms = self._now


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


def config_hash(config: StrategyConfig) -> str:
    """Return the SHA-256 of a resolved configuration."""
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()


def journal_path(journal_dir: Path, session: str) -> Path:
    """Return the journal file of a session."""
    return journal_dir / f"{session}.sqlite"


class _Series:
    # One asset's candles, all of them (48 bytes a bar), and its representations from row
    # `z_from` on only (the rows a refit or a transform can still read), as a History.
    def __init__(self, candles: pd.DataFrame, z: np.ndarray) -> None:
        n = len(candles)
        capacity = max(1024, 2 * n)
        self.columns = {c: np.empty(capacity, candles[c].dtype) for c in CANDLE_COLUMNS}
        for c in CANDLE_COLUMNS:
            self.columns[c][:n] = candles[c].to_numpy()
        self.z = np.empty((capacity, z.shape[1]), z.dtype)
        self.z[:n] = z
        self.z_from, self.n = 0, n

    def append(self, bar: dict[str, float]) -> None:
        if self.n == len(self.columns["timestamp"]):
            self.columns = {c: np.resize(v, 2 * len(v)) for c, v in self.columns.items()}
        if self.n - self.z_from == len(self.z):
            self.z = np.resize(self.z, (2 * len(self.z), self.z.shape[1]))
        for c in CANDLE_COLUMNS:
            self.columns[c][self.n] = bar[c]
        self.z[self.n - self.z_from] = np.nan
        self.n += 1

    def set_last_z(self, z: np.ndarray) -> None:
        self.z[self.n - 1 - self.z_from] = z

    def last_z(self) -> np.ndarray:
        return self.z[self.n - 1 - self.z_from]

    def forget(self, before: int) -> None:
        # Drop the representations of rows before `before`, once half the buffer is stale.
        if before - self.z_from > len(self.z) // 2:
            kept = self.n - before
            self.z[:kept] = self.z[before - self.z_from : self.n - self.z_from].copy()
            self.z_from = before

    def history(self, start: int) -> History:
        # Rows start .. n - 1 (start >= z_from); row r of the series is row r - start.
        candles = (self.columns[c][start : self.n] for c in CANDLE_COLUMNS)
        return History(*candles, z=self.z[start - self.z_from : self.n - self.z_from])

    def frame(self, start: int, stop: int) -> pd.DataFrame:
        return pd.DataFrame({c: self.columns[c][start:stop] for c in CANDLE_COLUMNS})


class PaperSession:
    """One paper session of a single-symbol strategy, new or resumed from its journal.

    Parameters
    ----------
    config : StrategyConfig
        The strategy.
    options : SessionOptions
        Name, folders and timing of the session.
    exchange : ccxt.Exchange
        A client from ``engine.data.feed.make_exchange`` (public endpoints only).
    clock : Clock
        The time: ``WallClock`` live, ``ReplayClock`` in a replay.
    store : CandleStore
        The candles the session warms up from.
    stream : ccxt.Exchange, optional
        A ccxt.pro client from ``make_exchange(..., streaming=True)``: its
        public kline stream tells when a bar has closed. The session owns it
        and closes it. Without it the session polls.
    """

    def __init__(
        self,
        config: StrategyConfig,
        options: SessionOptions,
        exchange: ccxt.Exchange,
        clock: Clock,
        store: CandleStore,
        stream: ccxt.Exchange | None = None,
    ) -> None:
        market = config.market
        if len(market.symbols) != 1:
            raise ConfigError(
                f"market.symbols: a paper session trades one symbol; got {market.symbols}"
            )
        if config.encoder is None and config.representation.kind != "features":
            raise ConfigError(
                f"representation.kind {config.representation.kind!r}: a paper session needs an "
                "encoder or the 'features' representation"
            )
        self.config, self.options, self.exchange, self.clock = config, options, exchange, clock
        self.key = SeriesKey(market.exchange, market.market, market.symbols[0], market.timeframe)
        self.interval = self.key.interval_ms
        self.pipeline = build_pipeline(config)
        self.sim_config, self.markets = sim_settings(config)
        self.journal = Journal(journal_path(options.journal_dir, options.session), options.session)
        candles = store.load(self.key, config.store.gap_policy, config.store.max_gap_bars)
        meta = self.journal.meta()
        warmup_until = int(meta["warmup_until"]) if meta else int(candles["timestamp"].iloc[-1])
        candles = candles[candles["timestamp"] <= warmup_until].reset_index(drop=True)
        first_ms = warmup_until + self.interval
        anchor_ms = int(meta["anchor_ms"]) if meta else (options.anchor_ms or first_ms)
        self.journal.start(
            {
                "config_sha256": config_hash(config),
                "strategy": config.name,
                "symbols": f'["{market.symbols[0]}"]',
                "timeframe": market.timeframe,
                "warmup_until": str(warmup_until),
                "anchor_ms": str(anchor_ms),
                "initial_capital": repr(config.initial_capital),
                "config": config.model_dump_json(),
            },
            options.force,
        )
        self._encoder = None
        if config.encoder is not None:
            self._encoder = load_model(options.models_dir / config.encoder)
        z, _ = compute_representation(
            config, candles, anchor_ms, options.models_dir, default_cache_dir()
        )
        self.series = _Series(candles, z)
        journaled = self.journal.table("bars")
        for row in journaled.itertuples(index=False):
            bar = {c: getattr(row, c) for c in CANDLE_COLUMNS[1:]} | {"timestamp": row.ts}
            self.series.append(bar)
            self.series.set_last_z(np.frombuffer(row.z, dtype=z.dtype))
        self.warmup_rows = len(candles)
        timestamps = self.series.columns["timestamp"][: self.series.n]
        self.anchor = min(int(np.searchsorted(timestamps, anchor_ms)), self.warmup_rows)
        wf = config.walk_forward
        check_windows(self.pipeline, self.anchor, wf.fit_bars, wf.refit_every, wf.embargo_bars)
        resumed = self.journal.resume()
        if resumed is None:
            self.last_ts = warmup_until
            self.account, self.assets = new_state(1, config.initial_capital)
            self.state = DecisionState()
        else:
            self.last_ts = resumed.last_ts
            self.account, self.assets, self.state = resumed.account, resumed.assets, resumed.state
        self._fitted_block: int | None = None
        self.bar_store = None if options.bar_store is None else CandleStore(options.bar_store)
        # The last bar known to be in the bar store; None until the first write.
        self._stored_until: int | None = None
        self.stream = None if stream is None else BarStream(stream, self.key, options.retry)

    def close(self) -> None:
        """Close the bar stream, if any, and the journal."""
        if self.stream is not None:
            self.stream.close()
            self._stream_events()
        self.journal.close()

    def _event(self, level: int, message: str) -> None:
        log.log(level, message)
        self.journal.log(self.clock.now_ms(), logging.getLevelName(level), message)

    def run(self, stop: threading.Event | None = None) -> int:
        """Process closed bars until ``stop`` is set or ``until_ms`` is reached.

        Returns
        -------
        int
            The number of bars processed.
        """
        stop = stop or threading.Event()
        options, processed, failures = self.options, 0, 0
        # Bars journaled but not stored when the last run ended (a crash) are stored first.
        self._store_bars()
        if self._fitted_block is None:
            # Fit before the first bar arrives rather than on its critical path.
            self._refit(self._window(self.series.n)[0])
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
            except (EngineError, ccxt.BaseError) as exc:
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
            if len(bars) > 1:
                self._event(
                    logging.INFO,
                    f"catching up {len(bars)} bars from {iso_utc(since)} to "
                    f"{iso_utc(int(bars['timestamp'].iloc[-1]))}",
                )
            for row, rate in zip(bars.to_dict("records"), rates, strict=True):
                if options.until_ms is not None and row["timestamp"] >= options.until_ms:
                    break
                self.process(row, float(rate), received)
                processed += 1
                if stop.is_set():
                    break
                self.prepare()
            self._store_bars()
        return processed

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
        # Append the journaled bars the bar store lacks, in one atomic write.
        if self.bar_store is None:
            return
        series = self.series
        stamps = series.columns["timestamp"][: series.n]
        first = self.warmup_rows
        if self._stored_until is not None:
            first = max(first, int(np.searchsorted(stamps, self._stored_until, side="right")))
        if first == series.n:
            return
        store = self.config.store
        # Flat bars are never stored; a store that tolerates gaps keeps them as they are.
        policy = "error" if store.gap_policy == "error" else "drop"
        frame = series.frame(first, series.n)
        try:
            self.bar_store.append(self.key, frame, policy, store.max_gap_bars)
        except (DataError, OSError) as exc:
            self._event(
                logging.WARNING,
                f"bars from {iso_utc(int(stamps[first]))} not stored in {self.bar_store.root} "
                f"({exc}); they are in the journal, and storing them is tried after the next bar",
            )
            return
        self._stored_until = int(stamps[-1])

    def _fetch(self, since: int) -> tuple[pd.DataFrame, np.ndarray, float]:
        # The closed bars from `since` on, contiguous, with their funding rates.
        now = min(self.clock.now_ms(), int(self.exchange.fetch_time()))
        frame = fetch_ohlcv(self.exchange, self.key, since, retry=self.options.retry, now_ms=now)
        received = time.perf_counter()
        stamps = frame["timestamp"].to_numpy()
        expected = since + self.interval * np.arange(len(stamps))
        contiguous = int(np.argmin(stamps == expected)) if (stamps != expected).any() else None
        if contiguous is not None:
            self._event(
                logging.WARNING,
                f"the exchange left out the bar at {iso_utc(int(expected[contiguous]))}; "
                "waiting for it before any later bar",
            )
            frame = frame.iloc[:contiguous]
        if frame.empty:
            raise DataError(f"the exchange has no closed bar from {iso_utc(since)} yet")
        raise_on_violations(
            find_violations(frame, CANDLE_COLUMNS, self.interval), "bars from the exchange"
        )
        return frame, self._funding(frame["timestamp"].to_numpy(), now), received

    def _funding(self, stamps: np.ndarray, now: int) -> np.ndarray:
        # Funding rate settling in each bar, as the backtest aligns it (0 without funding).
        config = self.config
        settles = (-stamps) % SETTLEMENT_MS < self.interval
        if not config.costs.funding or self.key.market != "linear" or not settles.any():
            return np.zeros(len(stamps))
        key = FundingKey(self.key.exchange, self.key.market, self.key.symbol)
        rates = fetch_funding(
            self.exchange,
            key,
            int(stamps[0]),
            int(stamps[-1]) + self.interval,
            retry=self.options.retry,
            now_ms=now,
        )
        if rates.empty:
            # Nothing settled yet or published for these bars: no funding, as in a backtest.
            return np.zeros(len(stamps))
        return align_funding(stamps, rates["timestamp"].to_numpy(), rates["rate"].to_numpy())

    def _represent(self) -> np.ndarray:
        # The representation of the newest bar, from closed bars only: the features of the
        # bars its encoding reads (the bar alone without an encoder), computed over enough
        # earlier bars to equal the whole series' bit for bit, then its row of its block.
        series, n = self.series, self.series.n
        if self._encoder is None:
            (extras, feature_set), first = (self.config.representation.extras, "raw"), n - 1
        else:
            extras, feature_set = model_features(self._encoder)
            window = window_bars(self._encoder.encoder)
            first = 0 if window is None else max(0, n - window)
        tail = series.frame(max(0, first - settle_bars(extras, feature_set)), n)
        if self._encoder is None:
            return feature_representations(tail, extras)[-1]
        return model_representations(self._encoder, tail, self.interval, len(tail) - 1)[0]

    def _window(self, t: int) -> tuple[int, int]:
        # The first bar of t's refit block, and the first bar components see at t.
        wf = self.config.walk_forward
        block = self.anchor + (t - self.anchor) // wf.refit_every * wf.refit_every
        first = block - wf.embargo_bars - wf.fit_bars
        return block, max(0, min(first, t - FEATURE_CONTEXT))

    def _refit(self, block: int) -> None:
        # Refit the components for the block starting at bar `block`, on bars before it.
        wf = self.config.walk_forward
        _, start = self._window(block)
        history = self.series.history(start)
        train = slice(
            block - wf.embargo_bars - wf.fit_bars - start, block - wf.embargo_bars - start
        )
        refit(self.pipeline, history.upto(block - start), train)
        self._fitted_block = block

    def prepare(self) -> None:
        """Refit now if the next bar starts a refit block, so the refit waits for no bar.

        The refit uses bars up to the last processed one only, as it would at
        the next bar.
        """
        following = self.series.n
        if self._window(following)[0] == following and self._fitted_block != following:
            self._refit(following)

    def process(self, bar: dict[str, float], funding_rate: float, received: float) -> None:
        """Decide on one closed bar, advance the book and journal both in one transaction.

        Components see the bars from the start of the current fitting window
        (or ``FEATURE_CONTEXT`` bars back, if earlier) to this bar, so memory
        stays flat however long the session runs.
        """
        series = self.series
        series.append(bar)
        series.set_last_z(self._represent())
        t = series.n - 1
        block, start = self._window(t)
        series.forget(start)
        history = series.history(start)
        if block != self._fitted_block:
            # On the first bar after a (re)start; otherwise `prepare` has refitted.
            self._refit(block)
        t -= start
        outputs: dict[str, float] = {}
        for component in self.pipeline.components().values():
            for name, values in component.transform(history, slice(t, t + 1)).items():
                outputs[name] = float(values[0])
        target, mode, offset, state = decide_bar(
            self.pipeline,
            self.state,
            outputs["score"],
            outputs.get("size", 1.0),
            outputs.get("risk_scale", 1.0),
            outputs.get("similarity", float("nan")),
        )
        decision = {
            "target": target,
            "risk_scale": outputs.get("risk_scale", 1.0),
            "mode": mode,
            "limit_offset": offset,
            "stop_loss": outputs.get("stop_loss", float("nan")),
            "take_profit": outputs.get("take_profit", float("nan")),
        }
        rows = slice(t, t + 1)
        result = simulate(
            history.timestamp[rows],
            history.open[rows],
            history.high[rows],
            history.low[rows],
            history.close[rows],
            np.array([target]),
            mode=np.array([mode]),
            risk=np.array([decision["risk_scale"]]),
            limit_offset=np.array([offset]),
            stop_loss=np.array([decision["stop_loss"]]),
            take_profit=np.array([decision["take_profit"]]),
            funding=np.array([funding_rate]),
            markets=self.markets,
            config=self.sim_config,
            state=(self.account, self.assets),
        )
        account = result.account[0]
        balance = {"equity": float(result.equity[0]), "cash": float(result.cash[0])}
        for name in ("funding", "maker_fee", "taker_fee", "slippage", "liquidation_fee"):
            balance[name] = float(account[name])
        ts = int(bar["timestamp"])
        record = BarRecord(
            bar={"ts": ts, **{c: float(bar[c]) for c in CANDLE_COLUMNS[1:]}},
            z=series.last_z(),
            funding_rate=funding_rate,
            received_ms=self.clock.now_ms(),
            latency_ms=(time.perf_counter() - received) * 1000,
            outputs=outputs,
            decision=decision,
            refit=t == block - start,
            state=state,
            fills=result.fills,
            rejects=result.rejects,
            balance=balance,
            account=result.account,
            assets=result.assets,
        )
        self.journal.record(record)
        self.account, self.assets, self.state, self.last_ts = (
            result.account,
            result.assets,
            state,
            ts,
        )
        log.info(
            "%s close %.2f: target %+.4f mode %d, %d fills, equity %.2f",
            iso_utc(ts),
            bar["close"],
            target,
            mode,
            len(result.fills),
            balance["equity"],
        )
