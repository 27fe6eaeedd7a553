"""The bounded YAML reader: plain documents load; bombs, deep nesting, huge files and
repeated keys are refused quickly with a message naming the problem."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.safe_yaml import MAX_ALIASES, MAX_BYTES, MAX_DEPTH, load_yaml


def _load(tmp_path: Path, text: str):
    path = tmp_path / "file.yaml"
    path.write_text(text, encoding="utf-8")
    return load_yaml(path)


def _refusal(tmp_path: Path, text: str) -> str:
    clock = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert time.perf_counter() - clock < 1.0
    return str(info.value)


def test_plain_document_with_a_few_aliases_and_a_merge_loads(tmp_path):
    text = "base: &b {x: 1, y: 2}\nuse: *b\nmerged:\n  <<: *b\n  x: 3\n"
    assert _load(tmp_path, text) == {
        "base": {"x": 1, "y": 2},
        "use": {"x": 1, "y": 2},
        "merged": {"x": 3, "y": 2},
    }


def test_billion_laughs_is_refused_by_its_expansion(tmp_path):
    text = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        text += f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
    assert "aliases expand to more than" in _refusal(tmp_path, text)


def test_doubling_aliases_under_the_alias_budget_are_refused_by_their_expansion(tmp_path):
    text = "a0: &a0 [x, x]\n" + "".join(
        f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n" for i in range(1, 40)
    )
    assert "aliases expand to more than" in _refusal(tmp_path, text)


def test_too_many_aliases_are_refused(tmp_path):
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n"
    assert f"more than {MAX_ALIASES} aliases" in _refusal(tmp_path, text)


def test_deep_flow_nesting_is_refused_without_recursion_error(tmp_path):
    text = "a: " + "[" * 20_000 + "]" * 20_000 + "\n"
    assert f"nesting deeper than {MAX_DEPTH} levels" in _refusal(tmp_path, text)


def test_deep_block_nesting_is_refused_with_its_line(tmp_path):
    text = "".join("  " * i + f"k{i}:\n" for i in range(100)) + "  " * 100 + "v: 1\n"
    assert f"nesting deeper than {MAX_DEPTH} levels (line {MAX_DEPTH})" in _refusal(tmp_path, text)


def test_self_containing_alias_is_refused(tmp_path):
    assert "contains it" in _refusal(tmp_path, "a: &a [1, *a]\n")


def test_file_above_the_size_limit_is_refused_before_it_is_parsed(tmp_path):
    assert f"at most {MAX_BYTES:,} bytes" in _refusal(tmp_path, "a: " + "x" * MAX_BYTES + "\n")


def test_second_costs_key_is_refused_naming_the_key_and_both_lines(tmp_path):
    text = "name: x\ncosts:\n  maker_fee: 0.0003\ncosts:\n  maker_fee: 0\n"
    message = _refusal(tmp_path, text)
    assert "key 'costs' is given twice (lines 2 and 4)" in message


def test_repeated_key_in_a_flow_mapping_is_refused(tmp_path):
    assert "key 'a' is given twice" in _refusal(tmp_path, "{a: 1, a: 2}\n")


def test_the_same_key_in_two_mappings_is_allowed(tmp_path):
    assert _load(tmp_path, "x: {a: 1}\ny: {a: 2}\n") == {"x": {"a": 1}, "y": {"a": 2}}
