"""The generic self-supervised training loop.

``train`` fits any ``Encoder`` on a set of series the way the TS2Vec
reference implementation fits TS2Vec:

- each series longer than ``2 * max_train_length`` steps is split into
  ``T // max_train_length`` consecutive sections of near-equal length;
- batches of ``min(batch_size, sections)`` sections are drawn without
  replacement, in a new random order each epoch, the incomplete last batch
  of an epoch dropped; from each section a window of
  ``min(max_train_length, shortest section)`` steps is taken at a random
  offset (the encoder draws its own crops and masks inside ``training_loss``);
- AdamW at ``lr``; after every step a running equal-weight average of the
  weights (``torch.optim.swa_utils.AveragedModel``, which starts from the
  initial weights) is updated, and the averaged weights are the ones returned
  for encoding;
- ``paper_iterations`` gives the paper's default: 200 iterations when the data
  holds at most 100,000 values, else 600.

All randomness comes from one ``torch.Generator`` seeded with ``seed``. Every
``checkpoint_every`` iterations, and after the last, the model, the averaged
model, the optimiser, the generator state, the epoch order and the loss curve
are written to ``checkpoint_dir`` (safetensors + JSON, see
``engine.ssl.checkpoint``). A run started again with ``resume=True`` continues
from the last checkpoint and ends with the same weights, bit for bit, as a run
that was never interrupted (on the same machine and thread count).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel

from engine.errors import ConfigError
from engine.ssl.base import Encoder
from engine.ssl.checkpoint import load_tensors, save_tensors

CHECKPOINT_FILE = "checkpoint.safetensors"

Progress = Callable[[int, int, float], None]


def paper_iterations(values: int) -> int:
    """Return the paper's number of iterations for data holding ``values`` numbers."""
    return 200 if values <= 100_000 else 600


@dataclass(frozen=True)
class TrainResult:
    """The outcome of ``train``.

    Attributes
    ----------
    encoder : Encoder
        A copy of the encoder holding the averaged weights, in eval mode.
    losses : list of float
        The training loss of every iteration.
    seconds : float
        Training time in seconds, summed over interrupted and resumed runs.
    resumed_from : int or None
        The iteration the run resumed from, or None for a fresh run.
    """

    encoder: Encoder
    losses: list[float]
    seconds: float
    resumed_from: int | None


