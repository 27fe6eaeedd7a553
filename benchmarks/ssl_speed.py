"""Speed of causal embedding on market data: series encoding against window by window.

Embeds every bar of a candle file with a shipped encoder as a backtest does
(``engine.ssl.infer.encode_series``: fixed-shape blocks with receptive-field
context, on one thread), then, on a slice, encodes trailing windows
separately the way a naive strategy would (each 60-bar window on its own, one
forward call per bar, and also batched), and reports the measured ratio. It
also checks on a short slice that the series encoding equals encoding each
trailing window of receptive-field length separately. Run::

    python benchmarks/ssl_speed.py --model ts2vec_bybit_1h \\
        --candles ../shared/data/binance_spot_BTCUSDT_1m.parquet

The candles are read from the given file in place (any store file name).
"""

from __future__ import annotations

import os

# Before torch loads: see engine/ssl/__init__.py.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.data.features import compute_features  # noqa: E402
from engine.data.store import CandleStore, parse_filename  # noqa: E402
from engine.models.registry import Registry  # noqa: E402
from engine.ssl.infer import encode_series  # noqa: E402
from engine.strategy.representations import bar_numbers  # noqa: E402


def windowed(encoder, features: np.ndarray, bars: range, length: int, batch: int) -> np.ndarray:
    """Return the last row of encoding each trailing window (``length`` bars) ending at ``bars``."""
    out = []
    with torch.inference_mode():
        for first in range(bars.start, bars.stop, batch):
            ends = range(first, min(first + batch, bars.stop))
            windows = np.stack([features[t + 1 - length : t + 1] for t in ends])
            out.append(encoder(torch.from_numpy(windows))[:, -1].numpy())
    return np.concatenate(out)


def timed(function, *args) -> tuple[float, object]:
    """Return the wall-clock seconds of ``function(*args)`` and its result."""
    began = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - began, result


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default="ts2vec_bybit_1h", help="NAME or NAME@VERSION in --models-dir."
    )
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument(
        "--candles", type=Path, default=Path("../shared/data/binance_spot_BTCUSDT_1m.parquet")
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--window", type=int, default=60, help="Naive window length in bars.")
    parser.add_argument("--slice", type=int, default=2000, help="Bars encoded window by window.")
    parser.add_argument("--exact-slice", type=int, default=100, help="Bars checked for equality.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = Registry(args.models_dir).load(args.model)
    encoder = model.encoder
    key = parse_filename(args.candles.name)
    candles = CandleStore(args.candles.parent).load(key, gap_policy="drop")
    raw, names = compute_features(candles, model.card["features"]["extras"])
    features = model.normalise(raw)
    field = encoder.receptive_field()
    print(
        f"{args.candles.name}: {len(features):,} bars, features {', '.join(names)}; "
        f"model {args.model.name} ({encoder.kind}, receptive field {field} bars), "
        f"{args.threads} threads, torch {torch.__version__}"
    )

    numbers = bar_numbers(candles, key.interval_ms)
    seconds, series = timed(encode_series, encoder, features, numbers)
    print(
        f"series encoding, all bars: {seconds:.1f} s ({len(features) / seconds:,.0f} bars/s), "
        f"output {series.shape[0]:,} x {series.shape[1]}"
    )

    start = max(field, args.window)
    bars = range(start, start + args.slice)
    slice_seconds, _ = timed(encode_series, encoder, features[: bars.stop], numbers[: bars.stop])
    per_bar_pass = seconds / len(features)
    for batch in (1, 256):
        spent, _ = timed(windowed, encoder, features, bars, args.window, batch)
        per_bar = spent / len(bars)
        print(
            f"{args.window}-bar windows one by one (batch {batch}), {len(bars):,} bars: "
            f"{spent:.2f} s, {per_bar * 1e3:.3f} ms/bar, extrapolated to all bars "
            f"{per_bar * len(features):,.0f} s = {per_bar / per_bar_pass:,.0f}x the series encoding"
        )

    exact = range(start, start + args.exact_slice)
    spent, rows = timed(windowed, encoder, features, exact, field, 16)
    difference = float(np.abs(rows - series[exact.start : exact.stop]).max())
    per_bar = spent / len(exact)
    print(
        f"{field}-bar (receptive field) windows, {len(exact)} bars: {per_bar * 1e3:.1f} ms/bar, "
        f"{per_bar / per_bar_pass:,.0f}x the series encoding; "
        f"max |series - windowed| = {difference:.2e}"
    )
    print(f"series encoding of the first {bars.stop:,} bars: {slice_seconds:.2f} s")


if __name__ == "__main__":
    main()
