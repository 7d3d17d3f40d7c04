"""Metric plugins: numbers that say how a saliency map relates to a region, the model, or other maps.

Every metric scores one map of one image (``score(saliency, **context) -> float``), except the
dataset metrics (``per_image = False``, e.g. ``consistency``) that score a set of maps at once.
``requires`` names the context a metric needs, which the engine supplies:

* ``region`` -- a boolean (H, W) region of interest at the map's resolution (``xaicli.rois``);
* ``image`` and ``model_fn`` -- the image as the model sees it (float (H, W, C) in [0, 1]) and a
  callable from a batch of such images to one target score per image (faithfulness metrics);
* ``random_saliency`` -- the map of the same image from a weight-randomised copy of the model.

Map normalisation is explicit: ``normalization="positive"`` (default) keeps the positive part of
the map (evidence *for* the target, as the age study's "non-negative mass"), ``"abs"`` takes
magnitudes (for signed maps such as Integrated Gradients when both signs count), ``"minmax"``
subtracts the map's minimum (for maps that carry a large constant offset, such as RISE's
``E[f(x * M) M]``, whose positive part is nearly flat). NaN and infinite values count as 0. The
mode is recorded in every output row.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from xaicli.contracts import Metric
from xaicli.errors import UsageError

NORMALIZATIONS = ("positive", "abs", "minmax")


def nonnegative(saliency: np.ndarray, mode: str = "positive") -> np.ndarray:
    """The map as non-negative float64 mass: positive part or magnitude, NaN/inf as 0."""
    if mode not in NORMALIZATIONS:
        raise UsageError(f"unknown map normalization {mode!r}; choose from {', '.join(NORMALIZATIONS)}")
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
    """The non-negative map divided by its maximum, so it lies in [0, 1] (all-zero stays zero)."""
    mass = nonnegative(saliency, mode)
    top = mass.max() if mass.size else 0.0
    return mass / top if top > 0 else np.zeros_like(mass)


class MapMetric(Metric):
    """Base of xaicli's metrics: parameters, the normalisation mode and the column label.

    ``label`` is the column name in tables and CSVs (``RoiRatio``); ``requires`` the context keys
    the engine must pass; ``higher_is_better`` is None where neither direction is better.
    """

    label: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()
    per_image: ClassVar[bool] = True
    higher_is_better: ClassVar[bool | None] = None

    def __init__(self, normalization: str = "positive", **params: Any) -> None:
        if normalization not in NORMALIZATIONS:
            raise UsageError(
                f"unknown map normalization {normalization!r}; choose from {', '.join(NORMALIZATIONS)}"
            )
        if params:  # a typo (deletion.stpes=10) must not be ignored silently
            known = sorted(self.accepted_params())
            raise UsageError(
                f"metric {getattr(self, 'name', '') or type(self).__name__!r} has no parameter "
                f"{', '.join(repr(k) for k in sorted(params))}; "
                + (f"it takes {', '.join(known)}" if known else "it takes none")
            )
        self.normalization = normalization
        self.params = params

    @classmethod
    def accepted_params(cls) -> set[str]:
        """The keyword parameters of the metric's constructor (besides ``normalization``)."""
        import inspect

        names: set[str] = set()
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None or klass is object:
                continue
            for parameter in inspect.signature(init).parameters.values():
                if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                    names.add(parameter.name)
        return names - {"self", "normalization"}

    def column(self, region_label: str = "Roi") -> str:
        return self.label

    def _context(self, context: dict[str, Any], key: str) -> Any:
        value = context.get(key)
        if value is None:
            raise UsageError(f"metric {self.name!r} needs {key!r}, which this run does not provide")
        return value
