"""Scale of the per-bar features on different assets, exchanges and markets.

For each candle file, computes the ``raw`` and the ``relative`` feature sets
(``engine.data.features``) on the bars of a date range and prints each
feature's mean, standard deviation and 5%/95% quantiles, skipping the first
``settle_bars`` bars. Features on one scale have similar rows across files;
raw ``log_volume`` does not (volume is counted in the base asset). Run::

    python benchmarks/feature_scale.py --store ../shared/data \\
        --files bybit_linear_BTCUSDT_1h bybit_linear_ETHUSDT_1h \\
        bybit_linear_SOLUSDT_1h binance_spot_DOGEUSDT_1h --end 2024-12-31
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from engine.data.features import compute_features, settle_bars

SETS = {"raw": ["volatility_24", "rsi_14"], "relative": ["volatility_ratio_24", "rsi_14"]}


def describe(candles: pd.DataFrame, feature_set: str, extras: list[str]) -> pd.DataFrame:
    """Return mean, std and 5%/95% quantiles of each feature, after the settling bars."""
    values, names = compute_features(candles, extras, feature_set)
    values = values[settle_bars(extras, feature_set) :]
    return pd.DataFrame(
        {
            "mean": values.mean(axis=0),
            "std": values.std(axis=0),
            "q05": np.quantile(values, 0.05, axis=0),
            "q95": np.quantile(values, 0.95, axis=0),
        },
        index=names,
    )


def main() -> None:
    """Print the feature statistics of every file and feature set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("../shared/data"))
    parser.add_argument("--files", nargs="+", required=True, help="File names without .parquet.")
    parser.add_argument("--start", default="2024-01-01")
    parser.add_argument("--end", default="2024-12-31", help="Last day (inclusive).")
    args = parser.parse_args()
    start = pd.Timestamp(args.start, tz="UTC").value // 10**6
    stop = (pd.Timestamp(args.end, tz="UTC") + pd.Timedelta(days=1)).value // 10**6
    for feature_set, extras in SETS.items():
        rows = []
        for name in args.files:
            candles = pd.read_parquet(args.store / f"{name}.parquet")
            candles = candles[(candles["timestamp"] >= start) & (candles["timestamp"] < stop)]
            table = describe(candles.reset_index(drop=True), feature_set, extras)
            rows.append(table.assign(file=name).reset_index(names="feature"))
        frame = (
            pd.concat(rows).set_index(["feature", "file"]).sort_index(level=0, sort_remaining=False)
        )
        print(f"\n{feature_set} features, {args.start} to {args.end}")
        print(frame.to_string(float_format=lambda value: f"{value:.4g}"))


if __name__ == "__main__":
    main()
