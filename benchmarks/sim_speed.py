"""Time the event loop against vectorbt's ``Portfolio.from_orders`` on the same workload.

Workload A: 1,000,000 hourly bars of one asset (a random walk), a target in
{-1, 0, +1} that changes on about 2% of bars, market orders at the next open,
fees 0.03%, cash sizing so that vectorbt can express it. Both engines run it 5
times after a warm-up; the two must agree on every bar's equity and every fill.

Workload B: 10 assets, 100,000 bars, limit orders at 0.1% from the close,
stops, funding every 8 hours, margin sizing (vectorbt cannot express it).

Run from the repository root::

    python benchmarks/sim_speed.py

The last line is ``speedup_vs_vectorbt: X.XX`` (vectorbt median / kernel median);
the line before it gives the same ratio for ``simulate``, the kernel with its
input validation, which is what a caller pays.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

import numpy as np

from engine.sim import MarketSpec, Mode, SimConfig, simulate
from engine.sim.nb import run_nb
from engine.sim.run import market_records, new_state

HOUR_MS = 3_600_000
REPEATS = 5  # timed runs of each engine, after one warm-up


def random_walk(n_bars: int, n_assets: int, seed: int) -> dict[str, np.ndarray]:
    """Return hourly OHLC candles of a geometric random walk, shape (T, N)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.005, (n_bars, n_assets)), axis=0))
    open_ = np.vstack([np.full((1, n_assets), 100.0), close[:-1]])
    wick = np.abs(rng.normal(0.0, 0.002, (2, n_bars, n_assets)))
    return {
        "timestamps": np.arange(n_bars, dtype=np.int64) * HOUR_MS,
        "open": open_,
        "high": np.maximum(open_, close) * (1.0 + wick[0]),
        "low": np.minimum(open_, close) * (1.0 - wick[1]),
        "close": close,
    }


def sparse_target(n_bars: int, seed: int) -> np.ndarray:
    """Return a target in {-1, 0, 1} set on about 2% of bars, NaN (hold) elsewhere."""
    rng = np.random.default_rng(seed)
    changes = rng.random(n_bars) < 0.02
    return np.where(changes, rng.integers(-1, 2, n_bars).astype(np.float64), np.nan)


def median_seconds(**calls) -> dict[str, tuple[float, object]]:
    """Return each call's median wall time over ``REPEATS`` runs after a warm-up, and a result.

    The calls take turns, so that a load from other work on the machine falls
    on all of them alike rather than on whichever happened to run during it.
    Each call's previous result is freed before it runs again, as in a loop
    over runs, so every engine reuses its memory instead of faulting in fresh
    pages for its outputs (which costs the kernel about as much as its loop).
    """
    results = {name: call() for name, call in calls.items()}
    times = {name: [] for name in calls}
    for _ in range(REPEATS):
        for name, call in calls.items():
            results[name] = None  # free the last result first, as a loop over runs would
            start = time.perf_counter()
            results[name] = call()
            times[name].append(time.perf_counter() - start)
    return {name: (float(np.median(times[name])), results[name]) for name in calls}


def peak_memory_bytes(arrays: dict[str, np.ndarray], config: SimConfig, markets: MarketSpec) -> int:
    """Return how far one ``simulate`` call lifts peak memory above its loaded inputs.

    The inputs go to a fresh process through .npy files; the peak resident set
    is reset just before the call (Linux ``clear_refs``) and read just after.
    The figure includes the outputs the call returns.
    """
    code = (
        "import sys, numpy as np\n"
        "from engine.sim import MarketSpec, SimConfig, simulate\n"
        "def kib(key):\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith(key):\n"
        "            return int(line.split()[1])\n"
        "names = ('timestamps', 'open', 'high', 'low', 'close', 'target')\n"
        "a = [np.load(f'{sys.argv[1]}/{name}.npy') for name in names]\n"
        f"config, markets = {config!r}, {markets!r}\n"
        "simulate(*(x[:10] for x in a), config=config, markets=markets)\n"
        "open('/proc/self/clear_refs', 'w').write('5')  # peak RSS := current RSS\n"
        "before = kib('VmRSS:')\n"
        "result = simulate(*a, config=config, markets=markets)\n"
        "print((kib('VmHWM:') - before) * 1024)\n"
    )
    with tempfile.TemporaryDirectory() as folder:
        for name, array in arrays.items():
            np.save(f"{folder}/{name}.npy", array)
        output = subprocess.run(
            [sys.executable, "-c", code, folder], capture_output=True, text=True, check=True
        )
    return int(output.stdout.strip())


