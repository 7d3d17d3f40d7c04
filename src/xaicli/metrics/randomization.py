"""Model-randomisation sanity check (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

Compare the map of the trained model with the map of the same image from a copy of the model
whose weights were re-initialised at random. A method whose maps stay similar does not depend on
what the model learned (it behaves like an edge detector): **low similarity is good**.

Two similarities, each on the non-negative map (``xaicli.metrics``) of both models:

* ``randomization-spearman``: Spearman rank correlation of the two maps' pixels (ties get their
  average rank), in [-1, 1]; NaN when either map is constant (no ranking to compare);
* ``randomization-ssim``: structural similarity (Wang et al., IEEE TIP 2004) of the two maps scaled
  to [0, 1] by their maxima, Gaussian window sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1.

The engine supplies the randomised map as ``random_saliency``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from xaicli.errors import UsageError
from xaicli.metrics import MapMetric, nonnegative, unit_range


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of a 1-D array, ties sharing their average rank."""
    values = np.asarray(values).ravel()
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # start of each run of equal values
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], values.size]
    average = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(average, ends - starts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation = Pearson correlation of the average ranks; NaN if either is constant."""
    ra, rb = average_ranks(a), average_ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denominator = math.sqrt(float((ra * ra).sum()) * float((rb * rb).sum()))
    if denominator == 0.0:
        return math.nan
    return float((ra * rb).sum() / denominator)


def ssim(a: np.ndarray, b: np.ndarray, *, sigma: float = 1.5, data_range: float = 1.0) -> float:
    """Mean structural similarity of two 2-D arrays (Wang et al. 2004), Gaussian-weighted windows."""
    import cv2

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(index.mean())


class _Randomization(MapMetric):
    requires = ("random_saliency",)
    higher_is_better = False

    def _pair(self, saliency: np.ndarray, context: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        other = np.asarray(self._context(context, "random_saliency"))
        if np.squeeze(other).shape != np.squeeze(np.asarray(saliency)).shape:
            raise UsageError(
                f"{self.name}: the randomised model's map has shape {other.shape}, "
                f"the trained model's {np.asarray(saliency).shape}"
            )
        return saliency, other


class RandomizationSpearman(_Randomization):
    """Spearman rank correlation between the trained and the randomised model's maps (lower is better)."""

    name = "randomization-spearman"
    label = "RandSpearman"

    def score(self, saliency: np.ndarray, **context: Any) -> float:
        a, b = self._pair(saliency, context)
        return spearman(nonnegative(a, self.normalization), nonnegative(b, self.normalization))


class RandomizationSSIM(_Randomization):
    """SSIM between the trained and the randomised model's [0, 1]-scaled maps (lower is better)."""

    name = "randomization-ssim"
    label = "RandSSIM"

    def score(self, saliency: np.ndarray, **context: Any) -> float:
        a, b = self._pair(saliency, context)
        return ssim(unit_range(a, self.normalization), unit_range(b, self.normalization))
