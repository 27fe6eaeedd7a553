"""Time the event loop against vectorbt like for like, and against a bare loop.

Workload A: 1,000,000 hourly bars of one asset (a random walk), a target in
{-1, 0, +1} decided on about 2% of bars, market orders at the next open, fees
0.03%, cash sizing so that vectorbt can express it. The decisions come in the
two encodings the event loop accepts:

- sparse: the target is NaN (no decision) except on the bars that decide;
- dense: the target is held on every bar and ``mode`` is ``Mode.WAIT`` except
  on the bars that decide (``Mode.MARKET``), as int64 as the strategy layer's
  walk-forward emits it.

The engines take turns in each repetition:

- ``simulate`` (validation, one kernel call, the fills and the changes of the
  book; its per-bar columns are computed only when read) against
  ``vectorbt.Portfolio.from_orders`` (broadcasting, one kernel call, the
  portfolio object; its equity is computed only when asked for);
- the same two with the equity read, ``simulate(...).equity`` against
  ``from_orders(...).value()``, both materialised (informational);
- ``run_nb`` (inputs prebuilt) against vectorbt's own order kernel
  ``simulate_from_orders_nb`` called with the arguments ``from_orders`` gives it;
- a bare numba loop over the same rules that keeps only the book and counts
  fills, writing no per-bar outputs: the floor for such a loop; and the same
  loop writing four per-bar columns (equity, cash, funding, position) into
  freshly allocated memory, which shows what writing them costs;
- a pass that only reads the dense encoding's inputs once, the floor for any
  loop that checks them: memory, not arithmetic, bounds a loop this light.

Every engine's results are checked equal (equity, fills, prices, fees) before
anything is timed.

Workload B: 10 assets, 100,000 bars, limit orders at 0.1% from the close,
stops, funding every 8 hours, margin sizing (vectorbt cannot express it).

Run from the repository root::

    python benchmarks/sim_speed.py

The last three lines are ``simulate_dense_speedup_vs_vectorbt``,
``simulate_sparse_speedup_vs_vectorbt`` (``from_orders`` median over
``simulate`` median) and ``dense_vs_bare_loop`` (``simulate`` on the dense
encoding over the bare loop on it). The load average is printed at the start
and the end: the machine may be shared.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from numba import njit

from engine.sim import MarketSpec, Mode, SimConfig, simulate
from engine.sim.enums import change_dt, fill_dt, reject_dt
from engine.sim.nb import MAX_EVENTS_PER_ASSET, TOL, run_nb
from engine.sim.run import market_records, new_state

HOUR_MS = 3_600_000
REPEATS = 7  # timed runs of each engine, after one warm-up


def load_average() -> str:
    """Return the 1, 5 and 15 minute load averages as text."""
    return "load average {:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())


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
    """Return a target in {-1, 0, 1} set on about 2% of bars, NaN (no decision) elsewhere."""
    rng = np.random.default_rng(seed)
    changes = rng.random(n_bars) < 0.02
    return np.where(changes, rng.integers(-1, 2, n_bars).astype(np.float64), np.nan)


def dense_decisions(sparse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the same decisions held on every bar: target, and MARKET where decided else WAIT."""
    decided = ~np.isnan(sparse)
    last = np.maximum.accumulate(np.where(decided, np.arange(sparse.size), -1))
    target = np.where(last >= 0, sparse[np.maximum(last, 0)], 0.0)
    mode = np.where(decided, int(Mode.MARKET), int(Mode.WAIT)).astype(np.int64)
    return target, mode


@njit(cache=True)
def bare_loop_nb(open_, close, target, mode, fee, cash, min_qty, outputs):
    """Run the rules of workload A; return final equity and the number of fills.

    A decision (finite target, mode not WAIT; ``mode`` of size 1 stands for
    every bar) becomes a market order sized at the next open to ``target``
    times equity, a buy limited to the cash, fees included, an order below
    ``min_qty`` skipped, as ``engine.sim.nb`` does under cash sizing.
    ``outputs`` is an empty (0, 4) array for no per-bar output, or (T, 4)
    to receive equity, cash, funding (0) and position at every close.
    """
    position = 0.0
    pending = False
    order = 0.0
    n_fills = 0
    every_bar = mode.size > 1
    for t in range(open_.size):
        if pending:
            pending = False
            price = open_[t]
            target_qty = order * (cash + position * price) / price
            delta = target_qty - position
            if abs(delta) > TOL * max(abs(target_qty), abs(position)):
                qty = abs(delta)
                if delta > 0.0:
                    qty = min(qty, cash / (price * (1.0 + fee))) if cash > 0.0 else 0.0
                if qty > 0.0 and qty >= min_qty:
                    signed = qty if delta > 0.0 else -qty
                    cash -= signed * price + qty * price * fee
                    new_position = position + signed
                    if abs(new_position) <= TOL * max(abs(position), qty):
                        new_position = 0.0
                    position = new_position
                    n_fills += 1
        if outputs.shape[0]:
            outputs[t, 0] = cash + position * close[t]
            outputs[t, 1] = cash
            outputs[t, 2] = 0.0
            outputs[t, 3] = position
        frac = target[t]
        if frac == frac and mode[t if every_bar else 0] != Mode.WAIT:
            pending = True
            order = frac
    return cash + position * close[-1], n_fills


