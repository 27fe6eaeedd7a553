"""The runner's per-bar path: one closed bar through representation, components, decision and book.

A paper session hands every newly closed bar (one per asset) to a
``BarStepper``, which

1. computes each asset's representation of the bar from closed bars only;
2. refits the components, and the portfolio of a multi-asset strategy, when
   the bar starts a block of the strategy's ``RefitSchedule`` (the schedule a
   backtest walks), with ``refit``;
3. transforms the bar with each asset's components (``transform``) and turns
   the outputs, scaled by the asset's portfolio weight, into the asset's
   decision with ``decide_bar``, the mapping a backtest loops over;
4. advances the book of all assets by that one bar with
   ``engine.sim.run.simulate``, the backtest's event loop, with the
   backtest's settings (``sim_settings``).

``step`` returns all of it without changing the stepper; ``commit`` makes it
the state the next bar starts from, once the caller has journaled it.

With a ``drift`` section (one asset) the bar is also observed by the drift
monitor, whose policy may flatten it or end its block
(``engine.runner.drift``); blocks then follow each other bar by bar rather
than on the fixed grid, and a resumed session continues from the journaled
``DriftResume``. With ``encoder_refit`` the encoder is re-tuned before the
blocks that need it, on the bars before them, and the kept representations
re-encoded (``engine.runner.encoders``).

What cannot be bit-identical to a backtest is stated here, not hidden.
Components transform one bar at a time here but a whole refit block at once in
a backtest, and BLAS sums a matrix-vector product in an order that depends on
the number of rows, so outputs such as the score can differ in the last bit
(about 1e-16 relative); so can a realised volatility, summed from the start of
the fitting window rather than from the first bar. Fills, fees, funding and
equity are identical whenever no threshold or quantity step lies within that
tolerance of a value, which the parity tests check on real candles, with the
features representation, the shipped TS2Vec encoder and the cluster portfolio.

The representation itself is bit-identical: the bar's representation is
computed from a tail of the bars up to it that gives the backtest's bits
(``engine.runner.representation``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from engine.config import StrategyConfig
from engine.data.validate import CANDLE_COLUMNS
from engine.errors import EngineError
from engine.runner.assemble import (
    build_pipeline,
    build_portfolio,
    check_schedule,
    drift_monitor,
    sim_settings,
    strategy_costs,
)
from engine.runner.decisions import Decision, DecisionState, decide_bar, refit, transform
from engine.runner.drift import Reading, flat_after
from engine.runner.encoders import EncoderVersion, encoder_walk, timed_tune, tuned_representation
from engine.runner.representation import Representation
from engine.sim.run import SimResult, new_state, simulate
from engine.strategy.base import FitContext, History
from engine.strategy.representations import model_representations

if TYPE_CHECKING:
    from engine.ssl.folder import PretrainedModel

#: Bars before the current one that components always see, for their own trailing windows.
FEATURE_CONTEXT = 1000
OHLC = CANDLE_COLUMNS[1:5]


class Bars:
    """One asset's candles, all of them (48 bytes a bar), and its recent representations.

    Representations are kept from row ``z_from`` on only: the rows a refit or
    a transform can still read.
    """

    def __init__(self, candles: pd.DataFrame, z: np.ndarray) -> None:
        n = len(candles)
        capacity = max(1024, 2 * n)
        self.columns = {c: np.empty(capacity, candles[c].dtype) for c in CANDLE_COLUMNS}
        for c in CANDLE_COLUMNS:
            self.columns[c][:n] = candles[c].to_numpy()
        self.z = np.empty((capacity, z.shape[1]), z.dtype)
        self.z[:n] = z
        self.z_from, self.n = 0, n

    def append(self, bar: dict[str, float], z: np.ndarray | None = None) -> None:
        """Append a closed bar, with its representation when it is known."""
        if self.n == len(self.columns["timestamp"]):
            self.columns = {c: np.resize(v, 2 * len(v)) for c, v in self.columns.items()}
        if self.n - self.z_from == len(self.z):
            self.z = np.resize(self.z, (2 * len(self.z), self.z.shape[1]))
        for c in CANDLE_COLUMNS:
            self.columns[c][self.n] = bar[c]
        self.z[self.n - self.z_from] = np.nan if z is None else z
        self.n += 1

    def set_z(self, z: np.ndarray) -> None:
        """Replace the kept representations (rows ``z_from .. n - 1``), e.g. by a new encoder's."""
        self.z[: self.n - self.z_from] = z

    def set_last_z(self, z: np.ndarray) -> None:
        """Set the representation of the newest bar."""
        self.z[self.n - 1 - self.z_from] = z

    def last_z(self) -> np.ndarray:
        """Return the representation of the newest bar."""
        return self.z[self.n - 1 - self.z_from]

    def timestamps(self) -> np.ndarray:
        """Return the open times of all bars."""
        return self.columns["timestamp"][: self.n]

    def forget(self, before: int) -> None:
        """Drop the representations of rows before ``before``, once half the buffer is stale."""
        if before - self.z_from > len(self.z) // 2:
            kept = self.n - before
            self.z[:kept] = self.z[before - self.z_from : self.n - self.z_from].copy()
            self.z_from = before

    def history(self, start: int) -> History:
        """Return rows ``start .. n - 1`` (``start >= z_from``); row r is row ``r - start``."""
        candles = (self.columns[c][start : self.n] for c in CANDLE_COLUMNS)
        return History(*candles, z=self.z[start - self.z_from : self.n - self.z_from])

    def frame(self, start: int, stop: int) -> pd.DataFrame:
        """Return rows ``start .. stop - 1`` as a candle frame."""
        return pd.DataFrame({c: self.columns[c][start:stop] for c in CANDLE_COLUMNS})


