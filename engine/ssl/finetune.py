"""Fine-tuning a pretrained encoder end to end with a classification head.

``finetune`` trains a copy of an encoder and a small MLP head on labelled
rows of one series, with early stopping on a later validation slice of the
same series, and returns the best state seen on that slice. Three modes:

- ``frozen``: only the head trains (an MLP probe on fixed representations);
- ``partial``: the head and the encoder's last layer with parameters train;
- ``full``: everything trains.

Training crops are ``crop_length`` consecutive rows whose last ``loss_bars``
rows carry the loss: the earlier rows give each labelled row some context, as
a series encoding does. A crop never reaches past the last training row, so
no label of a validation or later row is ever read in training. Validation
rows are encoded with ``engine.ssl.infer.encode_series`` from the rows before
them, exactly as the tuned encoder is applied afterwards. Every random draw
comes from one generator seeded with ``seed``, on one torch thread, so a run
is reproducible.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from engine.ssl.base import Encoder
from engine.ssl.infer import encode_series
from engine.ssl.threads import one_torch_thread

MODES = ("frozen", "partial", "full")


@dataclass(frozen=True)
class FineTuned:
    """A fine-tuned encoder with its head.

    Attributes
    ----------
    encoder : Encoder
        The encoder at the best validation loss, in eval mode.
    head : torch.nn.Module
        The classification head at the same point.
    curve : list of tuple
        ``(iteration, training loss, validation loss)`` at every evaluation.
    best_iteration : int
        The iteration whose state was kept (0: before any step).
    """

    encoder: Encoder
    head: torch.nn.Module
    curve: list[tuple[int, float, float]]
    best_iteration: int

    def probabilities(
        self, features: np.ndarray, bars: np.ndarray | None = None, start: int = 0
    ) -> np.ndarray:
        """Return class probabilities ((T - start) x classes) of rows ``start`` on.

        ``features`` and ``bars`` are as for ``engine.ssl.infer.encode_series``.
        """
        z = encode_series(self.encoder, features, bars, start)
        with one_torch_thread(), torch.inference_mode():
            logits = self.head(torch.from_numpy(z)).double()
            return torch.softmax(logits, dim=1).numpy()


def _trainable(encoder: Encoder, mode: str) -> list[torch.nn.Parameter]:
    # The encoder parameters that train in this mode; the rest are frozen.
    if mode == "frozen":
        chosen: list[torch.nn.Parameter] = []
    elif mode == "full":
        chosen = list(encoder.parameters())
    else:
        layers = [m for m in encoder.modules() if list(m.parameters(recurse=False))]
        chosen = list(layers[-1].parameters(recurse=False)) if layers else []
    keep = {id(p) for p in chosen}
    for parameter in encoder.parameters():
        parameter.requires_grad_(id(parameter) in keep)
    return chosen


def finetune(
    encoder: Encoder,
    features: np.ndarray,
    labels: np.ndarray,
    train_rows: slice,
    validation_rows: slice,
    *,
    bars: np.ndarray | None = None,
    mode: str = "full",
    classes: int = 3,
    hidden: int = 64,
    iters: int = 150,
    batch_size: int = 8,
    crop_length: int = 384,
    loss_bars: int = 128,
    lr: float = 1e-4,
    eval_every: int = 25,
    patience: int = 3,
    seed: int = 0,
) -> FineTuned:
    """Fine-tune a copy of ``encoder`` with an MLP head and return the best state.

    Parameters
    ----------
    encoder : Encoder
        The pretrained encoder; it is copied, never changed.
    features : np.ndarray
        Normalised features (T x F) of consecutive bars of one series.
    labels : np.ndarray
        Integer class per row in ``0 .. classes - 1``; rows used in training
        or validation must be labelled (>= 0).
    train_rows, validation_rows : slice
        Rows whose labels train the model, and later rows whose mean
        cross-entropy chooses the state kept (early stopping).
    bars : np.ndarray, optional
        Absolute bar numbers of the rows (see ``encode_series``).
    mode : {"frozen", "partial", "full"}
        Which encoder parameters train (see the module docstring).
    iters, batch_size, crop_length, loss_bars, lr
        Optimisation: AdamW steps, crops per step, rows per crop, rows of a
        crop that carry the loss, learning rate.
    eval_every, patience
        Validate every ``eval_every`` steps; stop after ``patience``
        validations without improvement.
    seed : int
        Seed of the head's initialisation and of the crops.

    Raises
    ------
    ValueError
        If the mode is unknown, a slice is empty, the validation rows do not
        come after the training rows, or a used row has no label.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    t0, t1 = train_rows.start or 0, train_rows.stop
    v0, v1 = validation_rows.start or 0, validation_rows.stop
    loss_bars = min(loss_bars, crop_length)
    if t1 - t0 < loss_bars or v1 <= v0:
        raise ValueError(
            f"need at least loss_bars={loss_bars} training rows and one validation row, "
            f"got {t1 - t0} and {v1 - v0}"
        )
    if v0 < t1:
        raise ValueError("validation rows must come after the training rows")
    labels = np.asarray(labels, dtype=np.int64)
    if (labels[t0:t1] < 0).any() or (labels[v0:v1] < 0).any():
        raise ValueError("every training and validation row needs a label")
    features = np.ascontiguousarray(features, dtype=np.float32)
    with one_torch_thread():
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        tuned = copy.deepcopy(encoder)
        head = torch.nn.Sequential(
            torch.nn.Linear(tuned.output_dims, hidden),
            torch.nn.GELU(),
            torch.nn.Linear(hidden, classes),
        )
        optimiser = torch.optim.AdamW([*_trainable(tuned, mode), *head.parameters()], lr=lr)
        x_all = torch.from_numpy(features)
        y_all = torch.from_numpy(labels)
        y_val = y_all[v0:v1]

        def validation_loss() -> float:
            z = encode_series(tuned, features[:v1], None if bars is None else bars[:v1], v0)
            with torch.inference_mode():
                logits = head(torch.from_numpy(z))
                return float(torch.nn.functional.cross_entropy(logits, y_val))

        # A crop ends on a training row; its first rows may precede train_rows (context only).
        first_end, last_end = t0 + loss_bars - 1, t1 - 1
        best = (validation_loss(), 0, copy.deepcopy(tuned.state_dict()), copy.deepcopy(head))
        curve: list[tuple[int, float, float]] = [(0, float("nan"), best[0])]
        stale, running = 0, []
        for step in range(1, iters + 1):
            tuned.train(mode != "frozen")
            ends = torch.randint(first_end, last_end + 1, (batch_size,), generator=generator)
            starts = torch.clamp(ends - crop_length + 1, min=0)
            width = int((ends - starts).max()) + 1
            offsets = torch.arange(width)[None, :]
            rows = torch.clamp(ends[:, None] - width + 1 + offsets, min=0)
            logits = head(tuned(x_all[rows])[:, -loss_bars:])
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, classes), y_all[rows[:, -loss_bars:]].reshape(-1)
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            running.append(float(loss.detach()))
            if step % eval_every == 0 or step == iters:
                tuned.eval()
                current = validation_loss()
                curve.append((step, float(np.mean(running)), current))
                running = []
                if current < best[0]:
                    best = (current, step, copy.deepcopy(tuned.state_dict()), copy.deepcopy(head))
                    stale = 0
                else:
                    stale += 1
                    if stale >= patience:
                        break
    tuned.load_state_dict(best[2])
    for parameter in tuned.parameters():
        parameter.requires_grad_(False)
    return FineTuned(encoder=tuned.eval(), head=best[3].eval(), curve=curve, best_iteration=best[1])