def first_call_seconds() -> float:
    """Return the time of a first kernel call in a fresh process with a warm cache."""
    code = (
        "import time, numpy as np\n"
        "start = time.perf_counter()\n"
        "from engine.sim import simulate\n"
        "simulate(np.arange(3), np.ones(3), np.ones(3), np.ones(3), np.ones(3), 0.5)\n"
        "print(time.perf_counter() - start)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return float(output.stdout.strip())


def workload_a() -> tuple[float, float]:
    """Run workload A through the kernel and vectorbt; print figures.

    Returns the speedups of the kernel and of ``simulate`` over vectorbt.
    """
    import vectorbt as vbt

    n_bars = 1_000_000
    candles = random_walk(n_bars, 1, seed=1)
    target = sparse_target(n_bars, seed=2)
    config = SimConfig(sizing="cash", maintenance_margin=0.0)
    inputs = [candles[name] for name in ("open", "high", "low", "close")]
    flat = np.zeros((1, 1))
    per_bar = {
        "funding": flat,
        "target": target.reshape(-1, 1),
        "mode": np.zeros((1, 1), np.int8),
        "risk": np.ones((1, 1)),
        "offset": flat,
        "stop_loss": np.full((1, 1), np.nan),
        "take_profit": np.full((1, 1), np.nan),
    }
    records = config.to_record()
    markets = MarketSpec(min_qty=1e-8)  # vectorbt skips orders below 1e-8 units

    def kernel():
        account, assets = new_state(1, 10_000.0)
        outputs = (np.empty(n_bars), np.empty(n_bars), np.empty(n_bars), np.empty((n_bars, 1)))
        fills, _ = run_nb(
            account,
            assets,
            records,
            market_records(markets, 1),
            *(array.reshape(-1, 1) for array in inputs),
            *per_bar.values(),
            *outputs,
        )
        return outputs, fills

    size = np.concatenate([[np.nan], target[:-1]])

    def vectorbt_run():
        return vbt.Portfolio.from_orders(
            candles["close"][:, 0],
            size=size,
            size_type="targetpercent",
            price=candles["open"][:, 0],
            fees=0.0003,
            init_cash=10_000.0,
            freq="1h",
        )

    timings = median_seconds(
        kernel=kernel,
        wrapper=lambda: simulate(
            candles["timestamps"], *inputs, target, config=config, markets=markets
        ),
        vectorbt=vectorbt_run,
    )
    kernel_s = timings["kernel"][0]
    wrapper_s, result = timings["wrapper"]
    vbt_s, portfolio = timings["vectorbt"]
    equity = portfolio.value().to_numpy()
    orders = portfolio.orders.values
    np.testing.assert_allclose(result.equity, equity, rtol=1e-9)
    np.testing.assert_allclose(result.fills["quantity"], orders["size"], rtol=1e-9)
    np.testing.assert_allclose(result.fills["price"], orders["price"], rtol=1e-9)
    np.testing.assert_allclose(result.fills["fee"], orders["fees"], rtol=1e-9)
    print(
        f"workload A: {n_bars:,} bars, 1 asset, {result.fills.size:,} fills; equity and fills agree"
    )
    print(f"  kernel (run_nb):     {kernel_s:.4f} s median, {n_bars / kernel_s:,.0f} bars/s")
    print(f"  wrapper (simulate):  {wrapper_s:.4f} s median, {n_bars / wrapper_s:,.0f} bars/s")
    print(f"  vectorbt from_orders:{vbt_s:.4f} s median, {n_bars / vbt_s:,.0f} bars/s")
    arrays = dict(
        zip(("timestamps", "open", "high", "low", "close"), candles.values(), strict=True)
    )
    arrays["target"] = target
    input_bytes = sum(array.nbytes for array in arrays.values())
    peak = peak_memory_bytes(arrays, config, markets)
    print(
        f"  memory: inputs {input_bytes / 1e6:.1f} MB; one simulate call lifts peak RSS by "
        f"{peak / 1e6:.1f} MB ({peak / input_bytes:.2f}x inputs)"
    )
    return vbt_s / kernel_s, vbt_s / wrapper_s


def workload_b() -> None:
    """Run workload B (10 assets, limits, stops, funding) and print its figures."""
    n_bars, n_assets = 100_000, 10
    candles = random_walk(n_bars, n_assets, seed=3)
    rng = np.random.default_rng(4)
    target = np.where(
        rng.random((n_bars, n_assets)) < 0.05, rng.uniform(-0.2, 0.2, (n_bars, n_assets)), np.nan
    )
    settles = (candles["timestamps"] % (8 * HOUR_MS) == 0)[:, None]
    funding = np.where(settles, rng.normal(0.0001, 0.0001, (n_bars, n_assets)), 0.0)
    config = SimConfig(max_leverage=3.0)
    markets = MarketSpec(qty_step=0.001, min_qty=0.001, min_notional=5.0)

    def run():
        return simulate(
            candles["timestamps"],
            candles["open"],
            candles["high"],
            candles["low"],
            candles["close"],
            target,
            mode=Mode.LIMIT,
            limit_offset=0.001,
            stop_loss=0.03,
            take_profit=0.06,
            funding=funding,
            markets=markets,
            config=config,
        )

    seconds, result = median_seconds(run=run)["run"]
    bar_assets = n_bars * n_assets
    print(
        f"workload B: {n_bars:,} bars x {n_assets} assets, limits, stops, funding: "
        f"{seconds:.4f} s median, {bar_assets / seconds:,.0f} bar-assets/s, "
        f"{result.fills.size:,} fills, {result.rejects.size:,} rejects"
    )


def main() -> None:
    """Print the figures of both workloads; the last line is the speedup."""
    print(f"first call with a warm cache: {first_call_seconds():.2f} s")
    speedup, wrapper_speedup = workload_a()
    workload_b()
    print(f"simulate_speedup_vs_vectorbt: {wrapper_speedup:.2f}")
    print(f"speedup_vs_vectorbt: {speedup:.2f}")


if __name__ == "__main__":
    main()