@dataclass(frozen=True)
class Step:
    """What one bar produced, per asset and for the book.

    ``z``, ``outputs``, ``decisions`` and ``states`` hold one entry per asset
    (its representation, component outputs, decision and next decision
    state); ``weights`` the portfolio weights the targets were scaled by;
    ``result`` the book after the bar; ``refit`` whether the bar starts a
    refit block; ``drift`` the bar's drift reading (None when it was not
    evaluated), ``flat`` whether the drift policy flattens from this bar on,
    and ``encoder`` the encoder version tuned for the block this bar starts.
    """

    z: list[np.ndarray]
    outputs: list[dict[str, float]]
    decisions: list[Decision]
    states: list[DecisionState]
    weights: np.ndarray
    result: SimResult
    refit: bool
    drift: Reading | None = None
    flat: bool = False
    encoder: EncoderVersion | None = None


@dataclass(frozen=True)
class DriftResume:
    """The drift policy's state a resumed session continues from.

    Attributes
    ----------
    block : int
        The row of the current refit block's first bar.
    ended_after : int, optional
        The row after which the drift policy ended the block, if it did.
    flat : bool
        Whether ``flatten`` holds.
    scores : list of float
        The signal's scores of the block's bars so far.
    """

    block: int
    ended_after: int | None
    flat: bool
    scores: list[float]


