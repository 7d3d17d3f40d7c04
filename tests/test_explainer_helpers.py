"""The explainers' shared helpers (xaicli.explainers._common) against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from xaicli.errors import UsageError
from xaicli.explainers._common import (
    accumulate,
    check_choice,
    check_positive,
    per_image_rng,
    upsample,
    weighted_sum,
)


def _bilinear_half_pixel(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize with pixel centres at half-integers, edges clamped (as Grad-CAM upsamples)."""
    def coords(n_out, n_in):
        return np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)

    ys, xs = coords(size[0], m.shape[0]), coords(size[1], m.shape[1])
    rows = np.stack([np.interp(xs, np.arange(m.shape[1]), row) for row in m])
    return np.stack([np.interp(ys, np.arange(m.shape[0]), col) for col in rows.T]).T


def test_upsample_is_bilinear_with_half_pixel_centres():
    maps = np.random.default_rng(0).random((2, 3, 4)).astype(np.float32)
    out = upsample(maps, (9, 10))
    assert out.shape == (2, 9, 10) and out.dtype == np.float32
    for m, o in zip(maps, out, strict=True):
        np.testing.assert_allclose(o, _bilinear_half_pixel(m.astype(np.float64), (9, 10)), atol=1e-5)
    np.testing.assert_allclose(upsample(np.array([[[0.0, 1.0]]]), (1, 4))[0, 0], [0, 0.25, 0.75, 1])
    np.testing.assert_array_equal(upsample(maps, (3, 4)), maps)  # at the size already: unchanged


def test_check_positive():
    assert check_positive("n", "3") == 3 and isinstance(check_positive("n", 3.0), int)
    assert check_positive("w", "0.5", integer=False) == 0.5
    assert check_positive("n", 0, allow_zero=True) == 0
    for value, message in ((0, "n must be positive, not 0"), (-2, "n must be positive, not -2"),
                           (2.5, "n must be a whole number, not 2.5"), ("many", "n must be a number, not 'many'"),
                           (None, "n must be a number, not None")):
        with pytest.raises(UsageError, match=f"^{message}$".replace("(", r"\(").replace(")", r"\)")):
            check_positive("n", value)
    with pytest.raises(UsageError, match="^n must be at least 0, not -1$"):
        check_positive("n", -1, allow_zero=True)
    with pytest.raises(UsageError, match="^w must be positive, not 0.0$"):
        check_positive("w", 0.0, integer=False)


def test_check_choice():
    assert check_choice("mode", "b", ("a", "b")) == "b"
    with pytest.raises(UsageError, match="^mode must be one of a, b, not 'c'$"):
        check_choice("mode", "c", ("a", "b"))


def test_per_image_rng_depends_on_the_seed_and_the_image_not_on_batching():
    a = per_image_rng(3, 7).random(5)
    np.testing.assert_array_equal(a, per_image_rng(3, 7).random(5))
    np.testing.assert_array_equal(a, np.random.default_rng([3, 7]).random(5))
    assert not np.allclose(a, per_image_rng(3, 8).random(5)) and not np.allclose(a, per_image_rng(4, 7).random(5))


def test_weighted_sum_and_accumulate():
    rng = np.random.default_rng(1)
    values, coef = rng.random((6, 2, 3)), rng.random(6)
    np.testing.assert_allclose(weighted_sum(coef, values), np.tensordot(coef, values, axes=1), rtol=1e-6)
    assert weighted_sum(coef, values).dtype == np.float32
    rows = np.array([0, 0, 2, 2, 2, 1])
    total = np.zeros((3, 2, 3))
    accumulate(total, rows, values)
    weighted = np.zeros((3, 2, 3))
    accumulate(weighted, rows, values, coef)
    for r in range(3):
        np.testing.assert_allclose(total[r], values[rows == r].sum(axis=0), rtol=1e-6)
        np.testing.assert_allclose(weighted[r], (coef[rows == r, None, None] * values[rows == r]).sum(axis=0), rtol=1e-6)
    accumulate(total, rows, values)  # adds to what is there
    np.testing.assert_allclose(total[1], 2 * values[5], rtol=1e-6)
