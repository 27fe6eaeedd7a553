"""Config files: valid files load; every malformed file gets one clear message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.config import (
    DataConfig,
    PretrainConfig,
    StrategyConfig,
    load_config,
    schema_for,
)
from engine.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[3]

STRATEGY = textwrap.dedent(
    """\
    name: ssl_cost
    market: {exchange: bybit, market: linear, symbols: [BTCUSDT], timeframe: 1h}
    encoder: ts2vec_btc_1h
    components:
      signal: {class: "engine.strategy.signal:ProbeSignal", params: {horizon: 5}}
      sizing: {class: "engine.strategy.sizing:PrototypeSizing"}
    walk_forward: {fit_bars: 2000, refit_every: 500, embargo_bars: 5}
    out_of_sample: {start: 2025-01-01}
    costs: {maker_fee: 0.0003, taker_fee: 0.0003}
    """
)
PRETRAIN = textwrap.dedent(
    """\
    name: ts2vec_btc_1h
    data: {symbols: [BTCUSDT, ETHUSDT], timeframe: 1h, start: 2023-12-18, end: 2024-12-31}
    encoder: {kind: ts2vec, params: {hidden_dims: 64}}
    training: {batch_size: 8}
    """
)
DATA = textwrap.dedent(
    """\
    store: {gap_policy: error, max_gap_bars: 0}
    series: {exchange: bybit, market: linear, symbols: [BTCUSDT, ETHUSDT], timeframe: 1h}
    range: {start: 2024-01-01}
    """
)


def _write(tmp_path: Path, text: str | bytes, name: str = "file.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def _error(path: Path, schema) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, schema)
    message = str(info.value)
    assert str(path) in message, "every message names the file"
    return message


def test_valid_files_of_every_kind_load(tmp_path):
    strategy = load_config(_write(tmp_path, STRATEGY, "s.yaml"), StrategyConfig)
    pretrain = load_config(_write(tmp_path, PRETRAIN, "p.yaml"), PretrainConfig)
    data = load_config(_write(tmp_path, DATA, "d.yaml"), DataConfig)
    assert strategy.market.symbols == ["BTCUSDT"]
    assert strategy.components.signal.cls == "engine.strategy.signal:ProbeSignal"
    assert strategy.costs.taker_fee == 0.0003
    assert strategy.initial_capital == 100_000.0
    assert pretrain.training.iters is None and pretrain.data.end.isoformat() == "2024-12-31"
    assert data.store.gap_policy == "error" and data.funding is True


def test_loaded_config_is_frozen(tmp_path):
    strategy = load_config(_write(tmp_path, STRATEGY), StrategyConfig)
    with pytest.raises(ValidationError):
        strategy.costs.taker_fee = 0.1


# Each case: a change to a valid file, and the fragments its message must hold
# (key path, value received, what was expected).
STRATEGY_CASES = {
    "wrong_type": (
        ("fit_bars: 2000", "fit_bars: many"),
        ["walk_forward.fit_bars", "'many'", "valid integer"],
    ),
    "unknown_top_level_key": (
        ("name: ssl_cost", "name: ssl_cost\ncolour: red"),
        ["colour: unknown key", "expected one of", "walk_forward"],
    ),
    "unknown_nested_key": (
        ("{maker_fee: 0.0003,", "{maker: 0.0003,"),
        ["costs.maker: unknown key", "maker_fee", "taker_fee"],
    ),
    "missing_key": (
        ("walk_forward: {fit_bars: 2000, refit_every: 500, embargo_bars: 5}\n", ""),
        ["walk_forward: missing", "required"],
    ),
    "missing_nested_key": (
        ('  signal: {class: "engine.strategy.signal:ProbeSignal", params: {horizon: 5}}\n', ""),
        ["components.signal: missing"],
    ),
    "negative_fee": (
        ("taker_fee: 0.0003", "taker_fee: -0.0003"),
        ["costs.taker_fee", "-0.0003", "greater than or equal to 0"],
    ),
    "fee_as_percent": (
        ("maker_fee: 0.0003", "maker_fee: 3"),
        ["costs.maker_fee", "got 3", "less than 0.01"],
    ),
    "symbol_with_dash": (
        ("[BTCUSDT]", "[BTC-USDT]"),
        ["market.symbols[0]", "'BTC-USDT'", "BASEQUOTE"],
    ),
    "symbol_lower_case": (
        ("[BTCUSDT]", "[btcusdt]"),
        ["market.symbols[0]", "'btcusdt'", "upper-case"],
    ),
    "no_symbols": (("[BTCUSDT]", "[]"), ["market.symbols", "got []", "at least 1 item"]),
    "unknown_timeframe": (("timeframe: 1h", "timeframe: 7h"), ["market.timeframe", "'7h'", "4h"]),
    "unknown_exchange": (
        ("exchange: bybit", "exchange: kraken"),
        ["market.exchange", "'kraken'", "'bybit' or 'binance'"],
    ),
    "end_before_start": (
        ("{start: 2025-01-01}", "{start: 2025-01-01, end: 2024-06-30}"),
        ["out_of_sample.end", "2024-06-30", "on or after start (2025-01-01)"],
    ),
    "not_a_date": (
        ("{start: 2025-01-01}", "{start: next tuesday}"),
        ["out_of_sample.start", "'next tuesday'", "valid date"],
    ),
    "bad_component_path": (
        ('"engine.strategy.sizing:PrototypeSizing"', "PrototypeSizing"),
        ["components.sizing.class", "'PrototypeSizing'", "package.module:ClassName"],
    ),
    "non_positive_capital": (
        ("name: ssl_cost", "name: ssl_cost\ninitial_capital: 0"),
        ["initial_capital", "got 0", "greater than 0"],
    ),
    "bad_name": (("name: ssl_cost", "name: ssl cost!"), ["name", "'ssl cost!'", "pattern"]),
    "encoder_and_representation": (
        ("encoder: ts2vec_btc_1h", "encoder: ts2vec_btc_1h\nrepresentation: {kind: features}"),
        ["expected exactly one of 'encoder'", "'representation'"],
    ),
    "unknown_representation_kind": (
        ("encoder: ts2vec_btc_1h", "representation: {kind: umap}"),
        ["representation", "'umap'", "'pca', 'supervised', 'features'"],
    ),
    "representation_missing_a_key": (
        ("encoder: ts2vec_btc_1h", "representation: {kind: pca, window: 0}"),
        ["representation.pca.window", "greater than 0", "representation.pca.fit_end: missing"],
    ),
    "params_not_a_mapping": (
        ("params: {horizon: 5}", "params: [5]"),
        ["components.signal.params", "[5]", "valid dictionary"],
    ),
}


@pytest.mark.parametrize("case", sorted(STRATEGY_CASES))
def test_malformed_strategy_file_names_key_value_and_expectation(tmp_path, case):
    (old, new), fragments = STRATEGY_CASES[case]
    assert old in STRATEGY
    message = _error(_write(tmp_path, STRATEGY.replace(old, new)), StrategyConfig)
    for fragment in fragments:
        assert fragment in message


def test_pretrain_file_with_unknown_encoder_kind(tmp_path):
    path = _write(tmp_path, PRETRAIN.replace("kind: ts2vec", "kind: word2vec"))
    message = _error(path, PretrainConfig)
    assert "encoder.kind" in message and "'word2vec'" in message and "'ts2vec'" in message


def test_pretrain_file_with_zero_batch_size(tmp_path):
    path = _write(tmp_path, PRETRAIN.replace("batch_size: 8", "batch_size: 0"))
    message = _error(path, PretrainConfig)
    assert "training.batch_size" in message and "greater than 0" in message


def test_data_file_with_unknown_gap_policy(tmp_path):
    path = _write(tmp_path, DATA.replace("gap_policy: error", "gap_policy: interpolate"))
    message = _error(path, DataConfig)
    assert "store.gap_policy" in message and "'interpolate'" in message and "'flat'" in message


def test_data_file_with_negative_gap_size(tmp_path):
    message = _error(
        _write(tmp_path, DATA.replace("max_gap_bars: 0", "max_gap_bars: -3")), DataConfig
    )
    assert "store.max_gap_bars" in message and "-3" in message


def test_every_problem_in_a_file_is_listed_in_one_message(tmp_path):
    text = STRATEGY.replace("taker_fee: 0.0003", "taker_fee: -1").replace("7h", "1h")
    text = text.replace("fit_bars: 2000", "fit_bars: x")
    message = _error(_write(tmp_path, text), StrategyConfig)
    assert "costs.taker_fee" in message and "walk_forward.fit_bars" in message


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("name: [unclosed\n", "YAML syntax error at line 2"),
        ("name: a\n  bad: indentation\n", "YAML syntax error at line 2"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not a YAML text file"),
        ("- a\n- list\n", "expected a mapping of keys to values at the top level, got a list"),
        ("just a sentence of prose", "got a str: 'just a sentence of prose'"),
    ],
    ids=["empty", "comment_only", "unclosed_bracket", "bad_indent", "binary", "list", "prose"],
)
def test_file_that_is_not_a_yaml_mapping(tmp_path, content, fragment):
    message = _error(_write(tmp_path, content), StrategyConfig)
    assert fragment in message


def test_missing_file(tmp_path):
    message = _error(tmp_path / "absent.yaml", StrategyConfig)
    assert "no such file" in message


def test_schema_is_taken_from_the_folder(tmp_path):
    assert schema_for(tmp_path / "strategies" / "a.yaml") is StrategyConfig
    assert schema_for(tmp_path / "configs" / "pretrain" / "a.yaml") is PretrainConfig
    assert schema_for(tmp_path / "configs" / "data" / "a.yaml") is DataConfig
    assert schema_for(tmp_path / "elsewhere.yaml", "data") is DataConfig
    with pytest.raises(ConfigError, match="cannot tell what kind.*--kind"):
        schema_for(tmp_path / "elsewhere.yaml")
    with pytest.raises(ConfigError, match="unknown kind of config 'strat'"):
        schema_for(tmp_path / "elsewhere.yaml", "strat")


def test_cli_prints_one_message_without_traceback_and_exits_non_zero(tmp_path, run_cli):
    path = _write(tmp_path, STRATEGY.replace("taker_fee: 0.0003", "taker_fee: -0.0003"))
    result = run_cli("validate", path, "--kind", "strategy")
    assert result.exit_code == 2
    assert "costs.taker_fee" in result.stderr and "-0.0003" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_debug_flag_lets_the_error_raise_with_its_traceback(tmp_path, run_cli):
    path = _write(tmp_path, "")
    with pytest.raises(ConfigError, match="the file is empty"):
        run_cli("--debug", "validate", path, "--kind", "strategy")


def test_cli_accepts_a_valid_file(tmp_path, run_cli):
    folder = tmp_path / "strategies"
    folder.mkdir()
    shipped = (REPO_ROOT / "strategies" / "ssl_cost.yaml").read_text()
    result = run_cli("validate", _write(folder, shipped), "--models-dir", REPO_ROOT / "models")
    assert result.exit_code == 0 and "valid" in result.stdout


def test_cli_refuses_a_strategy_whose_component_module_does_not_exist(tmp_path, run_cli):
    folder = tmp_path / "strategies"
    folder.mkdir()
    result = run_cli("validate", _write(folder, STRATEGY), "--models-dir", REPO_ROOT / "models")
    assert result.exit_code == 2 and "no model 'ts2vec_btc_1h'" in result.stderr
