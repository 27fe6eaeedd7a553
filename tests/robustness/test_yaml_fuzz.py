"""Generated YAML documents against every schema: each is refused with one message.

Three generators per schema (strategy, data, pretrain, evaluate): arbitrary text,
arbitrary YAML values, and a shipped file with one change that its schema
must refuse (a key it does not know, or a value of the wrong kind where a
typed value belongs).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {
    "strategy": REPO_ROOT / "strategies" / "ssl_cost.yaml",
    "data": REPO_ROOT / "configs" / "data" / "bybit_majors.yaml",
    "pretrain": REPO_ROOT / "configs" / "pretrain" / "ts2vec_bybit_1h.yaml",
    "evaluate": REPO_ROOT / "configs" / "evaluate" / "seed_tables.yaml",
}
FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Free-form keyword arguments: an encoder's hyperparameters are checked when it
# is built, not by the file's schema.
FREE_FORM = "params"

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
wrong_kind = st.dictionaries(st.text(min_size=1, max_size=8), st.integers(), min_size=1)


def _places(document, path=()):
    # Every mapping (to add a key to) and every value (to replace), outside free-form parts.
    if isinstance(document, dict):
        yield "mapping", path
        for key, value in document.items():
            if key != FREE_FORM:
                yield "value", (*path, key)
                yield from _places(value, (*path, key))
    elif isinstance(document, list):
        for i, value in enumerate(document):
            yield "value", (*path, i)
            yield from _places(value, (*path, i))


def _validate(refused, tmp_path, kind, text: str):
    path = tmp_path / "fuzzed.yaml"
    path.write_text(text, encoding="utf-8")
    refused(
        "validate",
        path,
        "--kind",
        kind,
        "--models-dir",
        REPO_ROOT / "models",
        stored=[SHIPPED[kind]],
    )


@pytest.mark.parametrize("kind", sorted(SHIPPED))
@FUZZ
@given(text=st.text(max_size=300))
def test_arbitrary_text_is_refused(kind, text, refused, tmp_path):
    _validate(refused, tmp_path, kind, text)


@pytest.mark.parametrize("kind", sorted(SHIPPED))
@FUZZ
@given(document=values)
def test_arbitrary_yaml_values_are_refused(kind, document, refused, tmp_path):
    _validate(refused, tmp_path, kind, yaml.safe_dump(document))


@pytest.mark.parametrize("kind", sorted(SHIPPED))
@FUZZ
@given(data=st.data())
def test_shipped_file_with_one_wrong_part_is_refused(kind, data, refused, tmp_path):
    document = yaml.safe_load(SHIPPED[kind].read_text())
    what, path = data.draw(st.sampled_from(sorted(_places(document), key=str)))
    *parents, last = path if path else (None,)
    target = document
    for part in parents:
        target = target[part]
    if what == "mapping":
        mapping = target if last is None else target[last]
        key = data.draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in mapping))
        mapping[key] = data.draw(scalars)
    else:
        target[last] = data.draw(wrong_kind)
    _validate(refused, tmp_path, kind, yaml.safe_dump(document))
