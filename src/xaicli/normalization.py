"""Map normalisation, the one place it is defined: which of a map's mass counts, and its [0, 1] form.

Metrics score the non-negative *mass* of a map and overlays show its [0, 1] form; both come from
here, so what a table measures is what a picture shows. Modes (``xaicli.api.DISPLAYS``):

* ``positive`` -- the positive part: evidence *for* the target (the age study's "non-negative
  mass"); the default;
* ``abs`` -- magnitudes, for signed attributions where both signs count (Integrated Gradients,
  Gradient x Input);
* ``minmax`` -- the map minus its minimum, for maps that carry a large constant offset (RISE's
  ``E[f(x * M) M]``, whose positive part is nearly flat);
* ``signed`` -- for display only: ``0.5 + m / (2 max|m|)``, zero at mid-scale (a metric needs mass,
  so it counts the positive part).

NaN and infinite values count as 0.
"""

from __future__ import annotations

import numpy as np

from xaicli.errors import UsageError

#: modes a metric can count mass with
NORMALIZATIONS = ("positive", "abs", "minmax")


def check_mode(mode: str, *, display: bool = False) -> str:
    from xaicli.api import DISPLAYS

    allowed = DISPLAYS if display else NORMALIZATIONS
    if mode not in allowed:
        raise UsageError(f"unknown map normalization {mode!r}; choose from {', '.join(allowed)}")
    return mode


def nonnegative(saliency: np.ndarray, mode: str = "positive") -> np.ndarray:
    """The map as non-negative float64 mass (2-D): positive part, magnitude or minus its minimum."""
    check_mode(mode, display=True)
    array = np.asarray(saliency, dtype=np.float64)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != 2:
        raise UsageError(f"a saliency map must be 2-D (height, width), not of shape {array.shape}")
    array = np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)
    if mode == "minmax":
        return array - (array.min() if array.size else 0.0)
    return np.abs(array) if mode == "abs" else np.maximum(array, 0.0)


def unit_range(saliency: np.ndarray, mode: str = "positive") -> np.ndarray:
    """The map in [0, 1]: its mass divided by the maximum (all-zero stays zero); ``signed`` maps
    zero to 0.5."""
    if mode == "signed":
        array = np.nan_to_num(np.asarray(saliency, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        top = float(np.abs(array).max()) if array.size else 0.0
        return 0.5 + array / (2.0 * top) if top > 0 else np.full_like(array, 0.5)
    mass = nonnegative(saliency, mode)
    top = mass.max() if mass.size else 0.0
    return mass / top if top > 0 else np.zeros_like(mass)


def display_range(saliency: np.ndarray, mode: str = "positive") -> tuple[float, float]:
    """The map values shown at the two ends of a colour scale drawn by :func:`unit_range`: 0 and
    the largest mass (``positive``, ``abs``), the minimum and maximum (``minmax``), -max|m| and
    +max|m| (``signed``); for the numbers on a colour bar."""
    array = np.nan_to_num(np.asarray(saliency, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if not array.size:
        return 0.0, 0.0
    if mode == "signed":
        top = float(np.abs(array).max())
        return -top, top
    if mode == "minmax":
        return float(array.min()), float(array.max())
    return 0.0, float(nonnegative(array, mode).max())