@njit(cache=True)
def read_once_nb(times, open_, high, low, close, target, mode):
    """Return a sum over every value of the inputs ``simulate`` checks, read once in one pass.

    The time of this call is what reading the dense encoding's inputs from
    memory costs: a floor for any loop that checks them.
    """
    total = 0.0
    for k in range(times.size):
        total += times[k] + open_[k] + high[k] + low[k] + close[k] + target[k] + mode[k]
    return total


def vectorbt_kernel_call(portfolio_call):
    """Return a function that calls vectorbt's order kernel as ``portfolio_call`` does.

    ``portfolio_call`` is run once with vectorbt's dispatch intercepted, which
    captures the arguments ``from_orders`` gives ``simulate_from_orders_nb``.
    """
    from vectorbt.portfolio import dispatch
    from vectorbt.portfolio.nb import simulate_from_orders_nb

    captured = {}
    original = dispatch.simulate_from_orders

    def capture(*args, **kwargs):
        captured["args"], captured["kwargs"] = args, kwargs
        return original(*args, **kwargs)

    dispatch.simulate_from_orders = capture
    try:
        portfolio_call()
    finally:
        dispatch.simulate_from_orders = original
    kwargs = {k: v for k, v in captured["kwargs"].items() if k != "engine"}
    return lambda: simulate_from_orders_nb(*captured["args"], **kwargs)


