"""The run folder of ``engine evaluate``: results.json, tables beside the article's, HTML.

The main table is laid out like the article's "Sample Backtest Results"
table: per representation, the out-of-sample linear-probe accuracy with its
interval, its paired difference to the raw features and to the majority
class, the fine-tuned accuracy and the transfer accuracy, next to the figures
the article claims for the same kind of model. The article's figures are
claims, printed as such; ours are measured.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import io
import shutil
from pathlib import Path

import numpy as np

from engine.atomic import write_text
from engine.research.evaluate import Evaluation, results_json

#: The article's claimed figures by model kind: linear probe, fine-tuned, transfer to ETH.
ARTICLE = {
    "ts2vec": ("TS2Vec (contrastive)", 0.552, 0.573, 0.558),
    "mae": ("MAE (masked)", 0.538, 0.561, 0.542),
    "tnc": ("TNC (temporal)", 0.541, 0.567, 0.551),
    "cost": ("CoST (seasonal-trend)", 0.564, 0.582, 0.563),
    "supervised": ("Supervised (no pre-train)", None, 0.541, 0.498),
    "lstm": ("LSTM", None, 0.534, 0.501),
    "indicators": ("Technical indicators", None, 0.523, 0.523),
}

COLUMNS = (
    "representation",
    "kind",
    "probe accuracy",
    "probe 95% CI",
    "minus features",
    "minus features CI",
    "minus majority",
    "minus majority CI",
    "minus its inputs",
    "minus its inputs CI",
    "balanced accuracy",
    "fine-tuned accuracy",
    "fine-tuned CI",
    "transfer accuracy",
    "transfer minus majority CI",
    "article row",
    "article probe",
    "article fine-tuned",
    "article transfer",
)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _points(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.1f}"


def _interval(pair: list | None, points: bool = False) -> str:
    if not pair or pair[0] is None:
        return "n/a"
    fmt = _points if points else _pct
    return f"[{fmt(pair[0])}, {fmt(pair[1])}]"


def transfer_target(results: dict, train: str) -> str | None:
    """Return the transfer target shown in the main table: ETH if tested, else the first."""
    targets = [t for t in next(iter(results["probe"].values()), {}).get(train, {}) if t != train]
    eth = [t for t in targets if t.split(":")[2] == "ETHUSDT"]
    return (eth or targets or [None])[0]


def _auc(value: float | None, pair: list | None, sign: str = "") -> str:
    if value is None:
        return "n/a"
    if not pair or pair[0] is None:
        return f"{value:{sign}.3f}"
    return f"{value:{sign}.3f} [{pair[0]:{sign}.3f}, {pair[1]:{sign}.3f}]"


def main_rows(results: dict, train: str) -> list[dict[str, str]]:
    """Return the main table's rows, one per representation, as display strings."""
    target = transfer_target(results, train)
    rows = []
    for name, kind in results["representations"].items():
        probe = results["probe"].get(name, {}).get(train, {})
        own = probe.get(train, {})
        tuned = results["finetuned"].get(name, {}).get(train, {}).get(train, {})
        moved = probe.get(target, {}) if target else {}
        article = ARTICLE.get(kind, ("", None, None, None))
        rows.append(
            {
                "representation": name,
                "kind": kind,
                "probe accuracy": _pct(own.get("accuracy")),
                "probe 95% CI": _interval([own.get("ci_low"), own.get("ci_high")]),
                "minus features": _points(own.get("minus_features")),
                "minus features CI": _interval(own.get("minus_features_ci"), points=True),
                "minus majority": _points(own.get("minus_majority")),
                "minus majority CI": _interval(own.get("minus_majority_ci"), points=True),
                "minus its inputs": _points(own.get("minus_inputs")),
                "minus its inputs CI": _interval(own.get("minus_inputs_ci"), points=True),
                "balanced accuracy": _pct(own.get("balanced_accuracy")),
                "fine-tuned accuracy": _pct(tuned.get("accuracy")),
                "fine-tuned CI": _interval([tuned.get("ci_low"), tuned.get("ci_high")]),
                "transfer accuracy": _pct(moved.get("accuracy")),
                "transfer minus majority CI": _interval(
                    moved.get("minus_majority_ci"), points=True
                ),
                "article row": article[0],
                "article probe": _pct(article[1]),
                "article fine-tuned": _pct(article[2]),
                "article transfer": _pct(article[3]),
            }
        )
    return rows


def _markdown(columns: list[str], rows: list[list[str]]) -> str:
    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|"
    return "\n".join([head, rule, *("| " + " | ".join(row) + " |" for row in rows)]) + "\n"


