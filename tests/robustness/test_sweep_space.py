"""Bad search spaces: `engine sweep` refuses them with one message, before any trial runs.

A value the strategy schema refuses is found when its trial's strategy file is
written, in the sweep folder; every other fault before the folder exists.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = REPO_ROOT / "sweeps" / "ssl_cost_small.yaml"

CASES = {
    "unknown_key": (lambda t: t + "budget: 3\n", "budget: unknown key"),
    "test_before_validation_ends": (
        lambda t: t.replace("test: {start: 2026-01-01}", "test: {start: 2025-06-01}"),
        "no trial may see the test range",
    ),
    "odd_blocks": (lambda t: t.replace("cscv_blocks: 16", "cscv_blocks: 7"), "even"),
    "path_not_in_strategy": (
        lambda t: t.replace("components.signal.params.exit:", "components.signal.exits:"),
        "the strategy file has no key 'exits'",
    ),
    "value_the_schema_refuses": (
        lambda t: t + "  costs.taker_fee: [-0.001]\n",
        "costs.taker_fee: got -0.001",
    ),
    "not_a_mapping": (lambda t: "- 1\n- 2\n", "expected a mapping"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_bad_space_is_refused_before_any_trial(case, tmp_path, refused, snapshot):
    change, says = CASES[case]
    space = tmp_path / "sweeps" / "bad.yaml"
    space.parent.mkdir()
    space.write_text(change(SHIPPED.read_text()))
    reports = tmp_path / "reports"
    refused(
        "sweep", REPO_ROOT / "strategies" / "ssl_cost.yaml", "--space", space, "--workers", "1",
        "--models-dir", REPO_ROOT / "models", "--reports-dir", reports,
        stored=[space], says=says,
    )  # fmt: skip
    if case != "value_the_schema_refuses":
        assert not reports.exists() or not any(reports.iterdir())
