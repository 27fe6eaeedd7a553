"""Z-scoring with the statistics of chosen rows."""

from __future__ import annotations

import numpy as np

from engine.scaling import Standardiser


def test_fitted_rows_come_out_with_zero_mean_and_unit_deviation():
    rows = np.array([[1.0, 10.0], [3.0, 30.0], [5.0, 50.0]])
    scale = Standardiser.fit(rows)
    np.testing.assert_allclose(scale(rows).mean(axis=0), 0.0, atol=1e-15)
    np.testing.assert_allclose(scale(rows).std(axis=0), 1.0)
    np.testing.assert_array_equal(scale(np.array([[3.0, 30.0]])), [[0.0, 0.0]])


def test_a_constant_dimension_is_only_centred():
    scale = Standardiser.fit(np.array([[2.0, 1.0], [2.0, 3.0]]))
    assert scale.std.tolist() == [1.0, 1.0]
    np.testing.assert_array_equal(scale(np.array([[5.0, 2.0]])), [[3.0, 0.0]])


def test_given_statistics_standardise_as_stored():
    scale = Standardiser(np.array([1.0]), np.array([4.0]))
    np.testing.assert_array_equal(scale(np.array([[9.0]], dtype=np.float32)), [[2.0]])
    assert scale(np.array([[9.0]], dtype=np.float32)).dtype == np.float64