def make_sections(series: Sequence[np.ndarray], max_train_length: int) -> list[torch.Tensor]:
    """Split each series (T x F) into ``max(1, T // max_train_length)`` consecutive sections."""
    sections = []
    for values in series:
        values = np.asarray(values, dtype=np.float32)
        parts = max(1, values.shape[0] // max_train_length)
        sections.extend(torch.from_numpy(part.copy()) for part in np.array_split(values, parts))
    return sections


def train(
    encoder: Encoder,
    series: Sequence[np.ndarray],
    *,
    iters: int,
    batch_size: int = 8,
    lr: float = 0.001,
    max_train_length: int = 3000,
    seed: int = 0,
    checkpoint_dir: Path | None = None,
    checkpoint_every: int = 50,
    resume: bool = True,
    progress: Progress | None = None,
) -> TrainResult:
    """Train ``encoder`` in place on ``series`` and return the averaged encoder.

    Parameters
    ----------
    encoder : Encoder
        The encoder, freshly initialised; its weights are updated in place.
    series : sequence of np.ndarray
        Training series, each T_i x F (already normalised); NaN rows are missing steps.
    iters : int
        Number of optimiser steps.
    batch_size, lr, max_train_length : int, float, int
        As described in the module docstring.
    seed : int
        Seed of the generator behind every random draw of training.
    checkpoint_dir : Path or None
        Folder of the checkpoint; None disables checkpointing and resuming.
    checkpoint_every : int
        Iterations between checkpoints.
    resume : bool
        Continue from the checkpoint in ``checkpoint_dir`` when there is one.
    progress : callable or None
        Called as ``progress(iteration, iters, loss)`` after each iteration
        (and after its checkpoint, if any).

    Raises
    ------
    ConfigError
        If there is no data, or the checkpoint to resume was made by a
        different run (other data, encoder or settings).
    """
    for label, value, least in (
        ("iters", iters, 1),
        ("batch_size", batch_size, 1),
        ("checkpoint_every", checkpoint_every, 1),
        ("max_train_length", max_train_length, 2),
    ):
        if value < least:
            raise ValueError(f"{label} must be at least {least}, got {value}")
    sections = make_sections(series, max_train_length)
    if not sections or min(len(s) for s in sections) < 2:
        raise ConfigError("no training data: every series needs at least 2 steps")
    window = min(max_train_length, min(len(s) for s in sections))
    per_batch = min(batch_size, len(sections))
    run = {
        "encoder": {"kind": encoder.kind, **encoder.config()},
        "data_sha256": _fingerprint(sections),
        "iters": iters,
        "batch_size": batch_size,
        "lr": lr,
        "max_train_length": max_train_length,
        "seed": seed,
    }

    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=lr)
    averaged = AveragedModel(encoder)
    averaged.update_parameters(encoder)
    order = torch.randperm(len(sections), generator=generator)
    position, losses, seconds, start, resumed_from = 0, [], 0.0, 0, None

    path = checkpoint_dir / CHECKPOINT_FILE if checkpoint_dir is not None else None
    if path is not None and resume and path.is_file():
        tensors, state = load_tensors(path)
        if state["run"] != run:
            raise ConfigError(
                f"{path}: this checkpoint belongs to a different run "
                f"(data, encoder or training settings changed); start afresh without resuming"
            )
        _restore(tensors, state, encoder, averaged, optimizer, generator)
        order, position = tensors["order"], state["position"]
        losses, seconds, start = state["losses"], state["seconds"], state["iteration"]
        resumed_from = start

    encoder.train()
    for iteration in range(start, iters):
        began = time.perf_counter()
        if position + per_batch > len(sections):
            order, position = torch.randperm(len(sections), generator=generator), 0
        chosen = order[position : position + per_batch].tolist()
        position += per_batch
        batch = torch.stack([_random_window(sections[i], window, generator) for i in chosen])
        optimizer.zero_grad()
        loss = encoder.training_loss(batch, generator)
        loss.backward()
        optimizer.step()
        averaged.update_parameters(encoder)
        losses.append(loss.item())
        seconds += time.perf_counter() - began
        done = iteration + 1
        if path is not None and (done % checkpoint_every == 0 or done == iters):
            state = {
                "run": run,
                "iteration": done,
                "position": position,
                "losses": losses,
                "seconds": seconds,
                "param_groups": optimizer.state_dict()["param_groups"],
            }
            save_tensors(path, _tensors(encoder, averaged, optimizer, generator, order), state)
        if progress is not None:
            progress(done, iters, losses[-1])

    result = averaged.module
    result.eval()
    return TrainResult(encoder=result, losses=losses, seconds=seconds, resumed_from=resumed_from)


def _random_window(section: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    offset = int(torch.randint(0, len(section) - length + 1, (1,), generator=generator))
    return section[offset : offset + length]


def _fingerprint(sections: list[torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for section in sections:
        digest.update(json.dumps(list(section.shape)).encode())
        digest.update(section.numpy().tobytes())
    return digest.hexdigest()


def _tensors(
    encoder: Encoder,
    averaged: AveragedModel,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    order: torch.Tensor,
) -> dict[str, torch.Tensor]:
    tensors = {f"model.{k}": v for k, v in encoder.state_dict().items()}
    tensors.update({f"averaged.{k}": v for k, v in averaged.state_dict().items()})
    for index, slots in optimizer.state_dict()["state"].items():
        tensors.update({f"optimizer.{index}.{name}": value for name, value in slots.items()})
    tensors["generator"] = generator.get_state()
    tensors["order"] = order
    return tensors


def _restore(
    tensors: dict[str, torch.Tensor],
    state: dict[str, Any],
    encoder: Encoder,
    averaged: AveragedModel,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
) -> None:
    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    encoder.load_state_dict(part("model."))
    averaged.load_state_dict(part("averaged."))
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in part("optimizer.").items():
        index, name = key.split(".", 1)
        slots.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": slots, "param_groups": state["param_groups"]})
    generator.set_state(tensors["generator"])
