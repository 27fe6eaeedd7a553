"""The interface every self-supervised encoder implements.

An encoder maps a batch of feature series ``(B, T, F)`` to per-step
representations ``(B, T, D)``. Two methods matter:

- ``forward(x)`` is the inference representation. It is causal: row ``t``
  depends on ``x[:, : t + 1]`` only, and it never masks, drops out or draws
  random numbers, whatever ``self.training`` says. Rows of ``x`` that are all
  NaN are treated as missing steps (how is up to the encoder); otherwise the
  input is finite. An encoder may offer a non-causal mode for whole-series
  benchmarks; its ``causal`` property is then False, and ``engine pretrain``
  and ``engine.ssl.infer`` refuse it.
- ``training_loss(x, generator)`` returns the scalar self-supervised loss on a
  batch of training windows ``(B, T, F)``. Every random draw (crops, masks,
  dropout, augmentations, negatives) comes from ``generator``, so that a run
  is reproducible from its seed and resumes bit-identically from a saved
  generator state.

``receptive_field()`` is the number of bars that can influence one
representation, the bar itself included: the representation of bar ``t`` is a
function of bars ``t - receptive_field() + 1 .. t`` alone (zero-padded hidden
activations before the first bar of the input), so encoding a series in blocks
with that much overlap (``engine.ssl.infer``) reproduces a one-pass run to
float tolerance. ``None`` means unbounded (a recurrent encoder): such an
encoder is always run in one pass over the whole series.

Subclasses set the class attribute ``kind`` (the name used in configs and in
the registry), call ``super().__init__(input_dims, output_dims)``, and return
from ``config()`` the keyword arguments, ``input_dims`` included, that rebuild
them: ``type(m)(**m.config())``. The values must be JSON-serialisable, because
the config is stored in the model card and the weights file.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch
from torch import Tensor


class Encoder(torch.nn.Module, metaclass=abc.ABCMeta):
    """A self-supervised encoder of multivariate series.

    Parameters
    ----------
    input_dims : int
        Number of features per step (``F``).
    output_dims : int
        Size of each step's representation (``D``).
    """

    kind: ClassVar[str]

    def __init__(self, input_dims: int, output_dims: int) -> None:
        super().__init__()
        if input_dims < 1:
            raise ValueError(f"input_dims must be at least 1, got {input_dims}")
        if output_dims < 1:
            raise ValueError(f"output_dims must be at least 1, got {output_dims}")
        self.input_dims = int(input_dims)
        self.output_dims = int(output_dims)

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """Return the JSON-serialisable keyword arguments that rebuild this encoder."""

    @abc.abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """Return the causal representation ``(B, T, D)`` of ``x`` ``(B, T, F)``."""

    @abc.abstractmethod
    def training_loss(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Return the scalar self-supervised loss of a batch of windows ``(B, T, F)``."""

    @property
    def causal(self) -> bool:
        """Return whether ``forward`` is causal; True unless a subclass has a non-causal mode.

        Only causal encoders may be pretrained for markets or encode series bar by bar.
        """
        return True

    @abc.abstractmethod
    def receptive_field(self) -> int | None:
        """Return how many bars, the current one included, can influence a representation.

        ``None`` means unbounded.
        """
