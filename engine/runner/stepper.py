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

import numpy as np
import pandas as pd

from engine.config import StrategyConfig
from engine.data.validate import CANDLE_COLUMNS
from engine.runner.assemble import (
    build_pipeline,
    build_portfolio,
    check_schedule,
    sim_settings,
    strategy_costs,
)
from engine.runner.decisions import Decision, DecisionState, decide_bar, refit, transform
from engine.runner.representation import Representation
from engine.sim.run import SimResult, new_state, simulate
from engine.strategy.base import FitContext, History

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
    refit block.
    """

    z: list[np.ndarray]
    outputs: list[dict[str, float]]
    decisions: list[Decision]
    states: list[DecisionState]
    weights: np.ndarray
    result: SimResult
    refit: bool


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
    """

    def __init__(
        self,
        config: StrategyConfig,
        bars: list[Bars],
        anchor: int,
        representations: list[Representation],
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

    @property
    def n(self) -> int:
        """Return the number of bars so far."""
        return self.bars[0].n

    def resume(self, account: np.ndarray, assets: np.ndarray, states: list[DecisionState]) -> None:
        """Continue from a journaled book and decision states."""
        self.account, self.assets, self.states = account, assets, states

    def window(self, t: int) -> tuple[int, int]:
        """Return the first bar of t's refit block, and the first bar components see at t."""
        block = self.schedule.block_start(t)
        return block, max(0, min(self.schedule.train(block).start, t - FEATURE_CONTEXT))

    def refit(self, block: int) -> None:
        """Refit components and portfolio for the block starting at ``block``, on bars before it.

        The portfolio sees the bar before the training rows too, for the
        first training row's return, as in a backtest.
        """
        _, start = self.window(block)
        train = self.schedule.train(block)
        rows = slice(train.start - start, train.stop - start)
        for bars, pipeline in zip(self.bars, self.pipelines, strict=True):
            refit(pipeline, bars.history(start).upto(block - start), rows, self.costs)
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
        for i, (history, pipeline) in enumerate(zip(histories, self.pipelines, strict=True)):
            values = transform(pipeline, history, rows)
            outputs.append({name: float(column[0]) for name, column in values.items()})
            decision, state = decide_bar(pipeline, self.states[i], outputs[-1], self.weights[i])
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
        return Step(z, outputs, decisions, states, self.weights, result, refit=t == block)

    def commit(self, step: Step) -> None:
        """Carry the book and decision states of ``step`` to the next bar."""
        self.account, self.assets = step.result.account, step.result.assets
        self.states = step.states
