"""The drift part of a run folder: every reading as a table, and a plot of them over time.

``drift.csv`` holds one row per reading and asset; ``drift.png`` plots, per
asset, the representation test's p-value, the scores' PSI, the accuracy on
matured labels with its interval against the fitting window's, and the
volume ratio, each with its threshold, component refits (grey) and encoder
refits (purple) as vertical lines and triggering alarms as red marks.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from engine.atomic import atomic_path
from engine.config import DriftConfig
from engine.runner.drift import readings_table
from engine.runner.walkforward import Fitted


def drift_frame(fitted: Fitted, symbols: list[str]) -> pd.DataFrame:
    """Return every asset's drift readings, one row per reading, with bar times."""
    frames = []
    for symbol, history, decisions in zip(symbols, fitted.histories, fitted.decisions, strict=True):
        frame = pd.DataFrame(readings_table(decisions.drift))
        frame.insert(0, "symbol", symbol)
        frame.insert(
            0, "time", pd.to_datetime(history.timestamp[frame["bar"]], unit="ms", utc=True)
        )
        frames.append(frame.drop(columns="bar"))
    return pd.concat(frames, ignore_index=True)


def write_drift_plot(
    fitted: Fitted, symbols: list[str], config: DriftConfig, frame: pd.DataFrame, path: Path
) -> None:
    """Write the drift plot of a run (PNG) to ``path``, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (
        ("p_value", "representation p-value", config.p_value),
        ("psi", "score PSI", config.psi),
        ("accuracy", "accuracy on matured labels", None),
        ("volume_ratio", "volume / fitting window's", config.volume_collapse),
    )
    figure, axes = plt.subplots(
        len(panels), len(symbols), figsize=(11 * len(symbols), 9), sharex=True, squeeze=False
    )
    for column, (symbol, history, decisions) in enumerate(
        zip(symbols, fitted.histories, fitted.decisions, strict=True)
    ):
        rows = frame[frame["symbol"] == symbol]
        refits = pd.to_datetime(history.timestamp[[r[0] for r in decisions.refits]], unit="ms")
        tuned = pd.to_datetime(history.timestamp[[v.bar for v in decisions.encoders]], unit="ms")
        triggered = rows[rows["triggered"]]
        for ax, (name, label, threshold) in zip(axes[:, column], panels, strict=True):
            ax.plot(rows["time"].dt.tz_localize(None), rows[name], lw=0.8, color="tab:blue")
            if name == "accuracy":
                ax.fill_between(
                    rows["time"].dt.tz_localize(None),
                    rows["accuracy_low"],
                    rows["accuracy_high"],
                    color="tab:blue",
                    alpha=0.2,
                )
                ax.plot(
                    rows["time"].dt.tz_localize(None),
                    rows["reference_accuracy"],
                    lw=0.8,
                    color="black",
                    ls=":",
                )
            if threshold is not None:
                ax.axhline(threshold, color="tab:red", lw=0.8, ls="--")
            for when in refits:
                ax.axvline(when, color="grey", lw=0.5, alpha=0.6)
            for when in tuned:
                ax.axvline(when, color="tab:purple", lw=1.2, alpha=0.8)
            ax.scatter(
                triggered["time"].dt.tz_localize(None),
                triggered[name],
                color="tab:red",
                s=10,
                zorder=3,
            )
            ax.set_ylabel(label, fontsize=8)
        axes[0, column].set_yscale("log")
        axes[0, column].set_title(
            f"{symbol}: drift against each refit's fitting window (grey: refits, purple: "
            f"encoder refits, red: alarms acted on by '{config.policy}')",
            fontsize=9,
        )
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=90, format="png")
    plt.close(figure)
