"""Metric plugins: numbers that say how a saliency map relates to a region, the model, or other maps.

Every metric scores one map of one image (``score(saliency, **context) -> float``), except the
dataset metrics (``per_image = False``, e.g. ``consistency``) that score a set of maps at once.
``requires`` names the context a metric needs, which the engine supplies:

* ``region`` -- a boolean (H, W) region of interest at the map's resolution (``xaicli.rois``);
* ``image`` and ``model_fn`` -- the image as the model sees it (float (H, W, C) in [0, 1]) and a
  callable from a batch of such images to one target score per image (faithfulness metrics);
* ``random_saliency`` -- the map of the same image from a weight-randomised copy of the model.

Map normalisation is explicit (``normalization=``, defined in :mod:`xaicli.normalization`):
``positive`` (default) keeps the positive part of the map, ``abs`` takes magnitudes, ``minmax``
subtracts the map's minimum. The mode is recorded in every output row.
"""

from __future__ import annotations

from typing import Any

from xaicli.api import Metric
from xaicli.errors import UsageError
from xaicli.normalization import NORMALIZATIONS, nonnegative, unit_range

__all__ = ["NORMALIZATIONS", "MapMetric", "nonnegative", "unit_range"]

class MapMetric(Metric):
    """Base of xaicli's metrics: parameter checking and the normalisation mode (the declarations
    ``label``, ``requires``, ``higher_is_better``, ``per_image`` are those of :class:`xaicli.api.Metric`).
    """

    def __init__(self, normalization: str = "positive", **params: Any) -> None:
        if normalization not in NORMALIZATIONS:
            raise UsageError(
                f"unknown map normalization {normalization!r}; choose from {', '.join(NORMALIZATIONS)}",
                parameter="normalization",
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

    def _context(self, context: dict[str, Any], key: str) -> Any:
        value = context.get(key)
        if value is None:
            raise UsageError(f"metric {self.name!r} needs {key!r}, which this run does not provide")
        return value
