"""Region metrics of the age study: how a map's mass and peak relate to a region of interest.

All four score the non-negative map ``m`` (positive part or magnitude, see ``xaicli.metrics``)
against a boolean region ``R`` of the map's size (resized by nearest neighbour when it differs).

Conventions, chosen so that a map that prefers no pixel scores like chance, never like a hit:

* an **all-zero map** (e.g. Grad-CAM whose ReLU removed everything) carries no preference and is
  scored as a **flat map**: RoiRatio = area share of R, Entropy = 1, PointingHit = area share of R;
* an **empty region** (no mask pixel set, no face found) makes the region metrics **NaN**: there is
  nothing to hit or to share, and a NaN is left out of the means (the summary's ``n`` counts it out)
  rather than scored as a hit (Quantus's Pointing Game scores it as a hit);
* **ties** for the maximum: PointingHit is the *share of the tied maxima inside R*, the expected
  hit under a uniformly random choice among them (1 or 0 whenever the maximum is unique).

Small regions need the area they cover: a map that puts 5 % of its mass on a lesion covering 0.5 %
of the image looks at it ten times more than chance. **Lift** = RoiRatio / area share (1 = chance).
And a map has a native resolution: a 16 x 16 Grad-CAM upsampled to 256 px cannot put its peak
closer than a cell to anything, so PointingHit's default tolerance is half the map's native cell
(``cell`` in the context, from the explainer: the CAM layer's stride, RISE's grid cell, LIME's
segment size, the occlusion stride; 0 for pixel-level maps). ``pointing-hit-strict`` keeps the
paper's zero tolerance.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from xaicli.errors import UsageError
from xaicli.metrics import MapMetric, nonnegative


def region_for(region: Any, shape: tuple[int, int], metric: str) -> np.ndarray:
    """A boolean region of ``shape``: nearest-neighbour resize when it was made at another size."""
    if region is None:
        raise UsageError(f"metric {metric!r} needs a region of interest (roi)", parameter="roi")
    region = np.asarray(region)
    if region.ndim == 3:
        region = region[:, :, 0]
    region = region.astype(bool)
    if region.shape != tuple(shape):
        from xaicli.io import resize

        region = resize(region.astype(np.uint8), tuple(shape), interpolation="nearest") > 0
    return region


def roi_ratio(mass: np.ndarray, region: np.ndarray) -> float:
    """Share of the map's mass inside the region; NaN for an empty region, area share for a zero map."""
    if not region.any():
        return math.nan
    total = float(mass.sum())
    if total <= 0.0:
        return float(region.mean())
    return float(mass[region].sum() / total)


def area_share(region: np.ndarray) -> float:
    return float(region.mean()) if region.size else math.nan


class RoiRatio(MapMetric):
    """Share of the map's non-negative mass inside the region (the age study's FaceRatio).

    ``RoiRatio = sum(m * R) / sum(m)``. Higher means the map attends to the region; a flat map
    scores the region's area share. Shown as ``FaceRatio`` when the region is a face.
    """

    name = "roi-ratio"
    label = "RoiRatio"
    requires = ("region",)
    higher_is_better = True

    def column(self, region_label: str = "Roi") -> str:
        return f"{region_label}Ratio"

    def score(self, saliency: np.ndarray, **context: Any) -> float:
        mass = nonnegative(saliency, self.normalization)
        return roi_ratio(mass, region_for(context.get("region"), mass.shape, self.name))


class BackgroundRatio(MapMetric):
    """Share of the map's non-negative mass outside the region: ``1 - RoiRatio`` (age study).

    High values flag a model that looks at the background (a spurious cue).
    """

    name = "background-ratio"
    label = "BackgroundRatio"
    requires = ("region",)
    higher_is_better = False

    def score(self, saliency: np.ndarray, **context: Any) -> float:
        mass = nonnegative(saliency, self.normalization)
        return 1.0 - roi_ratio(mass, region_for(context.get("region"), mass.shape, self.name))


class Entropy(MapMetric):
    """Normalised Shannon entropy of the map seen as a distribution over its N pixels.

    ``p = m / sum(m)``, ``Entropy = -sum(p log p) / log N`` (``0 log 0 = 0``): 1.0 for a perfectly
    flat map, 0.0 for all mass on one pixel. The age study reports 0.956-0.994 for its four methods.
    An all-zero map counts as flat (1.0). Needs no region.
    """

    name = "entropy"
    label = "Entropy"
    requires = ()

    def score(self, saliency: np.ndarray, **context: Any) -> float:
        mass = nonnegative(saliency, self.normalization)
        count = mass.size
        total = float(mass.sum())
        if count <= 1 or total <= 0.0:
            return 1.0
        p = mass[mass > 0].ravel() / total
        return float(-(p * np.log(p)).sum() / math.log(count))


class Lift(MapMetric):
    """Share of the map's mass in the region divided by the share of the image the region covers.

    ``Lift = RoiRatio / (|R| / N)``: 1 for a flat (or random) map, above 1 when the map prefers the
    region, below 1 when it avoids it; readable for regions of any size, unlike RoiRatio whose
    chance level is the region's area. Empty region: NaN.
    """

    name = "lift"
    label = "Lift"
    requires = ("region",)
    higher_is_better = True

    def column(self, region_label: str = "Roi") -> str:
        return f"{region_label}Lift"

    def score(self, saliency: np.ndarray, **context: Any) -> float:
        mass = nonnegative(saliency, self.normalization)
        region = region_for(context.get("region"), mass.shape, self.name)
        if not region.any():
            return math.nan
        return roi_ratio(mass, region) / area_share(region)


class PointingHit(MapMetric):
    """Pointing game (Zhang et al., "Top-down neural attention by excitation backprop", ECCV 2016).

    1 if the map's maximum lies inside the region, else 0; the mean over images is the hit rate.
    ``tolerance`` (pixels; the paper used 15 at 224 px) grows the region by that radius. Default
    ``None``: half the map's native cell (``cell`` from the context; 0 for pixel-level maps), so a
    coarse map is not scored below its own resolution. Ties: the share of the tied maxima inside
    the region. Empty region: NaN. All-zero map: every pixel ties, so the hit is the region's area
    share (chance).
    """

    name = "pointing-hit"
    label = "PointingHit"
    requires = ("region",)
    higher_is_better = True

    def __init__(self, normalization: str = "positive", tolerance: int | None = None, **params: Any) -> None:
        super().__init__(normalization, **params)
        if tolerance is not None and int(tolerance) < 0:
            raise UsageError(f"pointing-hit tolerance must be >= 0 pixels, not {tolerance}")
        self.tolerance = None if tolerance is None else int(tolerance)

    def radius(self, context: dict[str, Any]) -> int:
        if self.tolerance is not None:
            return self.tolerance
        return int(round(float(context.get("cell") or 0.0) / 2.0))

    def score(self, saliency: np.ndarray, **context: Any) -> float:
        mass = nonnegative(saliency, self.normalization)
        region = region_for(context.get("region"), mass.shape, self.name)
        if not region.any():
            return math.nan
        radius = self.radius(context)
        if radius > 0:
            import cv2

            size = 2 * radius + 1
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
            region = cv2.dilate(region.astype(np.uint8), kernel) > 0
        peaks = mass == mass.max()
        return float(region[peaks].sum() / peaks.sum())


class StrictPointingHit(PointingHit):
    """The pointing game with the paper's zero tolerance, whatever the map's resolution."""

    name = "pointing-hit-strict"
    label = "PointingHitStrict"

    def __init__(self, normalization: str = "positive", **params: Any) -> None:
        super().__init__(normalization, tolerance=0, **params)
