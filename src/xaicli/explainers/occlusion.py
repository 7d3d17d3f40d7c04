"""Occlusion: Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014.

A square patch of ``fill`` slides over the image; each pixel's value is the mean drop of the target
score over the patch positions that covered it (``score(x) - score(x occluded)``): positive where
hiding the pixel lowers the score.

Parameters: ``patch_size`` (default ``None`` = about a seventh of the shorter image side, at least
1 pixel; 32 for 224 x 224), ``stride`` (default ``None`` = half the patch), ``fill`` (default
``black``: the image value 0 before preprocessing; or ``mean``: each image's mean; or a number in
model-input units).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from xaicli.api import Blend, Explainer, Explanation
from xaicli.errors import UsageError
from xaicli.explainers._common import check_positive


def _positions(size: int, patch: int, stride: int) -> list[int]:
    starts = list(range(0, max(size - patch, 0) + 1, stride))
    if starts[-1] + patch < size:  # cover the last pixels too
        starts.append(size - patch)
    return starts


class Occlusion(Explainer):
    """Occlusion sensitivity (Zeiler & Fergus, ECCV 2014)."""

    name: ClassVar[str] = "occlusion"
    needs_blends: ClassVar[bool] = True

    def __init__(self, patch_size: int | None = None, stride: int | None = None, fill: str | float = "black", **params: Any) -> None:
        super().__init__(patch_size=patch_size, stride=stride, fill=fill, **params)
        self.patch_size = None if patch_size is None else check_positive("patch_size", patch_size)
        self.stride = None if stride is None else check_positive("stride", stride)
        if fill not in ("black", "mean"):
            try:
                fill = float(fill)
            except (TypeError, ValueError):
                raise UsageError(f"fill must be black, mean or a number, not {fill!r}") from None
        self.fill = fill

    def explain(self, runner: Any, images: np.ndarray, target: Any) -> Explanation:
        images = np.asarray(images, np.float32)
        b, (h, w, c) = len(images), runner.input_shape
        patch = self.patch_size or max(1, round(min(h, w) / 7))
        patch = min(patch, h, w)
        stride = self.stride or max(1, patch // 2)
        boxes = [(y, x) for y in _positions(h, patch, stride) for x in _positions(w, patch, stride)]
        if self.fill == "black":
            fills = np.broadcast_to(runner.preprocess(np.zeros((1, 1, 1, c), np.float32)).reshape(1, c), (b, c))
        elif self.fill == "mean":
            fills = images.mean(axis=(1, 2))
        else:
            fills = np.full((b, c), float(self.fill), np.float32)
        n = len(boxes)

        def build(start: int, stop: int) -> np.ndarray:  # 0 inside the patch: the fill shows
            masks = np.ones((stop - start, h, w), np.float32)
            for k, j in enumerate(range(start, stop)):
                y, x = boxes[j % n]
                masks[k, y : y + patch, x : x + patch] = 0.0
            return masks

        rows = np.repeat(np.arange(b), n)
        blend = Blend(images, np.asarray(fills, np.float32).reshape(b, 1, 1, c), rows, build)
        scores = runner.blend_scores(blend, target)
        full = runner.scores(images, target, np.arange(b))
        drop = full[:, None] - scores.reshape(b, n)
        total = np.zeros((b, h, w), np.float64)
        count = np.zeros((h, w), np.float64)
        for k, (y, x) in enumerate(boxes):
            total[:, y : y + patch, x : x + patch] += drop[:, k, None, None]
            count[y : y + patch, x : x + patch] += 1.0
        # its native resolution: the stride, the step between two patch positions
        return Explanation(total / np.maximum(count, 1.0), extras={"cell": np.full(b, float(stride))})
