"""The tearsheet agrees with the run's figures and with itself."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from engine.report.metrics import format_metric
from engine.report.tearsheet import monthly_returns, rolling_window_days, write_tearsheet

# the tearsheet is written once, on one worker
pytestmark = pytest.mark.xdist_group("tearsheet")


def _daily(days: int, start: str, seed: int, idle_days: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0, 0.02, days)
    returns[:idle_days] = 0.0  # a strategy that waits before its first trade
    return pd.Series(returns, index=pd.date_range(start, periods=days, freq="D"))


def _tables(path) -> dict[str, pd.DataFrame]:
    frames = pd.read_html(io.StringIO(path.read_text(encoding="utf-8")))
    metrics = next(f for f in frames if "Metric" in f.columns).set_index("Metric")
    eoy = next(f for f in frames if "Year" in f.columns).set_index("Year")
    return {"metrics": metrics, "eoy": eoy}


def _percent(text) -> float:
    return float(str(text).rstrip("%")) / 100.0


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    # A strategy idle for its first 40 days: QuantStats' "matched dates" would cut both
    # series to day 41, and the buy and hold return on the page would differ from the run's.
    strategy = _daily(400, "2024-11-01", seed=1, idle_days=40)
    benchmark = _daily(400, "2024-11-01", seed=2)
    metrics = {
        "total_return": float((1 + strategy).prod() - 1),
        "benchmark_return": float((1 + benchmark).prod() - 1),
        "max_drawdown": -0.1234,
        "time_in_market": 0.257,
    }
    path = tmp_path_factory.mktemp("tearsheet") / "tearsheet.html"
    write_tearsheet(strategy, benchmark, path, "demo", metrics, "1h")
    return path, strategy, benchmark, metrics


def test_cumulative_returns_are_the_runs_over_every_day(written):
    path, _, _, metrics = written
    table = _tables(path)["metrics"]
    cumulative = table.loc["Cumulative Return"]
    assert _percent(cumulative["Strategy"]) == pytest.approx(metrics["total_return"], abs=1e-4)
    assert _percent(cumulative["Buy and hold"]) == pytest.approx(
        metrics["benchmark_return"], abs=1e-4
    )
    assert "matched dates" not in path.read_text(encoding="utf-8")


def test_the_end_of_year_table_and_best_year_agree(written):
    path, strategy, benchmark, _ = written
    tables = _tables(path)
    for column, daily in (("Strategy", strategy), ("Buy and hold", benchmark)):
        yearly = (1 + daily).groupby(daily.index.year).prod() - 1
        np.testing.assert_allclose(tables["eoy"][column].to_numpy() / 100, yearly, atol=1e-4)
        best = _percent(tables["metrics"].loc["Best Year", column])
        assert best == pytest.approx(yearly.max(), abs=1e-4)


def test_the_runs_figures_head_the_page_and_daily_figures_are_labelled(written):
    path, _, _, metrics = written
    html = path.read_text(encoding="utf-8")
    figures = pd.read_html(io.StringIO(html), match="max drawdown")[0]
    shown = dict(zip(figures[0], figures[1], strict=True))
    for label, name in (("total return", "total_return"), ("max drawdown", "max_drawdown")):
        assert shown[label] == format_metric(metrics, name)
    assert shown["time in market (bars)"] == "25.7%"
    assert "<td>Max Drawdown (daily closes)</td>" in html
    assert "<td>Time in Market (days)</td>" in html
    assert "\ufe6a" not in html and "<td>CAGR</td>" in html


def test_months_without_days_are_blank_not_zero():
    daily = _daily(45, "2025-03-10", seed=3)
    table = monthly_returns(daily)
    assert list(table.columns) == list(range(1, 13))
    assert table.loc[2025].notna().tolist() == [m in (3, 4) for m in range(1, 13)]
    march = daily[daily.index.month == 3]
    assert table.loc[2025, 3] == pytest.approx((1 + march).prod() - 1, rel=1e-12)


def test_a_short_report_notes_its_rolling_panels_instead_of_drawing_empty_ones(tmp_path):
    daily = _daily(20, "2025-06-01", seed=4)
    path = tmp_path / "short.html"
    figures = {"total_return": 0.0, "benchmark_return": 0.0, "max_drawdown": 0.0}
    write_tearsheet(daily, daily * 0.5, path, "short", figures, "1h")
    html = path.read_text(encoding="utf-8")
    assert f"Rolling panels need more than {rolling_window_days()} days" in html
    assert "this report covers 20." in html
    for panel in ("rolling_vol", "rolling_sharpe", "rolling_sortino"):
        assert f'<div id="{panel}"></div>' in html


def test_a_run_without_trades_gets_a_page_that_says_there_is_nothing_to_chart(tmp_path):
    # No trade: the equity is flat and every daily return is 0, which QuantStats cannot
    # regress on buy and hold.
    flat = pd.Series(0.0, index=pd.date_range("2025-01-01", periods=30, freq="D"))
    figures = {"total_return": 0.0, "benchmark_return": 0.0412, "max_drawdown": 0.0}
    path = tmp_path / "flat.html"
    write_tearsheet(
        flat, _daily(30, "2025-01-01", seed=5), path, "flat", figures | {"trades": 0}, "1h"
    )
    html = path.read_text(encoding="utf-8")
    assert "Nothing to chart: the strategy's daily return was +0.00% on every day" in html
    assert "30 days, 2025-01-01 to 2025-01-30; 0 trades" in html
    shown = pd.read_html(io.StringIO(html), match="max drawdown")[0]
    assert dict(zip(shown[0], shown[1], strict=True))["buy and hold"] == "+4.12%"
