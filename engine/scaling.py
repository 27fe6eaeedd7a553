"""Per-dimension z-scoring: the one place features and representations are standardised."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Standardiser:
    """Subtract a mean and divide by a standard deviation, per dimension.

    Attributes
    ----------
    mean, std : np.ndarray
        The statistics of each dimension; ``std`` is positive.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, rows: np.ndarray) -> Standardiser:
        """Return the standardiser of ``rows`` (N x D); a constant dimension is only centred."""
        std = rows.std(axis=0)
        return cls(rows.mean(axis=0), np.where(std > 0, std, 1.0))

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Return ``values`` standardised, as float64."""
        return (np.asarray(values, dtype=np.float64) - self.mean) / self.std
