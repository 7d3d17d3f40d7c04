"""Groups of images a summary is broken down by, and the model's quality on each group.

A model that looks at the right thing on the images it gets right may look elsewhere on the ones it
gets wrong, or on one class: a summary over the whole set hides that. Every record belongs to the
group ``all`` and, by default, to (classification) ``true=<class>``, ``predicted=<class>`` and
``outcome=correct|incorrect``, or (regression) an error band; ``group_by`` chooses instead among
``true``, ``predicted``, ``outcome``, ``error``, ``folder`` (the image's own folder) and
``folder:N`` (the N-th folder level below the input folder), or ``none``.

Regression error bands are relative to the error of the constant predictor (the mean absolute
deviation of the known truths, MAD): ``error<MAD/2``, ``error=MAD/2-MAD``, ``error>=MAD``, edges
rounded to two significant digits; so "small", "medium" and "large" errors mean the same for ages
and for any other unit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.errors import UsageError

ALL = "all"
KINDS = ("true", "predicted", "outcome", "error", "folder", "none")
#: the model-quality column of each task (the mean of the per-image quality over a group)
QUALITY = {"classification": "Accuracy", "regression": "MAE", "segmentation": "Dice"}


def _round2(value: float) -> float:
    return float(f"{value:.2g}") if value > 0 else 0.0


@dataclass
class Grouping:
    """How records are grouped: ``kinds`` (see the module docstring) and, for regression, the
    band edges of the absolute error."""

    kinds: list[str]
    bands: tuple[float, float] | None = None

    @classmethod
    def make(cls, group_by: Sequence[str] | None, info: Any, truths: Sequence[Any]) -> Grouping:
        known = [t for t in truths if t is not None]
        if group_by:
            kinds = [k.strip() for item in group_by for k in str(item).split(",") if k.strip()]
            for kind in kinds:
                base, _, level = kind.partition(":")
                if base not in KINDS or (level and (base != "folder" or not level.lstrip("-").isdigit())):
                    raise UsageError(f"group_by {kind!r}: choose from true, predicted, outcome, error, folder, "
                                     "folder:N, none", parameter="group_by")
                if base in ("true", "outcome") and info.task != "classification":
                    raise UsageError(f"group_by {kind!r} needs a classification model", parameter="group_by")
                if base == "error" and info.task != "regression":
                    raise UsageError("group_by 'error' needs a regression model", parameter="group_by")
            kinds = [k for k in kinds if k != "none"]
        elif info.task == "classification":
            kinds = ["true", "predicted", "outcome"] if known else ["predicted"]
        elif info.task == "regression" and known:
            kinds = ["error"]
        else:
            kinds = []
        bands = None
        if "error" in kinds and known:
            values = np.asarray(known, np.float64)
            mad = float(np.abs(values - values.mean()).mean())
            bands = (_round2(mad / 2), _round2(mad)) if mad > 0 else (0.0, 0.0)
        return cls(kinds, bands)

    def of(self, record: Any) -> list[str]:
        """The groups a (good) record belongs to, ``all`` first."""
        groups = [ALL]
        p, truth = record.prediction, record.truth
        for kind in self.kinds:
            base, _, level = kind.partition(":")
            if base == "true" and truth is not None:
                groups.append(f"true={_class(truth, p)}")
            elif base == "predicted" and p is not None and p.task == "classification":
                groups.append(f"predicted={p.label}")
            elif base == "outcome" and truth is not None:
                groups.append("outcome=" + ("correct" if p.index == truth else "incorrect"))
            elif base == "error" and truth is not None and self.bands is not None:
                groups.append(self.band(abs(p.value - float(truth))))
            elif base == "folder":
                groups.append(f"{kind}={_folder(record, int(level) if level else None)}")
        return groups

    def band(self, error: float) -> str:
        low, high = self.bands
        if error < low:
            return f"error<{low:g}"
        if error < high:
            return f"error={low:g}-{high:g}"
        return f"error>={high:g}"


def _class(truth: Any, prediction: Any) -> str:
    names = getattr(prediction, "class_names", None) or []
    return names[truth] if isinstance(truth, (int, np.integer)) and 0 <= truth < len(names) else str(truth)


def _folder(record: Any, level: int | None) -> str:
    source = record.source
    if source.path is None:
        return "(memory)"
    parts = Path(source.name).parts[:-1]  # the output name is the path below the input folder
    if level is None:
        return parts[-1] if parts else (source.path.parent.name or ".")
    index = level - 1 if level > 0 else len(parts) + level
    return parts[index] if 0 <= index < len(parts) else "."


def quality(record: Any, info: Any) -> float:
    """The model's quality on one image: 1/0 correct (classification), the absolute error
    (regression), Dice against the truth mask (segmentation); NaN where the truth is unknown."""
    p, truth = record.prediction, record.truth
    if truth is None or p is None:
        return math.nan
    if info.task == "classification":
        return float(p.index == truth)
    if info.task == "regression":
        return abs(p.value - float(truth))
    from xaicli.errors import XaicliError
    from xaicli.evaluation import dice_iou
    from xaicli.io import read_mask, resize
    from xaicli.predictions import foreground

    height, width = record.image.shape[:2]
    predicted = resize(foreground(p.output[None])[0].astype(np.float32), (height, width), interpolation="linear") > 0.5
    try:
        return dice_iou(predicted, read_mask(truth, shape=(height, width)))[0]
    except XaicliError:  # an unreadable truth mask: predict reports it; here the image has no Dice
        return math.nan