def tables(results: dict) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Return every table of the report by name: (columns, rows of display strings)."""
    train = results["train_series"][0]
    out: dict[str, tuple[list[str], list[list[str]]]] = {}
    rows = main_rows(results, train)
    out["main"] = (list(COLUMNS), [[row[c] for c in COLUMNS] for row in rows])
    targets = sorted({t for by in results["probe"].values() for t in by.get(train, {})})
    if targets:
        columns = ["representation", *targets]
        out["transfer"] = (
            columns,
            [
                [name]
                + [
                    f"{_pct(m.get('accuracy'))} ({_points(m.get('minus_majority'))} vs majority)"
                    if (m := results["probe"][name].get(train, {}).get(t))
                    else "n/a"
                    for t in targets
                ]
                for name in results["probe"]
            ],
        )
    if results["label_efficiency"]:
        sizes = list(next(iter(results["label_efficiency"].values())))
        out["label_efficiency"] = (
            ["representation", *(f"N={n}" for n in sizes)],
            [
                [name]
                + [
                    f"{_pct(c['mean'])} [{_pct(c['min'])}, {_pct(c['max'])}] x{c['windows']}"
                    if c["windows"]
                    else "n/a"
                    for c in curve.values()
                ]
                for name, curve in results["label_efficiency"].items()
            ],
        )
    if results["anomaly"]:
        columns = ["detector", "series", "event", "flag rate", "precision", "recall", "lift"]
        columns += ["ROC AUC [CI]", "AUC minus vol z-score [CI]", "lead time (bars)"]
        rows_a = []
        for detector, by_series in results["anomaly"].items():
            for target, by_event in by_series.items():
                for event, m in by_event.items():
                    rows_a.append(
                        [
                            detector,
                            target,
                            event,
                            _pct(m.get("flag_rate")),
                            _pct(m.get("precision")),
                            _pct(m.get("recall")),
                            "n/a" if m.get("lift") is None else f"{m['lift']:.2f}",
                            _auc(m.get("roc_auc"), m.get("roc_auc_ci")),
                            _auc(
                                m.get("roc_auc_minus_vol_zscore"),
                                m.get("roc_auc_minus_vol_zscore_ci"),
                                "+",
                            ),
                            "n/a"
                            if m.get("lead_time_bars") is None
                            else f"{m['lead_time_bars']:.1f}",
                        ]
                    )
        out["anomaly"] = (columns, rows_a)
    if results["volatility"]:
        columns = ["representation", "series", "R2", "HAR R2", "QLIKE", "HAR QLIKE"]
        columns += ["QLIKE minus HAR", "CI"]
        out["volatility"] = (
            columns,
            [
                [
                    name,
                    target,
                    f"{m['r2']:.3f}",
                    f"{m['har_r2']:.3f}",
                    f"{m['qlike']:.3f}",
                    f"{m['har_qlike']:.3f}",
                    f"{m['qlike_minus_har']:+.3f}",
                    f"[{m['qlike_minus_har_ci'][0]:+.3f}, {m['qlike_minus_har_ci'][1]:+.3f}]",
                ]
                for name, by_series in results["volatility"].items()
                for target, m in by_series.items()
            ],
        )
    return out


#: The style sheet of the research HTML pages.
PAGE_STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
    "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}img{max-width:100%}"
    ".warning{color:#a00;font-weight:bold}"
)


def png_base64(figure) -> str:
    """Return a matplotlib figure as a base64 PNG, for an ``<img>`` in an HTML report."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _figures(evaluation: Evaluation) -> list[tuple[str, str]]:
    # (title, base64 PNG) of every plot of the HTML report.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results, figures = evaluation.results, []
    train = results["train_series"][0]
    if results["label_efficiency"]:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for name, curve in results["label_efficiency"].items():
            sizes = [int(n) for n, c in curve.items() if c["windows"]]
            if not sizes:
                continue
            mean = [curve[str(n)]["mean"] for n in sizes]
            ax.plot(sizes, mean, marker="o", label=name)
            ax.fill_between(
                sizes,
                [curve[str(n)]["min"] for n in sizes],
                [curve[str(n)]["max"] for n in sizes],
                alpha=0.15,
            )
        ax.set_xscale("log")
        ax.set_xlabel("labelled training bars")
        ax.set_ylabel("test accuracy")
        ax.legend(fontsize=7)
        figures.append(
            ("Label efficiency (mean, band from min to max over windows)", png_base64(fig))
        )
        plt.close(fig)
    targets = sorted({t for by in results["probe"].values() for t in by.get(train, {})})
    names = [n for n in results["probe"] if results["probe"][n].get(train)]
    if targets and names:
        grid = np.array(
            [
                [
                    np.nan
                    if (m := results["probe"][n][train].get(t)) is None
                    else 100 * m["minus_majority"]
                    for t in targets
                ]
                for n in names
            ],
            dtype=float,
        )
        fig, ax = plt.subplots(figsize=(1.6 * len(targets) + 3, 0.45 * len(names) + 1.5))
        limit = np.nanmax(np.abs(grid)) or 1.0
        image = ax.imshow(grid, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        ax.set_xticks(range(len(targets)), [t.split(":")[2] for t in targets])
        ax.set_yticks(range(len(names)), names)
        for (i, j), value in np.ndenumerate(grid):
            if np.isfinite(value):
                ax.text(j, i, f"{value:+.1f}", ha="center", va="center", fontsize=7)
        fig.colorbar(image, label="accuracy minus majority class (points)")
        figures.append((f"Transfer: probes trained on {train}", png_base64(fig)))
        plt.close(fig)
    for target, by_event in evaluation.curves.get("roc", {}).items():
        fig, axes = plt.subplots(1, len(by_event), figsize=(5 * len(by_event), 4.5))
        for ax, (event, detectors) in zip(np.atleast_1d(axes), by_event.items(), strict=True):
            for detector, (fpr, tpr) in detectors.items():
                if detector.startswith("anomaly_risk:"):
                    continue
                ax.plot(fpr, tpr, label=detector, lw=1)
            ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
            ax.set_title(event, fontsize=9)
            ax.set_xlabel("false-positive rate")
            ax.set_ylabel("true-positive rate")
            ax.legend(fontsize=6)
        figures.append((f"Anomaly ROC curves on {target}", png_base64(fig)))
        plt.close(fig)
    maps = evaluation.maps
    if maps.get("points"):
        names = list(maps["points"])
        forward = np.asarray(maps["forward_return"], dtype=float)
        regime = np.asarray(maps["log_variance_24"], dtype=float)
        cuts = np.nanquantile(regime, [1 / 3, 2 / 3])
        tercile = np.digitize(regime, cuts)
        fig, axes = plt.subplots(len(names), 2, figsize=(10, 4 * len(names)), squeeze=False)
        bound = np.nanquantile(np.abs(forward), 0.95)
        for row, name in enumerate(names):
            points = np.asarray(maps["points"][name], dtype=float)
            left, right = axes[row]
            left.scatter(*points.T, c=forward, cmap="RdYlGn", vmin=-bound, vmax=bound, s=2)
            left.set_title(f"{name}: forward return", fontsize=9)
            right.scatter(*points.T, c=tercile, cmap="viridis", s=2)
            right.set_title(f"{name}: volatility regime (terciles)", fontsize=9)
        figures.append((f"2-D PCA maps of the test bars of {train}", png_base64(fig)))
        plt.close(fig)
    return figures


def html_table(columns: list[str], rows: list[list[str]]) -> str:
    """Return an HTML table of string cells, escaped."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_html(evaluation: Evaluation, path: Path) -> None:
    """Write the self-contained HTML report (tables and plots) to ``path``."""
    results = evaluation.results
    parts = [
        f"<h1>Evaluation {html.escape(results['name'])}</h1>",
        "<p>Out-of-sample figures with moving-block bootstrap intervals "
        f"({results['bootstrap']['reps']} resamples, blocks of "
        f"{results['bootstrap']['block_bars']} bars). Article figures are the article's "
        "claims, not measurements.</p>",
    ]
    if results["pretraining_overlap"]:
        parts.append(
            '<p class="warning">These encoders saw the test bars, unlabelled, in pretraining '
            f"({html.escape(', '.join(results['pretraining_overlap']))}): their figures serve "
            "to choose among encoders, not to report out-of-sample results.</p>"
        )
    for name, (columns, rows) in tables(results).items():
        parts.append(f'<h2 id="{name}">{html.escape(name.replace("_", " "))}</h2>')
        parts.append(html_table(columns, rows))
    for title, png in _figures(evaluation):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(f'<img alt="{html.escape(title)}" src="data:image/png;base64,{png}">')
    page = (
        f'<!doctype html><html><head><meta charset="utf-8"><title>Evaluation '
        f"{html.escape(results['name'])}</title><style>{PAGE_STYLE}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>\n"
    )
    write_text(path, page)


def write_run(evaluation: Evaluation, reports_dir: Path, config_text: str) -> Path:
    """Write ``reports_dir/evaluate-<name>-<UTC time>/`` and return it.

    The folder is built under a ``.partial`` name and renamed when complete,
    so a crash never leaves a folder that looks finished; a failed write
    removes the partial folder.
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = reports_dir / f"evaluate-{evaluation.config.name}-{stamp}"
    partial = folder.with_name(folder.name + ".partial")
    partial.mkdir(parents=True)
    try:
        write_text(partial / "results.json", results_json(evaluation))
        write_text(partial / "config.yaml", config_text)
        for name, (columns, rows) in tables(evaluation.results).items():
            write_text(partial / f"{name}.md", _markdown(columns, rows))
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows(rows)
            write_text(partial / f"{name}.csv", buffer.getvalue())
        write_html(evaluation, partial / "report.html")
        partial.rename(folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return folder
