"""Check TS2Vec against the paper's UCR classification protocol.

For each seed: train TS2Vec (output 320, hidden 64, depth 10, AdamW lr 0.001,
batch 8, 200 iterations when the training set holds <= 100,000 values, else
600, max_train_length 3000) on the training split, normalised as the
reference implementation normalises it (below); encode every series with the
averaged weights and max-pool the representations over time into one vector;
fit an SVM with RBF kernel, with a 5-fold grid search over C as the reference
implementation does (C = inf without search when the training set is too
small); report test accuracy.

By default the encoder is the paper's: convolutions padded on both sides, so
each step's representation sees the whole series (``TS2Vec(causal=False)``).
With ``--causal`` it is the encoder the engine pretrains for markets: causal
convolutions in training and encoding. Either way the whole series is encoded
in one pass and pooled over time.

Normalisation follows the reference implementation's loaders. A univariate
(UCR) dataset is left as it is, its series being z-normalised one by one in
the archive, except for the datasets added to the archive in 2018 without
that normalisation (``UNNORMALISED_UCR``): those are z-normalised with the
mean and standard deviation of all values of the training split. A
multivariate (UEA) dataset is standardised channel by channel with the
training split's statistics. Series of unequal length are padded with
missing steps at the end; for training, each is moved to the middle of its
row (the missing steps split evenly before and after it), as the reference
does, so that random crops do not mostly meet padding at one end.

Datasets come from the ``aeon`` package, which ships some offline (GunPoint,
ItalyPowerDemand, ArrowHead, OSULeaf, ACSF1, JapaneseVowels, BasicMotions,
...); others are refused rather than downloaded. Run::

    python benchmarks/ucr.py --dataset GunPoint --seeds 42 43 44

The last line is ``accuracy: X.XXXX``, the mean over seeds.
"""

from __future__ import annotations

import os

# Before torch loads: see engine/ssl/__init__.py.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import aeon.datasets  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from aeon.datasets import load_classification  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

from engine.ssl.train import paper_iterations, train  # noqa: E402
from engine.ssl.ts2vec import TS2Vec  # noqa: E402

SVM_C = [0.0001, 0.001, 0.01, 0.1, 1, 10, 100, 1000, 10000, np.inf]
#: UCR datasets of the 2018 archive whose series are not z-normalised in the archive.
UNNORMALISED_UCR = frozenset(
    {
        "AllGestureWiimoteX",
        "AllGestureWiimoteY",
        "AllGestureWiimoteZ",
        "BME",
        "Chinatown",
        "Crop",
        "EOGHorizontalSignal",
        "EOGVerticalSignal",
        "Fungi",
        "GestureMidAirD1",
        "GestureMidAirD2",
        "GestureMidAirD3",
        "GesturePebbleZ1",
        "GesturePebbleZ2",
        "GunPointAgeSpan",
        "GunPointMaleVersusFemale",
        "GunPointOldVersusYoung",
        "HouseTwenty",
        "InsectEPGRegularTrain",
        "InsectEPGSmallTrain",
        "MelbournePedestrian",
        "PickupGestureWiimoteZ",
        "PigAirwayPressure",
        "PigArtPressure",
        "PigCVP",
        "PLAID",
        "PowerCons",
        "Rock",
        "SemgHandGenderCh2",
        "SemgHandMovementCh2",
        "SemgHandSubjectCh2",
        "ShakeGestureWiimoteZ",
        "SmoothSubspace",
        "UMD",
    }
)


