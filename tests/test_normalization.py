"""Map normalisation (xaicli.normalization) against hand-computed values: the mass each mode
counts, the [0, 1] form overlays show, non-finite values, map shapes and the modes' names."""

from __future__ import annotations

import numpy as np
import pytest

from xaicli.errors import UsageError
from xaicli.normalization import NORMALIZATIONS, check_mode, nonnegative, unit_range

M = np.array([[-2.0, 0.0], [1.0, 4.0]])


def test_the_mass_of_each_mode():
    np.testing.assert_array_equal(nonnegative(M), [[0, 0], [1, 4]])  # positive part, the default
    np.testing.assert_array_equal(nonnegative(M, "abs"), [[2, 0], [1, 4]])
    np.testing.assert_array_equal(nonnegative(M, "minmax"), [[0, 2], [3, 6]])
    assert nonnegative(M.astype(np.int32), "abs").dtype == np.float64
    assert nonnegative(M.astype(np.float32)).dtype == np.float64


def test_the_unit_form_of_each_mode():
    np.testing.assert_allclose(unit_range(M), [[0, 0], [0.25, 1]])
    np.testing.assert_allclose(unit_range(M, "abs"), [[0.5, 0], [0.25, 1]])
    np.testing.assert_allclose(unit_range(M, "minmax"), [[0, 1 / 3], [0.5, 1]])
    signed = unit_range(M.astype(np.float32), "signed")  # 0.5 + m / (2 max|m|): zero at mid-scale
    np.testing.assert_allclose(signed, [[0.25, 0.5], [0.625, 1.0]])
    assert signed.dtype == np.float64


def test_flat_and_zero_maps():
    zero = np.zeros((2, 3))
    for mode in ("positive", "abs", "minmax"):
        np.testing.assert_array_equal(unit_range(zero, mode), zero)  # all-zero stays zero, no 0 / 0
    np.testing.assert_array_equal(unit_range(zero, "signed"), np.full((2, 3), 0.5))
    np.testing.assert_array_equal(unit_range(-np.ones((2, 2))), np.zeros((2, 2)))  # no positive mass


def test_nan_and_infinities_count_as_zero_in_every_mode():
    bad = np.array([[np.nan, np.inf], [-np.inf, 2.0]])
    for mode in ("positive", "abs"):
        np.testing.assert_array_equal(nonnegative(bad, mode), [[0, 0], [0, 2]])
    np.testing.assert_array_equal(nonnegative(bad, "minmax"), [[0, 0], [0, 2]])
    np.testing.assert_array_equal(unit_range(bad), [[0, 0], [0, 1]])
    np.testing.assert_array_equal(unit_range(bad, "signed"), [[0.5, 0.5], [0.5, 1.0]])
    np.testing.assert_array_equal(unit_range(-bad, "signed"), [[0.5, 0.5], [0.5, 0.0]])


def test_a_single_channel_map_is_squeezed_and_other_shapes_refused():
    np.testing.assert_array_equal(nonnegative(M[:, :, None]), nonnegative(M))
    with pytest.raises(UsageError, match=r"^a saliency map must be 2-D \(height, width\), not of shape \(2, 2, 2\)$"):
        nonnegative(np.stack([M, M], axis=2))
    with pytest.raises(UsageError, match=r"not of shape \(4,\)$"):
        nonnegative(np.ones(4))
    assert nonnegative(np.zeros((0, 3)), "minmax").shape == (0, 3)  # an empty map has no minimum to take


def test_modes_and_their_names():
    assert NORMALIZATIONS == ("positive", "abs", "minmax")
    assert check_mode("abs") == "abs" and check_mode("signed", display=True) == "signed"
    with pytest.raises(UsageError, match=r"^unknown map normalization 'signed'; choose from positive, abs, minmax$"):
        check_mode("signed")  # a metric needs mass: signed is for display only
    with pytest.raises(UsageError, match=r"^unknown map normalization 'square'; choose from positive, abs, minmax, signed$"):
        unit_range(M, "square")
    np.testing.assert_array_equal(unit_range(M), unit_range(M, "positive"))