class BarStepper:
    """A strategy's assets advanced bar by bar, on the backtest's schedule, mapping and kernel.

    Every asset has its own components (refitted together on the schedule);
    a portfolio component, if any, is refitted at the same bars on all assets'
    histories, and its weights scale the assets' targets until the next
    refit (equal weights without one). One event loop holds the book of all
    assets.

    Parameters
    ----------
    config : StrategyConfig
        The strategy.
    bars : list of Bars
        Each asset's bars so far, on common timestamps, with their
        representations, in the order of ``market.symbols``.
    anchor : int
        The row of the refit schedule's first block.
    representations : list of Representation
        Each asset's representation, fitted on its bars.
    model : PretrainedModel, optional
        The pretrained encoder an ``encoder_refit`` re-tunes (one asset).
    cache_dir : Path, optional
        Where encoders tuned walk-forward are cached.
    """

    def __init__(
        self,
        config: StrategyConfig,
        bars: list[Bars],
        anchor: int,
        representations: list[Representation],
        model: PretrainedModel | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.config, self.bars, self.representations = config, bars, representations
        self.pipelines = [build_pipeline(config) for _ in bars]
        self.portfolio = build_portfolio(config)
        self.weights = np.full(len(bars), 1.0 / len(bars))
        self.schedule = check_schedule(config, anchor)
        self.costs = strategy_costs(config)
        self.sim_config, self.markets = sim_settings(config, self.pipelines[0])
        self.account, self.assets = new_state(len(bars), config.initial_capital)
        self.states = [DecisionState() for _ in bars]
        self.fitted_block: int | None = None
        self.monitor = drift_monitor(config, self.pipelines[0], bars[0].z.shape[1])
        # The drift policy's state: the current block, the bar the policy ended it after, the
        # flatten flag and the block's scores so far.
        first = self.schedule.block_start(max(anchor, bars[0].n))
        self.drift = DriftResume(first, None, False, [])
        self.walk = encoder_walk(config, model, cache_dir)
        # The row of the last encoder refit (the pretrained encoder counts as tuned at the
        # anchor) and the version tuned for a block that has not started yet.
        self.tuned_at, self.tuned = anchor, None

    @property
    def n(self) -> int:
        """Return the number of bars so far."""
        return self.bars[0].n

    def resume(self, account: np.ndarray, assets: np.ndarray, states: list[DecisionState]) -> None:
        """Continue from a journaled book and decision states."""
        self.account, self.assets, self.states = account, assets, states

    def resume_drift(self, drift: DriftResume) -> None:
        """Continue the drift policy from a journaled state."""
        self.drift = drift

    def resume_encoder(self, version: EncoderVersion) -> None:
        """Continue with the journaled encoder version: tune (or load) it again and check it.

        Raises
        ------
        EngineError
            If tuning on the same bars does not give the journaled version.
        """
        again = self._tune(version.bar)
        if again.version != version.version:
            raise EngineError(
                f"the encoder tuned before bar {version.bar} is version {again.version}; the "
                f"journal says {version.version}: the bars or the models changed"
            )
        self.tuned = None

    def will_tune(self, block: int) -> bool:
        """Return whether refitting for the block starting at row ``block`` re-tunes the encoder."""
        if self.walk is None or block == self.tuned_at:
            return False
        ended = self.drift.ended_after
        retrain = self.config.drift is not None and self.config.drift.policy == "retrain_encoder"
        return self.walk.due(block, self.tuned_at, retrain and ended == block - 1)

    def _tune(self, block: int) -> EncoderVersion:
        # Tune the encoder on the bars before `block` and re-encode the kept bars with it.
        bars = self.bars[0]
        frame = bars.frame(0, bars.n)
        model, z, version = timed_tune(
            self.walk,
            frame,
            block,
            lambda model: model_representations(model, frame, self.walk.interval, bars.z_from),
        )
        bars.set_z(z)
        self.representations[0] = tuned_representation(model, self.walk.interval)
        self.tuned_at, self.tuned = block, version
        return version

    def block_start(self, t: int) -> int:
        """Return the first bar of the refit block bar ``t`` is in.

        Without a drift monitor, that of the schedule; with one, blocks follow
        each other as ``RefitSchedule.next_block`` says, bar by bar.
        """
        if self.monitor is None:
            return self.schedule.block_start(t)
        following = self.schedule.next_block(self.drift.block, self.drift.ended_after)
        return following if t >= following else self.drift.block

    def window(self, t: int) -> tuple[int, int]:
        """Return the first bar of t's refit block, and the first bar components see at t."""
        block = self.block_start(t)
        return block, max(0, min(self.schedule.train(block).start, t - FEATURE_CONTEXT))

    def refit(self, block: int) -> None:
        """Refit components and portfolio for the block starting at ``block``, on bars before it.

        The portfolio sees the bar before the training rows too, for the
        first training row's return, as in a backtest. The encoder is re-tuned
        first when ``will_tune`` says so.
        """
        if self.will_tune(block):
            self._tune(block)
        _, start = self.window(block)
        train = self.schedule.train(block)
        rows = slice(train.start - start, train.stop - start)
        for bars, pipeline in zip(self.bars, self.pipelines, strict=True):
            in_sample = refit(pipeline, bars.history(start).upto(block - start), rows, self.costs)
        if self.monitor is not None:
            self.monitor.fit(self.bars[0].history(start).upto(block - start), rows, in_sample)
            if block != self.drift.block:
                self.drift = DriftResume(block, None, False, [])
        if self.portfolio is not None:
            first = max(0, train.start - 1)
            rows = slice(train.start - first, train.stop - first)
            pasts = [bars.history(first).upto(block - first) for bars in self.bars]
            self.portfolio.fit([FitContext(past, rows, self.costs) for past in pasts])
            self.weights = self.portfolio.weights()
        self.fitted_block = block

    def prepare(self) -> None:
        """Refit now if the next bar starts a refit block, so the refit waits for no bar.

        The refit uses bars up to the last one only, as it would at the next bar.
        """
        following = self.n
        if self.window(following)[0] == following and self.fitted_block != following:
            self.refit(following)

    def represent(self, asset: int) -> np.ndarray:
        """Return the representation of an asset's newest bar, from closed bars only."""
        bars, representation = self.bars[asset], self.representations[asset]
        tail = representation.tail_bars()
        first = 0 if tail is None else max(0, bars.n - tail)
        return representation.newest(bars.frame(first, bars.n))

    def step(self, bars: list[dict[str, float]], funding: list[float]) -> Step:
        """Append each asset's closed bar and return the decisions and the book after them.

        ``bars`` and ``funding`` hold one bar (all opening at one time) and one
        funding rate per asset. Components see the bars from the start of the
        current fitting window (or ``FEATURE_CONTEXT`` bars back, if earlier)
        to this bar, so memory stays flat however long the stepper runs. The
        book and the decision states change only with ``commit``.
        """
        for i, bar in enumerate(bars):
            self.bars[i].append(bar)
            self.bars[i].set_last_z(self.represent(i))
        t = self.n - 1
        block, start = self.window(t)
        for asset in self.bars:
            # The portfolio's refit reads one bar before the training rows.
            asset.forget(max(0, start - 1))
        if block != self.fitted_block:
            # On the first bar after a (re)start; otherwise `prepare` has refitted.
            self.refit(block)
        rows = slice(t - start, t - start + 1)
        histories = [asset.history(start) for asset in self.bars]
        outputs, decisions, states = [], [], []
        reading, flat = None, False
        for i, (history, pipeline) in enumerate(zip(histories, self.pipelines, strict=True)):
            values = transform(pipeline, history, rows)
            outputs.append({name: float(column[0]) for name, column in values.items()})
            weight = self.weights[i]
            if self.monitor is not None:
                scores = np.array([*self.drift.scores, outputs[-1]["score"]])
                reading = self.monitor.observe(history, t - start, block - start, scores)
                flat = flat_after(self.drift.flat, reading)
                weight = weight * self.monitor.scale(flat)
            decision, state = decide_bar(pipeline, self.states[i], outputs[-1], weight)
            decisions.append(decision)
            states.append(state)

        def column(values) -> np.ndarray:
            return np.array([list(values)])

        result = simulate(
            histories[0].timestamp[rows],
            *(column(getattr(h, c)[rows][0] for h in histories) for c in OHLC),
            column(d.target for d in decisions),
            mode=column(d.mode for d in decisions),
            risk=column(d.risk_scale for d in decisions),
            limit_offset=column(d.limit_offset for d in decisions),
            stop_loss=column(d.stop_loss for d in decisions),
            take_profit=column(d.take_profit for d in decisions),
            funding=column(funding),
            markets=self.markets,
            config=self.sim_config,
            state=(self.account, self.assets),
        )
        z = [asset.last_z() for asset in self.bars]
        tuned = self.tuned if t == block and self.tuned is not None else None
        return Step(
            z, outputs, decisions, states, self.weights, result, t == block, reading, flat, tuned
        )

    def commit(self, step: Step) -> None:
        """Carry the book, decision states and drift policy's state of ``step`` to the next bar."""
        self.account, self.assets = step.result.account, step.result.assets
        self.states = step.states
        if step.encoder is not None:
            self.tuned = None
        if self.monitor is not None:
            ended = self.n - 1 if self.monitor.ends_block(step.drift) else None
            scores = [*self.drift.scores, step.outputs[0]["score"]]
            self.drift = DriftResume(self.drift.block, ended, step.flat, scores)
