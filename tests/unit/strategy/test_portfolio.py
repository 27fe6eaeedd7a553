"""Cluster portfolio: k-means on representations, equal risk across clusters."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import ConfigError
from engine.runner.schedule import RefitSchedule
from engine.runner.walkforward import portfolio_weights
from engine.strategy.base import FitContext, History, load_component
from engine.strategy.portfolio import ClusterPortfolio

from .conftest import COSTS, make_history, with_future_changed


def _asset(seed: int, centre: float, vol: float) -> History:
    base = make_history(n=1200, seed=seed)
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(scale=vol, size=1200)))
    z = base.z + centre
    return History(base.timestamp, close, close, close, close, base.volume, z)


def test_assets_with_similar_representations_share_a_cluster_and_risk_is_equal():
    assets = [_asset(1, 0.0, 0.01), _asset(2, 0.0, 0.01), _asset(3, 5.0, 0.03)]
    portfolio = ClusterPortfolio(clusters=2)
    portfolio.fit([FitContext(a, slice(100, 1100), COSTS) for a in assets])
    labels = portfolio.labels
    assert labels[0] == labels[1] != labels[2]
    weights = portfolio.weights()
    assert weights.sum() == pytest.approx(1.0)
    assert weights[0] == pytest.approx(weights[1])
    # The lone, three-times more volatile asset gets about a third of the pair's risk budget.
    pair_vol = np.diff(np.log(np.vstack([a.close for a in assets[:2]])), axis=1).mean(0).std()
    lone_vol = np.diff(np.log(assets[2].close)).std()
    ratio = (weights[0] + weights[1]) / weights[2]
    assert ratio == pytest.approx(lone_vol / pair_vol, rel=0.05)


def test_one_cluster_gives_equal_weights():
    assets = [_asset(s, 0.0, 0.01) for s in range(4)]
    portfolio = ClusterPortfolio(clusters=1)
    portfolio.fit([FitContext(a, slice(100, 1100), COSTS) for a in assets])
    np.testing.assert_allclose(portfolio.weights(), 0.25)


def test_weights_up_to_t_ignore_bars_after_t():
    assets = [make_history(seed=s) for s in range(3)]
    changed = [with_future_changed(a, 1234, seed=50 + i) for i, a in enumerate(assets)]
    before = portfolio_weights(
        assets, ClusterPortfolio(2), RefitSchedule(1000, 600, 100, 5), 1450, COSTS
    )
    after = portfolio_weights(
        changed, ClusterPortfolio(2), RefitSchedule(1000, 600, 100, 5), 1450, COSTS
    )
    np.testing.assert_array_equal(before[: 1234 - 1000 + 1], after[: 1234 - 1000 + 1])
    assert not np.array_equal(before, after)
    np.testing.assert_allclose(before.sum(axis=1), 1.0)


def test_portfolio_is_loaded_by_name_in_its_role():
    portfolio = load_component("engine.strategy.portfolio:ClusterPortfolio", {}, "portfolio")
    assert isinstance(portfolio, ClusterPortfolio)
    with pytest.raises(ConfigError, match="is a portfolio component; expected a signal"):
        load_component("engine.strategy.portfolio:ClusterPortfolio", {}, "signal")
