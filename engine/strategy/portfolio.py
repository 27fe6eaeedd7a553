"""Portfolio weights of several assets from their representations."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.cluster import KMeans

from engine.scaling import Standardiser
from engine.strategy.base import FitContext, Portfolio


class ClusterPortfolio(Portfolio):
    """Cluster assets by their representations; equal risk across clusters, equal weight within.

    Each asset is described by its mean representation over the training
    rows (standardised with the statistics of all assets' training rows
    together). k-means splits the assets into ``clusters`` groups. A cluster's
    risk is the volatility of the equal-weighted one-bar log returns of its
    assets over the training rows; clusters get weights inversely proportional
    to it (equal risk), and a cluster's weight is shared equally by its assets.

    Parameters
    ----------
    clusters : int
        Number of clusters (at most the number of assets).
    seed : int
        Seed of k-means.
    """

    def __init__(self, clusters: int = 2, seed: int = 0) -> None:
        if clusters < 1:
            raise ValueError(f"clusters must be >= 1, got {clusters}")
        self.clusters, self.seed = clusters, seed

    def fit(self, contexts: Sequence[FitContext]) -> None:
        """Cluster the assets and weight the clusters by inverse volatility."""
        train = contexts[0].train
        scale = Standardiser.fit(np.vstack([c.past.z[train] for c in contexts]))
        profiles = np.stack([scale(c.past.z[train]).mean(axis=0) for c in contexts])
        k = min(self.clusters, len(contexts))
        labels = KMeans(n_clusters=k, n_init=10, random_state=self.seed).fit_predict(profiles)
        returns = np.stack(
            [np.diff(np.log(c.past.close[max(train.start - 1, 0) : train.stop])) for c in contexts]
        )
        weights = np.zeros(len(contexts))
        members = [np.flatnonzero(labels == c) for c in np.unique(labels)]
        inverse_vol = np.array([1.0 / returns[m].mean(axis=0).std() for m in members])
        for group, budget in zip(members, inverse_vol / inverse_vol.sum(), strict=True):
            weights[group] = budget / len(group)
        self.labels, self._weights = labels, weights

    def weights(self) -> np.ndarray:
        """Return the weight of each asset; they sum to 1."""
        return self._weights