def median_seconds(**calls) -> dict[str, tuple[float, object]]:
    """Return each call's median wall time over ``REPEATS`` runs after a warm-up, and a result.

    The calls take turns, so that a load from other work on the machine falls
    on all of them alike rather than on whichever happened to run during it.
    Each call's previous result is freed before it runs again, as in a loop
    over runs, so every engine reuses its memory instead of faulting in fresh
    pages for its outputs.
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

    The inputs go to a fresh process through .npy files; ``mode``, when given,
    is passed as the keyword. The peak resident set is reset just before the
    call (Linux ``clear_refs``) and read just after. The figure includes the
    outputs the call returns.
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
        "k = {n: np.load(f'{sys.argv[1]}/{n}.npy') for n in sys.argv[2:]}\n"
        f"config, markets = {config!r}, {markets!r}\n"
        "simulate(*(x[:10] for x in a), **{n: v[:10] for n, v in k.items()},\n"
        "         config=config, markets=markets)\n"
        "open('/proc/self/clear_refs', 'w').write('5')  # peak RSS := current RSS\n"
        "before = kib('VmRSS:')\n"
        "result = simulate(*a, **k, config=config, markets=markets)\n"
        "print((kib('VmHWM:') - before) * 1024)\n"
    )
    keywords = [name for name in arrays if name == "mode"]
    with tempfile.TemporaryDirectory() as folder:
        for name, array in arrays.items():
            np.save(f"{folder}/{name}.npy", array)
        output = subprocess.run(
            [sys.executable, "-c", code, folder, *keywords],
            capture_output=True,
            text=True,
            check=True,
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


def rate(n_bars: int, seconds: float) -> str:
    """Return a median time with its rate in bars per second."""
    return f"{seconds * 1e3:8.2f} ms median, {n_bars / seconds / 1e6:6.1f} M bars/s"


def workload_a() -> tuple[float, float, float]:
    """Run workload A through every engine; print figures.

    Returns the speedups of ``simulate`` (dense, sparse) over ``from_orders``
    and the ratio of ``simulate`` on the dense encoding to the bare loop.
    """
    import vectorbt as vbt

    n_bars = 1_000_000
    candles = random_walk(n_bars, 1, seed=1)
    sparse = sparse_target(n_bars, seed=2)
    dense, dense_mode = dense_decisions(sparse)
    config = SimConfig(sizing="cash", maintenance_margin=0.0)
    prices = [candles[name] for name in ("open", "high", "low", "close")]
    records = config.to_record()
    markets = MarketSpec(min_qty=1e-8)  # vectorbt skips orders below 1e-8 units
    market_array = market_records(markets, 1)
    fee = 0.0003

    def kernel(target: np.ndarray, mode: np.ndarray):
        # run_nb with its inputs prebuilt: 2-D views, scalars as one-element arrays; record
        # buffers with room for every bar's records, which, like vectorbt's, take memory only
        # where written; the first change is the book before the first bar
        mode = mode.reshape(-1, 1)

        def call():
            account, assets = new_state(1, 10_000.0)
            fills = np.empty(MAX_EVENTS_PER_ASSET * n_bars, fill_dt)
            rejects = np.empty(MAX_EVENTS_PER_ASSET * n_bars, reject_dt)
            changes = np.empty(n_bars + 1, change_dt)
            held = np.empty((n_bars + 1, 1))
            changes[0] = (-1, 10_000.0, 0.0)
            held[0] = 0.0
            reached, n_fills, _, n_changes = run_nb(
                candles["timestamps"],
                account,
                assets,
                records,
                market_array,
                *(array.reshape(-1, 1) for array in prices),
                np.zeros((1, 1)),
                target.reshape(-1, 1),
                mode,
                np.ones((1, 1)),
                np.zeros((1, 1)),
                np.full((1, 1), np.nan),
                np.full((1, 1), np.nan),
                0,
                n_bars,
                fills,
                0,
                rejects,
                0,
                changes,
                held,
                1,
            )
            assert reached == n_bars
            return changes[:n_changes], fills[:n_fills]

        return call

    def wrapper(target: np.ndarray, **mode):
        return lambda: simulate(
            candles["timestamps"], *prices, target, **mode, config=config, markets=markets
        )

    size = np.concatenate([[np.nan], sparse[:-1]])

    def from_orders():
        return vbt.Portfolio.from_orders(
            candles["close"][:, 0],
            size=size,
            size_type="targetpercent",
            price=candles["open"][:, 0],
            fees=fee,
            init_cash=10_000.0,
            freq="1h",
        )

    no_outputs = np.empty((0, 4))
    open_1d = candles["open"][:, 0]
    close_1d = candles["close"][:, 0]
    simulate_dense = wrapper(dense, mode=dense_mode)
    calls = {
        "simulate_sparse": wrapper(sparse),
        "simulate_dense": simulate_dense,
        "from_orders": from_orders,
        "simulate_dense_equity": lambda: simulate_dense().equity,
        "from_orders_value": lambda: from_orders().value(),
        "run_nb_sparse": kernel(sparse, np.zeros(1, np.int64)),
        "run_nb_dense": kernel(dense, dense_mode),
        "vectorbt_kernel": vectorbt_kernel_call(from_orders),
        "bare_sparse": lambda: bare_loop_nb(
            open_1d, close_1d, sparse, np.zeros(1, np.int64), fee, 10_000.0, 1e-8, no_outputs
        ),
        "bare_dense": lambda: bare_loop_nb(
            open_1d, close_1d, dense, dense_mode, fee, 10_000.0, 1e-8, no_outputs
        ),
        # the same loop writing four per-bar columns, into fresh memory
        "bare_dense_outputs": lambda: bare_loop_nb(
            open_1d, close_1d, dense, dense_mode, fee, 10_000.0, 1e-8, np.empty((n_bars, 4))
        ),
        "read_dense_inputs": lambda: read_once_nb(
            candles["timestamps"], *(array[:, 0] for array in prices), dense, dense_mode
        ),
    }
    check_equal({name: call() for name, call in calls.items()})
    print(f"  all engines agree (equity and fills); timing, {load_average()}")
    timings = median_seconds(**calls)
    seconds = {name: timing[0] for name, timing in timings.items()}
    for name in calls:
        print(f"  {name:22s} {rate(n_bars, seconds[name])}")
    print(
        "  with the equity read (simulate(...).equity vs from_orders(...).value()): "
        f"{seconds['from_orders_value'] / seconds['simulate_dense_equity']:.2f}x"
    )
    print(
        "  run_nb vs simulate_from_orders_nb: "
        f"sparse {seconds['vectorbt_kernel'] / seconds['run_nb_sparse']:.2f}x, "
        f"dense {seconds['vectorbt_kernel'] / seconds['run_nb_dense']:.2f}x"
    )
    print(
        "  vs bare loop: simulate "
        f"sparse {seconds['simulate_sparse'] / seconds['bare_sparse']:.2f}x, "
        f"dense {seconds['simulate_dense'] / seconds['bare_dense']:.2f}x; run_nb "
        f"sparse {seconds['run_nb_sparse'] / seconds['bare_sparse']:.2f}x, "
        f"dense {seconds['run_nb_dense'] / seconds['bare_dense']:.2f}x; the bare loop writing "
        f"the four per-bar outputs {seconds['bare_dense_outputs'] / seconds['bare_dense']:.2f}x"
    )
    print(
        "  reading the dense inputs once (timestamps, four prices, target, mode): "
        f"{seconds['read_dense_inputs'] * 1e3:.2f} ms; simulate dense takes "
        f"{seconds['simulate_dense'] / seconds['read_dense_inputs']:.2f}x that, "
        f"from_orders {seconds['from_orders'] / seconds['read_dense_inputs']:.2f}x"
    )
    arrays = dict(
        zip(("timestamps", "open", "high", "low", "close"), candles.values(), strict=True)
    )
    for label, decisions in (
        ("sparse", {"target": sparse}),
        ("dense", {"target": dense, "mode": dense_mode}),
    ):
        inputs = arrays | decisions
        input_bytes = sum(array.nbytes for array in inputs.values())
        peak = peak_memory_bytes(inputs, config, markets)
        print(
            f"  memory, {label}: inputs {input_bytes / 1e6:.1f} MB; one simulate call lifts "
            f"peak RSS by {peak / 1e6:.1f} MB ({peak / input_bytes:.2f}x inputs)"
        )
    return (
        seconds["from_orders"] / seconds["simulate_dense"],
        seconds["from_orders"] / seconds["simulate_sparse"],
        seconds["simulate_dense"] / seconds["bare_dense"],
    )


def check_equal(results: dict[str, object]) -> None:
    """Raise unless every engine of workload A gave the same equity and the same fills."""
    portfolio = results["from_orders"]
    equity = portfolio.value().to_numpy()
    orders = portfolio.orders.values
    vectorbt_orders = results["vectorbt_kernel"][0]
    for column in ("size", "price", "fees"):
        np.testing.assert_array_equal(vectorbt_orders[column], orders[column])
    for name in ("simulate_sparse", "simulate_dense"):
        np.testing.assert_allclose(results[name].equity, equity, rtol=1e-9)
        fills = results[name].fills
        for column, field in (("size", "quantity"), ("price", "price"), ("fees", "fee")):
            np.testing.assert_allclose(fills[field], orders[column], rtol=1e-9)
    np.testing.assert_array_equal(
        results["simulate_dense_equity"], results["simulate_dense"].equity
    )
    np.testing.assert_array_equal(results["from_orders_value"].to_numpy(), equity)
    for name in ("run_nb_sparse", "run_nb_dense"):
        np.testing.assert_array_equal(results[name][0], results["simulate_sparse"].changes)
        np.testing.assert_array_equal(results[name][1], results["simulate_sparse"].fills)
    for name in ("bare_sparse", "bare_dense", "bare_dense_outputs"):
        final_equity, n_fills = results[name]
        np.testing.assert_allclose(final_equity, equity[-1], rtol=1e-12)
        assert n_fills == orders.size, f"{name}: {n_fills} fills, vectorbt {orders.size}"
    print(
        f"workload A: {equity.size:,} bars, 1 asset, {orders.size:,} fills, "
        f"{portfolio.orders.values.size / equity.size:.1%} of bars"
    )


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
        f"{seconds * 1e3:.2f} ms median, {bar_assets / seconds / 1e6:.1f} M bar-assets/s, "
        f"{result.fills.size:,} fills, {result.rejects.size:,} rejects"
    )


def main() -> None:
    """Print the figures of both workloads; the last three lines are the ratios."""
    print(f"start: {load_average()}")
    print(f"first call with a warm cache: {first_call_seconds():.2f} s")
    dense_speedup, sparse_speedup, dense_vs_bare = workload_a()
    workload_b()
    print(f"end: {load_average()}")
    print(f"simulate_dense_speedup_vs_vectorbt: {dense_speedup:.2f}")
    print(f"simulate_sparse_speedup_vs_vectorbt: {sparse_speedup:.2f}")
    print(f"dense_vs_bare_loop: {dense_vs_bare:.2f}")


if __name__ == "__main__":
    main()
