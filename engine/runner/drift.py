"""Drift monitoring: does the market still look like the window the components were fitted on?

After every refit the ``DriftMonitor`` keeps a reference drawn from the
fitting window: ``reference_bars`` evenly spaced rows of representations,
the decile edges of the signal's in-sample scores, the accuracy of the
score's sign on the window's labels and its median volume. From ``window``
bars into the refit block on, and then every ``stride`` bars, it compares the
block's last ``window`` bars with that reference:

- representation drift: the energy distance between the two samples of
  representations, standardised with the reference's statistics and
  projected on a fixed Gaussian projection (``projection_dims`` columns, seeded
  by the strategy's seed), and its permutation p-value (``permutations``
  label shuffles, seeded by the seed and the bar's absolute number, so every
  run draws the same);
- prediction drift: the population stability index of the scores over the
  reference's deciles;
- performance decay: the share of matured labels whose sign the score got
  right, against the reference's, with a Wilson interval at ``confidence``.
  The label of bar i is the sign of the return from its close to the close
  of bar i + horizon, so at bar t only bars i <= t - horizon count: a label
  matures only once its horizon has closed;
- data health: gaps in the timestamps, stale bars (no volume, or high equal
  to low) and the median volume against the reference's.

Each statistic's alarm is a ``Reading``'s ``alarms``; those named in the
config's ``triggers`` trigger its policy (``Reading.triggered``): ``alert`` only
reports, ``flatten`` sets the target to zero from that bar until an
evaluation without a triggering alarm or the next refit (the caller holds
that flag and passes it to ``scale``), ``refit_components`` ends the block
after the bar, so the components are refitted before the next one
(``RefitSchedule.next_block``), and ``retrain_encoder`` does the same after re-tuning the
encoder (``engine.runner.encoders``).

Everything read at bar t is at or before t, so a reading is as causal as the
representations and scores it reads. A backtest (``engine.runner.walkforward``)
and a paper session (``engine.runner.stepper``) call the same ``observe`` with
the same rows, so their readings and policy actions agree.

The permutation p-value is exact when bars are exchangeable under no drift;
representations of consecutive bars are autocorrelated, which makes it
optimistic on real series, so ``p_value`` is set well below the rate of false
alarms one accepts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from engine.config import DriftConfig
from engine.strategy.base import History

#: Floor of a bin's share in the PSI, so an empty bin gives a finite value.
PSI_FLOOR = 1e-4
#: Matured labels needed before the accuracy is judged.
MIN_MATURED = 30
#: The policies that end a refit block after a triggering reading.
ENDING_POLICIES = ("refit_components", "retrain_encoder")


@dataclass(frozen=True)
class Reference:
    """What the fitting window looked like, as the monitor compares against it."""

    mean: np.ndarray
    scale: np.ndarray
    projected: np.ndarray
    edges: np.ndarray
    shares: np.ndarray
    accuracy: float
    volume: float


@dataclass(frozen=True)
class Reading:
    """One evaluation of drift at one bar.

    Attributes
    ----------
    energy, p_value : float
        Energy distance of the projected representations and its permutation p-value.
    psi : float
        Population stability index of the scores.
    accuracy, accuracy_low, accuracy_high, reference_accuracy : float
        Recent accuracy on matured labels with its interval (NaN with too few
        labels), and the fitting window's.
    gaps, stale : int
        Missing bars and stale bars in the recent window.
    volume_ratio : float
        Recent median volume over the fitting window's.
    alarms : str
        The statistics in alarm, comma-separated ("" for none).
    triggered : bool
        Whether an alarm the policy acts on is among them.
    """

    energy: float
    p_value: float
    psi: float
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    reference_accuracy: float
    gaps: int
    stale: int
    volume_ratio: float
    alarms: str
    triggered: bool

    def describe(self) -> str:
        """Return the reading in one line, for the log and the journal."""
        return (
            f"drift ({self.alarms}): p={self.p_value:.3g} energy={self.energy:.3g} "
            f"psi={self.psi:.3g} accuracy={self.accuracy:.3f} "
            f"[{self.accuracy_low:.3f}, {self.accuracy_high:.3f}] vs "
            f"{self.reference_accuracy:.3f}, gaps={self.gaps} stale={self.stale} "
            f"volume x{self.volume_ratio:.2f}"
        )


#: A reading's fields, in order: the columns of the journal's and run folder's drift tables.
READING_FIELDS = tuple(f.name for f in fields(Reading))


def sign_accuracy(scores: np.ndarray, close: np.ndarray, horizon: int) -> tuple[int, int]:
    """Return how many of the labelled rows the score's sign got right, and how many there are.

    ``close`` holds ``len(scores) + horizon`` closes: row i's label is the
    sign of ``close[i + horizon] - close[i]``; rows with a zero score or a zero
    return are not counted.
    """
    moved = np.sign(close[horizon:] - close[:-horizon])
    said = np.sign(scores)
    counted = (moved != 0) & (said != 0)
    return int((moved[counted] == said[counted]).sum()), int(counted.sum())


def wilson(hits: int, n: int, confidence: float) -> tuple[float, float]:
    """Return the Wilson interval of a proportion ``hits / n`` at ``confidence``."""
    from scipy import stats  # imported here: `engine paper status` reads readings without it

    z = stats.norm.ppf(0.5 + confidence / 2)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def psi(reference: np.ndarray, edges: np.ndarray, recent: np.ndarray) -> float:
    """Return the population stability index of ``recent`` against bin shares ``reference``."""
    counts = np.bincount(np.searchsorted(edges, recent, side="right"), minlength=len(edges) + 1)
    shares = np.maximum(counts / len(recent), PSI_FLOOR)
    return float(((shares - reference) * np.log(shares / reference)).sum())


def energy_test(
    reference: np.ndarray, recent: np.ndarray, permutations: int, seed: int | list[int]
) -> tuple[float, float]:
    """Return the energy distance of two samples and its permutation p-value.

    All shuffles are scored at once from the pooled distance matrix: for a
    0/1 column s marking one sample, the within-sample sums are ``s'Ds`` and
    ``(1-s)'D(1-s)``, one matrix product for every shuffle.
    """
    pooled = np.vstack([reference, recent])
    n, m = len(reference), len(recent)
    squared = (pooled * pooled).sum(axis=1)
    distance = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * pooled @ pooled.T, 0))
    rng = np.random.default_rng(seed)
    marks = np.zeros((n + m, permutations + 1))
    marks[:n, 0] = 1.0
    for k in range(1, permutations + 1):
        marks[rng.permutation(n + m)[:n], k] = 1.0
    within = (marks * (distance @ marks)).sum(axis=0)
    rows = distance.sum(axis=1) @ marks
    total = distance.sum()
    between = rows - within
    other = total - 2 * rows + within
    energy = 2 * between / (n * m) - within / (n * n) - other / (m * m)
    p_value = (1 + (energy[1:] >= energy[0]).sum()) / (1 + permutations)
    return float(energy[0]), float(p_value)


class DriftMonitor:
    """Drift of one asset's bars against the fitting window of its last refit.

    Parameters
    ----------
    config : DriftConfig
        Windows, thresholds and policy.
    dims : int
        Columns of the representation.
    horizon : int
        The signal's label horizon (1 for a signal without labels).
    interval_ms : int
        The length of a bar.
    seed : int
        Seeds the projection and the permutations.
    """

    def __init__(
        self, config: DriftConfig, dims: int, horizon: int, interval_ms: int, seed: int
    ) -> None:
        self.config, self.interval, self.seed = config, interval_ms, seed
        self.horizon = max(horizon, 1)
        rng = np.random.default_rng(seed)
        self.projection = rng.standard_normal((dims, config.projection_dims)) / np.sqrt(
            config.projection_dims
        )
        self.reference: Reference | None = None

    def fit(self, past: History, train: slice, scores: np.ndarray) -> None:
        """Take the reference from rows ``train`` of ``past``, whose in-sample scores are given."""
        config = self.config
        z = np.asarray(past.z[train], dtype=np.float64)
        mean = z.mean(axis=0)
        scale = z.std(axis=0)
        scale[scale == 0] = 1.0
        rows = np.unique(np.linspace(0, len(z) - 1, config.reference_bars).astype(int))
        edges = np.unique(np.quantile(scores, np.linspace(0.1, 0.9, 9)))
        counts = np.bincount(np.searchsorted(edges, scores, side="right"), minlength=len(edges) + 1)
        labelled = len(scores) - self.horizon
        hits, n = sign_accuracy(scores[:labelled], past.close[train][: len(scores)], self.horizon)
        self.reference = Reference(
            mean=mean,
            scale=scale,
            projected=((z[rows] - mean) / scale) @ self.projection,
            edges=edges,
            shares=np.maximum(counts / len(scores), PSI_FLOOR),
            accuracy=hits / n if n else float("nan"),
            volume=float(np.median(past.volume[train])),
        )

    def due(self, t: int, block: int) -> bool:
        """Return whether bar ``t`` of the block starting at ``block`` is evaluated."""
        seen = t - block + 1 - self.config.window
        return seen >= 0 and seen % self.config.stride == 0

    def observe(self, history: History, t: int, block: int, scores: np.ndarray) -> Reading | None:
        """Return the reading of bar ``t`` of ``history``, or None when it is not evaluated.

        ``block`` is the row of the block's first bar and ``scores`` the
        signal's scores of rows ``block .. t``; no row after ``t`` is read.
        """
        if not self.due(t, block):
            return None
        config, ref = self.config, self.reference
        rows = slice(t - config.window + 1, t + 1)
        bar = int(history.timestamp[t] // self.interval)
        z = (np.asarray(history.z[rows], dtype=np.float64) - ref.mean) / ref.scale
        energy, p_value = energy_test(
            ref.projected, z @ self.projection, config.permutations, [self.seed, bar]
        )
        recent = scores[-config.window :]
        matured = scores[: max(0, len(scores) - self.horizon)][-config.window :]
        closes = history.close[t + 1 - len(matured) - self.horizon : t + 1]
        hits, n = sign_accuracy(matured, closes, self.horizon) if len(matured) else (0, 0)
        accuracy, low, high = float("nan"), float("nan"), float("nan")
        if n >= MIN_MATURED:
            accuracy, (low, high) = hits / n, wilson(hits, n, config.confidence)
        gaps = int((np.diff(history.timestamp[rows]) // self.interval - 1).sum())
        stale = int(((history.volume[rows] == 0) | (history.high[rows] == history.low[rows])).sum())
        volume_ratio = float(np.median(history.volume[rows]) / ref.volume)
        shift = psi(ref.shares, ref.edges, recent)
        alarms = {
            "representation": p_value <= config.p_value,
            "prediction": shift > config.psi,
            "performance": high < ref.accuracy,
            "health": gaps > 0
            or stale > config.max_stale * config.window
            or volume_ratio < config.volume_collapse,
        }
        return Reading(
            energy=energy,
            p_value=p_value,
            psi=shift,
            accuracy=accuracy,
            accuracy_low=low,
            accuracy_high=high,
            reference_accuracy=ref.accuracy,
            gaps=gaps,
            stale=stale,
            volume_ratio=volume_ratio,
            alarms=",".join(kind for kind, on in alarms.items() if on),
            triggered=any(alarms[kind] for kind in config.triggers),
        )

    def scale(self, flat: bool) -> float:
        """Return the multiplier of the target: 0 while ``flatten`` holds (``flat``), else 1."""
        return 0.0 if flat and self.config.policy == "flatten" else 1.0

    def ends_block(self, reading: Reading | None) -> bool:
        """Return whether ``reading`` makes the components refit before the next bar."""
        ends = self.config.policy in ENDING_POLICIES
        return reading is not None and reading.triggered and ends


def flat_after(flat: bool, reading: Reading | None) -> bool:
    """Return whether ``flatten`` holds after a bar: a reading decides, else it carries on."""
    return flat if reading is None else reading.triggered


def readings_table(readings: dict[int, Reading]) -> dict[str, list]:
    """Return readings keyed by bar as columns: ``bar`` and every reading field."""
    bars = sorted(readings)
    rows = [asdict(readings[b]) for b in bars]
    return {"bar": bars} | {name: [row[name] for row in rows] for name in READING_FIELDS}
