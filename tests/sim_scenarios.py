"""Random books for the event loop's parity and property tests (hypothesis strategies)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from engine.sim import MarketSpec, Mode, SimConfig, simulate

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Scenario:
    """Candles, decisions, markets and settings of one simulated book."""

    timestamps: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    inputs: dict  # target, mode, risk, limit_offset, stop_loss, take_profit, funding
    markets: list[MarketSpec]
    config: SimConfig
    cash: float

    def run(self):
        """Return the kernel's result for this scenario."""
        return simulate(
            self.timestamps,
            self.open,
            self.high,
            self.low,
            self.close,
            markets=self.markets,
            config=self.config,
            cash=self.cash,
            **self.inputs,
        )

    def reference_config(self) -> dict:
        """Return the settings in the reference book's terms."""
        config = self.config
        return {
            "maker_fee": config.maker_fee,
            "taker_fee": config.taker_fee,
            "slippage": config.slippage_bps / 1e4,
            "liquidation_fee": config.liquidation_fee,
            "maintenance_margin": config.maintenance_margin,
            "max_leverage": config.max_leverage,
            "sizing": config.sizing,
            "spot": config.spot,
            "limit_ttl": config.limit_ttl,
        }

    def reference_markets(self) -> list[dict]:
        """Return the market rules in the reference book's terms."""
        return [
            {"qty_step": m.qty_step, "min_qty": m.min_qty, "min_notional": m.min_notional}
            for m in self.markets
        ]


def candles(rng: np.random.Generator, n_bars: int, n_assets: int, volatility: float):
    """Return open, high, low, close of a random walk with gaps between bars."""
    start = rng.uniform(0.5, 2000.0, n_assets)
    moves = rng.normal(0.0, volatility, (n_bars, n_assets))
    gaps = rng.normal(0.0, volatility / 2, (n_bars, n_assets)) * (
        rng.random((n_bars, n_assets)) < 0.3
    )
    close = start * np.exp(np.cumsum(moves + gaps, axis=0))
    open_ = np.vstack([start, close[:-1]]) * np.exp(gaps)
    wick = np.abs(rng.normal(0.0, volatility, (2, n_bars, n_assets)))
    high = np.maximum(open_, close) * (1.0 + wick[0])
    low = np.minimum(open_, close) * (1.0 - np.minimum(wick[1], 0.5))
    return open_, high, low, close


def sparsify(
    rng: np.random.Generator, inputs: dict, share: float = 0.15, wait: bool = False
) -> None:
    """Keep the decisions, stop distances and funding of about ``share`` of bars, NaN elsewhere.

    Most bars are then quiet (nothing decided, no stop, no funding), as in a
    real strategy, so the kernel's quiet-bar path meets every rule around it.
    With ``wait`` the bars without a decision keep their target and get
    ``Mode.WAIT`` instead of a NaN target: the strategy layer's encoding.
    """
    for name in ("target", "stop_loss", "take_profit", "funding"):
        values = inputs[name]
        if np.ndim(values) == 2:
            kept = rng.random(values.shape) < share
            if name == "target" and wait:
                inputs["mode"] = np.where(kept, inputs["mode"], int(Mode.WAIT)).astype(np.int8)
            else:
                inputs[name] = np.where(kept, values, np.nan)


