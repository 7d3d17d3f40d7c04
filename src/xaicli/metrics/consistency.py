"""Intra-class consistency of saliency maps (the Grad-CAM gaze-consistency study).

For class c, take the correctly predicted samples D_c+, normalise each map to [0, 1] (positive part
or magnitude divided by its maximum; an all-zero map stays zero), and the class-mean map
``M_c = mean over D_c+ of CAM(x)``. The per-sample loss is ``l(x) = ||CAM(x) - M_c||^2 / (H W)``,
the class score ``L_c`` the mean of ``l`` over D_c+, and the overall ``L_CAM`` the mean of the
``L_c`` over the classes that have correct samples (each class weighs the same, however many
samples it has). Lower is more consistent; 0 means every map of a class is identical.

It is a dataset metric: :class:`ConsistencyAccumulator` adds one map at a time and keeps only a
running sum and sum of squares per class, so memory does not grow with the number of images:
``sum_x ||m_x - M||^2 = sum_x ||m_x||^2 - n ||M||^2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xaicli.errors import UsageError
from xaicli.metrics import MapMetric, unit_range


@dataclass
class ConsistencyResult:
    """``per_class``: class -> (L_c, number of correct samples); ``overall``: mean of the L_c."""

    per_class: dict[str, tuple[float, int]]
    overall: float
    skipped: int = 0  # samples left out: wrongly predicted, or no truth known

    def rows(self, method: str, normalization: str) -> list[dict[str, Any]]:
        rows = [
            {"method": method, "class": name, "consistency": loss, "n": n, "normalization": normalization}
            for name, (loss, n) in self.per_class.items()
        ]
        rows.append(
            {
                "method": method,
                "class": "(all)",
                "consistency": self.overall,
                "n": sum(n for _, n in self.per_class.values()),
                "normalization": normalization,
            }
        )
        return rows


@dataclass
class ConsistencyAccumulator:
    """Streaming L_CAM: ``add`` each map with its true and predicted class, then ``result``."""

    normalization: str = "positive"
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    squares: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    skipped: int = 0

    def add(self, saliency: np.ndarray, truth: Any, predicted: Any) -> bool:
        """Count the map if the prediction is correct; returns whether it was counted."""
        if truth is None or str(truth) == "" or str(truth) != str(predicted):
            self.skipped += 1
            return False
        key = str(truth)
        cam = unit_range(saliency, self.normalization)
        if key in self.sums and self.sums[key].shape != cam.shape:
            raise UsageError(
                f"consistency: maps of class {key!r} differ in size ({self.sums[key].shape} vs {cam.shape})"
            )
        self.sums[key] = self.sums.get(key, 0.0) + cam
        self.squares[key] = self.squares.get(key, 0.0) + float((cam * cam).sum())
        self.counts[key] = self.counts.get(key, 0) + 1
        return True

    def result(self) -> ConsistencyResult:
        per_class: dict[str, tuple[float, int]] = {}
        for key in sorted(self.counts):
            n = self.counts[key]
            total = self.sums[key]
            pixels = total.size
            # sum of squared distances from the mean, over the class, by the streaming identity
            spread = self.squares[key] - float((total * total).sum()) / n
            per_class[key] = (max(spread, 0.0) / (n * pixels), n)
        losses = [loss for loss, _ in per_class.values()]
        overall = float(np.mean(losses)) if losses else math.nan
        return ConsistencyResult(per_class, overall, self.skipped)


class Consistency(MapMetric):
    """Grad-CAM consistency L_CAM over a set of maps (see the module docstring); lower is better.

    A dataset metric: use :meth:`score_set` (or :class:`ConsistencyAccumulator` for streams).
    """

    name = "consistency"
    label = "Consistency"
    per_image = False
    requires = ("truth", "predicted")
    higher_is_better = False

    def accumulator(self) -> ConsistencyAccumulator:
        return ConsistencyAccumulator(self.normalization)

    def score_set(self, maps: Any, truths: Any, predictions: Any) -> ConsistencyResult:
        acc = self.accumulator()
        for saliency, truth, predicted in zip(maps, truths, predictions, strict=True):
            acc.add(saliency, truth, predicted)
        return acc.result()

    def score(self, saliency: np.ndarray, **context: Any) -> float:
        raise UsageError("consistency scores a set of maps, not one: use score_set")
