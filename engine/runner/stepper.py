"""The runner's per-bar path: one closed bar through representation, components, decision and book.

A paper session hands every newly closed bar to a ``BarStepper``, which

1. computes the bar's representation from closed bars only;
2. refits the components when the bar starts a block of the strategy's
   ``RefitSchedule`` (the schedule a backtest walks), with ``refit``;
3. transforms the bar with the components (``transform``) and turns the
   outputs into the bar's decision with ``decide_bar``, the mapping a
   backtest loops over;
4. advances the book by that one bar with ``engine.sim.run.simulate``, the
   backtest's event loop, with the backtest's settings (``sim_settings``).

``step`` returns all of it without changing the stepper; ``commit`` makes it
the state the next bar starts from, once the caller has journaled it.

What cannot be bit-identical to a backtest is stated here, not hidden.
Components transform one bar at a time here but a whole refit block at once in
a backtest, and BLAS sums a matrix-vector product in an order that depends on
the number of rows, so outputs such as the score can differ in the last bit
(about 1e-16 relative); so can a realised volatility, summed from the start of
the fitting window rather than from the first bar. Fills, fees, funding and
equity are identical whenever no threshold or quantity step lies within that
tolerance of a value, which the parity tests check on real candles, with the
features representation and with the shipped TS2Vec encoder.

The representation itself is bit-identical. A new bar's features are computed
over a tail of the history that starts ``settle_bars`` before the first bar
they are needed for, after which features do not depend on where a series
starts (``engine.data.features``). An encoder then encodes the bar's block
window with the bars after it left as zeros, one forward pass of the same
shape as the backtest's pass over that block, on one thread, so the bar's row
equals the backtest's bit for bit (``engine.ssl.infer``). An encoder with an
unbounded receptive field would be the exception: it is run over the whole
history, whose length differs from the backtest's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.config import StrategyConfig
from engine.data.features import settle_bars
from engine.data.symbols import timeframe_ms
from engine.data.validate import CANDLE_COLUMNS
from engine.runner.assemble import build_pipeline, check_schedule, sim_settings, strategy_costs
from engine.runner.decisions import Decision, DecisionState, decide_bar, refit, transform
from engine.sim.run import SimResult, new_state, simulate
from engine.ssl.checkpoint import PretrainedModel
from engine.ssl.infer import window_bars
from engine.strategy.base import History
from engine.strategy.representations import (
    feature_representations,
    model_features,
    model_representations,
)

#: Bars before the current one that components always see, for their own trailing windows.
FEATURE_CONTEXT = 1000


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
    """What one bar produced: its representation, outputs, decision, next state and book."""

    z: np.ndarray
    outputs: dict[str, float]
    decision: Decision
    state: DecisionState
    result: SimResult
    refit: bool


class BarStepper:
    """One asset's strategy advanced bar by bar, on the backtest's schedule, mapping and kernel.

    Parameters
    ----------
    config : StrategyConfig
        The strategy (a single symbol).
    bars : Bars
        The asset's bars so far, with their representations.
    anchor : int
        The row of the refit schedule's first block.
    encoder : PretrainedModel, optional
        The strategy's encoder; None for the features representation.
    """

    def __init__(
        self,
        config: StrategyConfig,
        bars: Bars,
        anchor: int,
        encoder: PretrainedModel | None,
    ) -> None:
        self.config, self.bars, self.encoder = config, bars, encoder
        self.interval = timeframe_ms(config.market.timeframe)
        self.pipeline = build_pipeline(config)
        self.schedule = check_schedule(config, anchor)
        self.costs = strategy_costs(config)
        self.sim_config, self.markets = sim_settings(config, self.pipeline)
        self.account, self.assets = new_state(1, config.initial_capital)
        self.state = DecisionState()
        self.fitted_block: int | None = None

    def resume(self, account: np.ndarray, assets: np.ndarray, state: DecisionState) -> None:
        """Continue from a journaled book and decision state."""
        self.account, self.assets, self.state = account, assets, state

    def window(self, t: int) -> tuple[int, int]:
        """Return the first bar of t's refit block, and the first bar components see at t."""
        block = self.schedule.block_start(t)
        return block, max(0, min(self.schedule.train(block).start, t - FEATURE_CONTEXT))

    def refit(self, block: int) -> None:
        """Refit the components for the block starting at bar ``block``, on bars before it."""
        _, start = self.window(block)
        train = self.schedule.train(block)
        past = self.bars.history(start).upto(block - start)
        refit(self.pipeline, past, slice(train.start - start, train.stop - start), self.costs)
        self.fitted_block = block

    def prepare(self) -> None:
        """Refit now if the next bar starts a refit block, so the refit waits for no bar.

        The refit uses bars up to the last one only, as it would at the next bar.
        """
        following = self.bars.n
        if self.window(following)[0] == following and self.fitted_block != following:
            self.refit(following)

    def represent(self) -> np.ndarray:
        """Return the representation of the newest bar, from closed bars only.

        The features of the bars its encoding reads (the bar alone without an
        encoder) are computed over enough earlier bars to equal the whole
        series' bit for bit; the encoder then encodes the bar's block.
        """
        bars, n = self.bars, self.bars.n
        if self.encoder is None:
            (extras, feature_set), first = (self.config.representation.extras, "raw"), n - 1
        else:
            extras, feature_set = model_features(self.encoder)
            window = window_bars(self.encoder.encoder)
            first = 0 if window is None else max(0, n - window)
        tail = bars.frame(max(0, first - settle_bars(extras, feature_set)), n)
        if self.encoder is None:
            return feature_representations(tail, extras)[-1]
        return model_representations(self.encoder, tail, self.interval, len(tail) - 1)[0]

    def step(self, bar: dict[str, float], funding_rate: float) -> Step:
        """Append a closed bar and return its decision and the book after it.

        Components see the bars from the start of the current fitting window
        (or ``FEATURE_CONTEXT`` bars back, if earlier) to this bar, so memory
        stays flat however long the stepper runs. The book and the decision
        state change only with ``commit``.
        """
        bars = self.bars
        bars.append(bar)
        bars.set_last_z(self.represent())
        t = bars.n - 1
        block, start = self.window(t)
        bars.forget(start)
        if block != self.fitted_block:
            # On the first bar after a (re)start; otherwise `prepare` has refitted.
            self.refit(block)
        history = bars.history(start)
        rows = slice(t - start, t - start + 1)
        outputs = {
            name: float(values[0])
            for name, values in transform(self.pipeline, history, rows).items()
        }
        decision, state = decide_bar(self.pipeline, self.state, outputs)
        result = simulate(
            history.timestamp[rows],
            history.open[rows],
            history.high[rows],
            history.low[rows],
            history.close[rows],
            np.array([decision.target]),
            mode=np.array([decision.mode]),
            risk=np.array([decision.risk_scale]),
            limit_offset=np.array([decision.limit_offset]),
            stop_loss=np.array([decision.stop_loss]),
            take_profit=np.array([decision.take_profit]),
            funding=np.array([funding_rate]),
            markets=self.markets,
            config=self.sim_config,
            state=(self.account, self.assets),
        )
        return Step(bars.last_z(), outputs, decision, state, result, refit=t == block)

    def commit(self, step: Step) -> None:
        """Carry the book and decision state of ``step`` to the next bar."""
        self.account, self.assets, self.state = step.result.account, step.result.assets, step.state