@st.composite
def scenarios(draw, *, costs: bool = True, max_assets: int = 3, max_bars: int = 30) -> Scenario:
    """Draw a book: long and short, several assets, limits, stops, funding, rounding, rejects."""
    n_assets = draw(st.integers(1, max_assets))
    n_bars = draw(st.integers(2, max_bars))
    quiet = draw(st.sampled_from([None, "nan", "wait"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    volatility = draw(st.sampled_from([0.002, 0.02, 0.1, 0.3]))
    open_, high, low, close = candles(rng, n_bars, n_assets, volatility)
    shape = (n_bars, n_assets)
    spot = draw(st.booleans())
    sizing = "cash" if spot else draw(st.sampled_from(["margin", "cash"]))
    levels = np.array([np.nan, -3.0, -1.0, -0.5, 0.0, 0.25, 0.5, 1.0, 4.0])
    target = rng.choice(levels, shape, p=[0.3, 0.08, 0.1, 0.1, 0.1, 0.05, 0.1, 0.09, 0.08])
    inputs = {
        "target": target,
        "mode": rng.choice(np.array([0, 1, 2], dtype=np.int8), shape),
        "risk": rng.choice([1.0, 1.0, 0.5, 0.0, 0.8], shape),
        "limit_offset": rng.choice([0.0, 0.001, 0.01, 0.05], shape),
        "stop_loss": rng.choice([np.nan, np.nan, 0.005, 0.02, 0.1], shape),
        "take_profit": rng.choice([np.nan, np.nan, 0.005, 0.03, 0.2], shape),
        "funding": 0.0,
    }
    if not spot:
        settles = rng.random(shape) < 0.3
        inputs["funding"] = np.where(
            settles, rng.choice([-0.01, -0.0001, 0.0001, 0.003], shape), np.nan
        )
    if quiet is not None:
        sparsify(rng, inputs, wait=quiet == "wait")
    if costs:
        config = SimConfig(
            maker_fee=draw(st.sampled_from([0.0, 0.0002, 0.0003])),
            taker_fee=draw(st.sampled_from([0.0003, 0.00055, 0.01])),
            slippage_bps=draw(st.sampled_from([0.0, 1.0, 25.0])),
            liquidation_fee=draw(st.sampled_from([0.0, 0.005, 0.02])),
            maintenance_margin=draw(st.sampled_from([0.0, 0.005, 0.1, 0.4])),
            max_leverage=draw(st.sampled_from([0.5, 1.0, 3.0, 10.0])),
            sizing=sizing,
            spot=spot,
            limit_ttl=draw(st.integers(1, 3)),
        )
    else:
        config = SimConfig(
            maker_fee=0.0, taker_fee=0.0, liquidation_fee=0.0, sizing=sizing, spot=spot
        )
    markets = [
        MarketSpec(
            qty_step=float(rng.choice([0.0, 0.001, 0.1, 1.0])),
            min_qty=float(rng.choice([0.0, 0.0, 0.01, 2.0])),
            min_notional=float(rng.choice([0.0, 0.0, 5.0, 200.0])),
        )
        for _ in range(n_assets)
    ]
    return Scenario(
        timestamps=np.arange(n_bars, dtype=np.int64) * HOUR_MS,
        open=open_,
        high=high,
        low=low,
        close=close,
        inputs=inputs,
        markets=markets,
        config=config,
        cash=draw(st.sampled_from([100.0, 10_000.0, 1e6])),
    )


def example_scenario(
    seed: int = 0, n_bars: int = 60, n_assets: int = 3, sparse: bool = False
) -> Scenario:
    """Return a fixed book that exercises every rule, without hypothesis.

    ``sparse`` keeps decisions, stops and funding on a few bars only (``sparsify``).
    """
    rng = np.random.default_rng(seed)
    open_, high, low, close = candles(rng, n_bars, n_assets, 0.03)
    shape = (n_bars, n_assets)
    levels = np.array([np.nan, -2.0, -1.0, 0.0, 0.5, 1.0, 3.0])
    inputs = {
        "target": rng.choice(levels, shape),
        "mode": rng.choice(np.array([0, 1, 2], dtype=np.int8), shape),
        "risk": rng.choice([1.0, 0.5], shape),
        "limit_offset": rng.choice([0.0, 0.005, 0.02], shape),
        "stop_loss": rng.choice([np.nan, 0.01, 0.05], shape),
        "take_profit": rng.choice([np.nan, 0.02, 0.1], shape),
        "funding": np.where(rng.random(shape) < 0.3, rng.normal(0.0, 0.001, shape), np.nan),
    }
    if sparse:
        sparsify(rng, inputs)
    config = SimConfig(slippage_bps=5.0, maintenance_margin=0.2, max_leverage=3.0, limit_ttl=2)
    markets = [MarketSpec(qty_step=0.001, min_qty=0.001, min_notional=10.0)] * n_assets
    return Scenario(
        timestamps=np.arange(n_bars, dtype=np.int64) * HOUR_MS,
        open=open_,
        high=high,
        low=low,
        close=close,
        inputs=inputs,
        markets=markets,
        config=config,
        cash=10_000.0,
    )
