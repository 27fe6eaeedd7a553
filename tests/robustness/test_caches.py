"""Corrupt embedding caches: every damaged entry is recomputed with a warning, never a crash."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from engine.strategy.representations import CacheWarning, cached

KEY = "model-abc-def-blocks256"
VALUES = np.arange(24, dtype=np.float32).reshape(6, 4)


class Counter:
    """A computation that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> np.ndarray:
        self.calls += 1
        return VALUES.copy()


@pytest.fixture
def cache(tmp_path):
    compute = Counter()
    cached(tmp_path, KEY, compute)
    assert compute.calls == 1
    return tmp_path / "embeddings" / f"{KEY}.npy"


def _reload(cache, warns: bool) -> Counter:
    compute = Counter()
    if warns:
        with pytest.warns(CacheWarning, match="recomputing it"):
            values = cached(cache.parent.parent, KEY, compute)
    else:
        values = cached(cache.parent.parent, KEY, compute)
    assert np.array_equal(values, VALUES) and values.dtype == VALUES.dtype
    return compute


def test_intact_cache_is_read_without_recomputing(cache):
    assert _reload(cache, warns=False).calls == 0


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-7])


def _empty(path):
    path.write_bytes(b"")


def _object_array(path):
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)


def _nan(path):
    values = VALUES.copy()
    values[2, 1] = np.nan
    np.save(path, values)


def _garbage(path):
    path.write_bytes(b"\x93NUMPY garbage that is not an array")


def _other_shape(path):
    np.save(path, VALUES.reshape(4, 6))


def _other_dtype(path):
    np.save(path, VALUES.astype(np.float64))


def _delete_array(path):
    path.unlink()


def _delete_record(path):
    path.with_suffix(".json").unlink()


def _record_not_json(path):
    path.with_suffix(".json").write_text("{not json")


def _record_a_list(path):
    path.with_suffix(".json").write_text("[1, 2]")


def _record_of_another_key(path):
    record = path.with_suffix(".json")
    entry = json.loads(record.read_text())
    record.write_text(json.dumps({**entry, "key": "another"}))


def _nan_with_a_forged_record(path):
    _nan(path)
    record = path.with_suffix(".json")
    entry = json.loads(record.read_text())
    entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    record.write_text(json.dumps(entry))


@pytest.mark.parametrize(
    "damage",
    [
        _truncate,
        _empty,
        _object_array,
        _nan,
        _garbage,
        _other_shape,
        _other_dtype,
        _delete_array,
        _delete_record,
        _record_not_json,
        _record_a_list,
        _record_of_another_key,
        _nan_with_a_forged_record,
    ],
)
def test_damaged_cache_entry_is_recomputed_with_a_warning_and_healed(cache, damage):
    damage(cache)
    assert _reload(cache, warns=True).calls == 1
    assert _reload(cache, warns=False).calls == 0


def test_non_finite_result_is_returned_but_not_cached(tmp_path):
    def compute() -> np.ndarray:
        return np.array([np.nan, 1.0])

    assert np.isnan(cached(tmp_path, KEY, compute)[0])
    assert not (tmp_path / "embeddings" / f"{KEY}.npy").exists()
