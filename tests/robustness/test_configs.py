"""Hostile and malformed strategy files: refused by `engine validate` and `engine run` alike,
quickly, before any candle is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.safe_yaml import MAX_BYTES

COMMANDS = ["validate", "run"]
MODELS = Path(__file__).resolve().parents[2] / "models"
SHIPPED = "ssl_cost.yaml"
SIGNAL = "engine.strategy.components:ProbeSignal"


def _swap(old: str, new: str):
    def change(text: str) -> str:
        assert old in text
        return text.replace(old, new, 1)

    return change


def _add(line: str):
    return lambda text: text + line


def _billion_laughs() -> str:
    text = 'lol: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        text += f"l{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
    return text


def _doubling_aliases() -> str:
    return "a0: &a0 [x, x]\n" + "".join(
        f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n" for i in range(1, 45)
    )


YAML_CASES = {
    "yaml_billion_laughs": (lambda shipped: shipped + _billion_laughs(), "aliases expand"),
    "yaml_doubling_aliases": (lambda shipped: shipped + _doubling_aliases(), "aliases expand"),
    "yaml_too_many_aliases": (
        lambda shipped: shipped + "x: &x 1\ny: [" + ", ".join(["*x"] * 500) + "]\n",
        "aliases",
    ),
    "yaml_self_containing_alias": (lambda shipped: shipped + "x: &x [1, *x]\n", "contains it"),
    "yaml_deeply_nested_flow": (
        lambda shipped: shipped + "x: " + "[" * 50_000 + "]" * 50_000 + "\n",
        "nesting deeper",
    ),
    "yaml_deeply_nested_mappings": (
        lambda shipped: (
            shipped
            + "x:\n"
            + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(300))
            + "  " * 301
            + "v: 1\n"
        ),
        "nesting deeper",
    ),
    "yaml_oversized_file": (
        lambda shipped: shipped + "# " + "x" * MAX_BYTES + "\n",
        "expected a YAML file of at most",
    ),
    "duplicate_costs_key_with_zero_fees": (
        lambda shipped: shipped + "costs: {maker_fee: 0.0, taker_fee: 0.0}\n",
        "key 'costs' is given twice",
    ),
    "duplicate_key_inside_a_mapping": (
        lambda shipped: shipped.replace("horizon: 5,", "horizon: 5, horizon: 50,", 1),
        "key 'horizon' is given twice",
    ),
    "duplicate_encoder_key": (
        lambda shipped: shipped + "encoder: cost_bybit_1h\n",
        "key 'encoder' is given twice",
    ),
    "yaml_python_object_tag": (
        lambda shipped: shipped + "x: !!python/object/apply:os.system ['true']\n",
        "YAML syntax error",
    ),
    "yaml_two_documents": (lambda shipped: shipped + "---\nname: other\n", "YAML syntax error"),
    "yaml_tab_indentation": (lambda shipped: shipped + "x:\n\t- 1\n", "YAML syntax error"),
    "yaml_unclosed_flow": (lambda shipped: shipped + "x: [1, 2\n", "YAML syntax error"),
    "yaml_binary_data": (lambda shipped: shipped + "x: \x00\x01\n", "binary data"),
    "yaml_top_level_list": (lambda shipped: "- a\n- b\n", "expected a mapping"),
    "yaml_top_level_string": (lambda shipped: "just a string\n", "expected a mapping"),
    "yaml_empty_file": (lambda shipped: "", "the file is empty"),
    "yaml_only_comments": (lambda shipped: "# nothing\n", "the file is empty"),
}

CONFIG_CASES = {
    "abstract_component_base_class": (
        _swap(SIGNAL, "engine.strategy.base:Component"),
        "abstract base class",
    ),
    "abstract_signal_base_class": (
        _swap(SIGNAL, "engine.strategy.base:Signal"),
        "abstract base class",
    ),
    "os_system_as_a_component": (
        _swap(SIGNAL, "os:system"),
        "not a strategy component",
    ),
    "builtin_class_as_a_component": (
        _swap(SIGNAL, "builtins:dict"),
        "not a strategy component",
    ),
    "component_module_that_does_not_exist": (
        _swap(SIGNAL, "engine.nowhere:Probe"),
        "cannot import module",
    ),
    "component_class_that_does_not_exist": (
        _swap("components:ProbeSignal", "components:NoSignal"),
        "not a strategy component",
    ),
    "component_of_another_role": (
        _swap("components:ProbeSignal", "components:AnomalyRisk"),
        "is a risk component; expected a signal component",
    ),
    "component_parameter_of_the_wrong_type": (
        _swap("horizon: 5, threshold", "horizon: five, threshold"),
        "components.signal.params.horizon: got 'five' (str); expected int",
    ),
    "component_parameter_quoted_number": (
        _swap("max_wait: 3", "max_wait: '3'"),
        "components.timing.params.max_wait: got '3' (str); expected int",
    ),
    "component_parameter_list_for_a_number": (
        _swap("threshold: 6.0", "threshold: [6.0]"),
        "components.risk.params.threshold",
    ),
    "component_parameter_unknown": (
        _swap("horizon: 5, threshold", "horizons: 5, threshold"),
        "unexpected keyword argument 'horizons'",
    ),
    "component_parameter_out_of_range": (
        _swap("horizon: 5, threshold", "horizon: 0, threshold"),
        "horizon must be >= 1",
    ),
    "component_parameter_unknown_choice": (
        _swap("probe: linear", "probe: forest"),
        "probe must be 'linear' or 'mlp'",
    ),
    "component_class_path_with_code": (
        _swap(SIGNAL, "os:system('touch /tmp/owned')"),
        "import path of the form",
    ),
    "missing_encoder": (
        _swap("encoder: cost_bybit_1h", "encoder: ts2vec_missing"),
        "no model 'ts2vec_missing'",
    ),
    "encoder_name_escaping_the_models_folder": (
        _swap("encoder: cost_bybit_1h", "encoder: ../models/cost_bybit_1h"),
        "encoder",
    ),
    "encoder_name_dot_dot": (
        _swap("encoder: cost_bybit_1h", "encoder: '..'"),
        "encoder",
    ),
    "out_of_sample_inside_the_pretraining_range": (
        _swap("out_of_sample: {start: 2025-01-01}", "out_of_sample: {start: 2024-06-01}"),
        "overlaps the pretraining range",
    ),
    "infinite_initial_capital": (
        _swap("initial_capital: 100000", "initial_capital: .inf"),
        "initial_capital",
    ),
    "huge_initial_capital": (
        _swap("initial_capital: 100000", "initial_capital: 1e308"),
        "initial_capital",
    ),
    "nan_initial_capital": (
        _swap("initial_capital: 100000", "initial_capital: .nan"),
        "initial_capital",
    ),
    "negative_initial_capital": (
        _swap("initial_capital: 100000", "initial_capital: -5"),
        "initial_capital",
    ),
    "string_initial_capital": (
        _swap("initial_capital: 100000", "initial_capital: lots"),
        "initial_capital",
    ),
    "infinite_slippage": (
        _swap("slippage_bps: 1.0", "slippage_bps: .inf"),
        "costs.slippage_bps",
    ),
    "nan_fee": (_swap("maker_fee: 0.0003", "maker_fee: .nan"), "costs.maker_fee"),
    "infinite_qty_step": (
        _swap("qty_step: 0.001", "qty_step: .inf"),
        "rules.BTCUSDT.qty_step",
    ),
    "strategy_name_with_a_separator": (
        _swap("name: ssl_cost", "name: ../escaped"),
        "name",
    ),
    "strategy_name_with_a_backslash": (
        _swap("name: ssl_cost", "name: 'a\\\\b'"),
        "name",
    ),
    "strategy_name_dot_dot": (_swap("name: ssl_cost", "name: '..'"), "name"),
    "portfolio_of_one_symbol": (
        lambda s: s.replace(
            "components:\n",
            'components:\n  portfolio: {class: "engine.strategy.portfolio:ClusterPortfolio"}\n',
        ),
        "a portfolio needs at least two",
    ),
    "unknown_top_level_key": (_add("leverage: 100\n"), "unknown key"),
    "symbol_with_a_path": (_swap("symbols: [BTCUSDT]", "symbols: [../BTC]"), "symbol"),
}


def _write(strategies, change) -> object:
    path = strategies / SHIPPED
    path.write_text(change(path.read_text()), encoding="utf-8")
    return path


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", sorted(YAML_CASES))
def test_hostile_yaml_is_refused_quickly(case, command, refused, strategies, tmp_path):
    change, says = YAML_CASES[case]
    path = _write(strategies, change)
    args = [command, path, "--models-dir", MODELS]
    if command == "run":
        args += ["--reports-dir", tmp_path / "reports"]
    refused(*args, stored=[strategies], says=says, bound=2.0)
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_config_that_a_run_would_reject_is_refused_by_validate_too(
    case, command, refused, strategies, tmp_path
):
    change, says = CONFIG_CASES[case]
    path = _write(strategies, change)
    args = [command, path, "--models-dir", MODELS]
    if command == "run":
        args += ["--reports-dir", tmp_path / "reports"]
    refused(*args, stored=[strategies], says=says, bound=2.0)
    assert not (tmp_path / "reports").exists()


def test_duplicate_costs_key_names_the_key_and_both_lines(refused, strategies):
    path = _write(strategies, YAML_CASES["duplicate_costs_key_with_zero_fees"][0])
    lines = path.read_text().splitlines()
    first = lines.index(next(line for line in lines if line.startswith("costs:"))) + 1
    result = refused("validate", path, "--models-dir", MODELS)
    assert f"key 'costs' is given twice (lines {first} and {len(lines)})" in result.stderr


def test_shipped_strategies_are_valid(run_cli, strategies):
    for path in sorted(strategies.glob("*.yaml")):
        result = run_cli("validate", path)
        assert result.exit_code == 0, result.stderr