def load(dataset: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return train and test series (N x T x C, normalised as the reference does) and labels."""
    shipped = Path(aeon.datasets.__file__).parent / "data"
    if not (shipped / dataset).is_dir():
        names = sorted(p.name for p in shipped.iterdir() if p.is_dir())
        raise SystemExit(
            f"{dataset} is not shipped with aeon; offline datasets: {', '.join(names)}"
        )
    x_train, y_train = load_classification(dataset, split="train")
    x_test, y_test = load_classification(dataset, split="test")
    x_train, x_test = _padded(x_train), _padded(x_test)
    if x_train.shape[2] > 1:
        mean, std = np.nanmean(x_train, axis=(0, 1)), np.nanstd(x_train, axis=(0, 1))
    elif dataset in UNNORMALISED_UCR:
        mean, std = np.nanmean(x_train), np.nanstd(x_train)
    else:
        return x_train, y_train, x_test, y_test
    return (x_train - mean) / std, y_train, (x_test - mean) / std, y_test


def centred(x: np.ndarray) -> np.ndarray:
    """Return the series (N x T x C) moved so that their missing steps split evenly around them."""
    present = ~np.isnan(x).all(axis=2)
    out = np.full_like(x, np.nan)
    for i, row in enumerate(present):
        steps = np.flatnonzero(row)
        if steps.size == 0:
            continue
        first, last = steps[0], steps[-1] + 1
        start = (first + x.shape[1] - last) // 2
        out[i, start : start + last - first] = x[i, first:last]
    return out


def _padded(series) -> np.ndarray:
    # aeon gives equal-length data as one (N, C, T) array and unequal-length
    # data as a list of (C, T_i) arrays; return (N, T, C) with NaN after the
    # end of shorter series (NaN steps are missing steps to the encoder).
    if isinstance(series, np.ndarray):
        return series.astype(np.float64).transpose(0, 2, 1)
    length = max(s.shape[1] for s in series)
    out = np.full((len(series), length, series[0].shape[0]), np.nan)
    for i, s in enumerate(series):
        out[i, : s.shape[1]] = s.T
    return out


def pooled_representations(encoder: TS2Vec, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Return one vector per series: the representations max-pooled over time."""
    encoder.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            batch = torch.from_numpy(x[start : start + batch_size].astype(np.float32))
            out.append(encoder(batch).amax(dim=1).numpy())
    return np.concatenate(out)


def fit_svm(features: np.ndarray, labels: np.ndarray) -> SVC:
    """Fit the reference implementation's SVM: RBF kernel, C chosen by 5-fold search."""
    classes = np.unique(labels).size
    svm = SVC(C=np.inf, gamma="scale")
    if len(labels) // classes < 5 or len(labels) < 50:
        return svm.fit(features, labels)
    search = GridSearchCV(SVC(kernel="rbf", gamma="scale"), {"C": SVM_C}, cv=5, n_jobs=1)
    return search.fit(features, labels).best_estimator_


def run_seed(seed: int, data: tuple, causal: bool) -> tuple[float, float, float, int]:
    """Train, encode and classify once.

    Return the accuracy, the training time in wall-clock and in CPU seconds
    (all threads), and the number of iterations.
    """
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(seed)
    encoder = TS2Vec(input_dims=x_train.shape[2], causal=causal)
    iters = paper_iterations(x_train.size)
    cpu = time.process_time()
    result = train(
        encoder,
        list(centred(x_train)),
        iters=iters,
        batch_size=8,
        lr=0.001,
        max_train_length=3000,
        seed=seed,
    )
    cpu = time.process_time() - cpu
    svm = fit_svm(pooled_representations(result.encoder, x_train), y_train)
    accuracy = float(svm.score(pooled_representations(result.encoder, x_test), y_test))
    return accuracy, result.seconds, cpu, iters


def main() -> None:
    """Run the benchmark and print per-seed figures, then the mean accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="GunPoint")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    # One thread: on 2 shared cores it trained faster than two (GunPoint 0.12-0.13
    # against 0.17-0.20 s per iteration), the batches being small.
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1).")
    parser.add_argument(
        "--causal", action="store_true", help="Use causal convolutions (the engine's encoder)."
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load(args.dataset)
    print(
        f"{args.dataset}: train {data[0].shape}, test {data[2].shape}, "
        f"{'causal' if args.causal else 'paper (non-causal)'} encoder, "
        f"{args.threads} threads, torch {torch.__version__}"
    )
    accuracies = []
    for seed in args.seeds:
        began = time.perf_counter()
        accuracy, seconds, cpu, iters = run_seed(seed, data, args.causal)
        accuracies.append(accuracy)
        print(
            f"seed {seed}: accuracy {accuracy:.4f}, training {seconds:.1f} s, "
            f"{seconds / iters:.4f} s/iteration ({iters} iterations), "
            f"CPU {cpu / iters:.4f} s/iteration, "
            f"total {time.perf_counter() - began:.1f} s"
        )
    print(f"accuracy: {np.mean(accuracies):.4f}")


if __name__ == "__main__":
    main()
