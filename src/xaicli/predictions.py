"""What a model predicted, as fields (class index, name, probability; value; mask size), and the
one way it is written for people (``nodule (0.912)``).

Every command and output takes predictions from here, so a CSV, a table and the JSON agree, and
nothing downstream parses a label back: ``maps.csv`` and ``--json`` carry the fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def class_probabilities(outputs: np.ndarray) -> np.ndarray:
    """(N, K) class probabilities; one sigmoid unit becomes two columns (1 - p, p); outputs that
    are not a distribution (logits) go through a softmax."""
    outputs = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    if outputs.shape[1] == 1:
        return np.concatenate([1.0 - outputs, outputs], axis=1)
    if np.any(outputs < -1e-6) or not np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3):
        shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    return outputs


def foreground(outputs: np.ndarray) -> np.ndarray:
    """(N, H, W) foreground probability (or, with several classes, 1 - background probability)."""
    if outputs.shape[-1] == 1:
        return outputs[..., 0]
    return 1.0 - outputs[..., 0]


def class_label(index: int | None, names: list[str]) -> str:
    if index is None:
        return ""
    return names[index] if 0 <= index < len(names) else f"class {index}"


@dataclass
class Prediction:
    """One image's prediction. ``index``/``label``/``confidence``/``probabilities``: classification;
    ``value``: regression (the first output unit; ``output`` has them all); ``mask_pixels``:
    segmentation (foreground pixels at the model's resolution)."""

    task: str
    output: np.ndarray
    index: int | None = None
    label: str = ""
    confidence: float = math.nan
    probabilities: np.ndarray | None = None
    value: float = math.nan
    mask_pixels: int | None = None
    class_names: list[str] = field(default_factory=list)
    #: the text as given, for a prediction read back from a table (``maps.csv``)
    shown: str | None = None

    @property
    def text(self) -> str:
        """For people: ``nodule (0.912)``, ``41.5``, ``mask of 210 px``."""
        if self.shown is not None:
            return self.shown
        if self.task == "classification":
            return f"{self.label} ({self.confidence:.3f})"
        if self.task == "regression":
            return ", ".join(f"{v:.4g}" for v in np.asarray(self.output, np.float64).ravel())
        suffix = "" if np.asarray(self.output).shape[-1] == 1 else " (non-background)"
        return f"mask of {self.mask_pixels} px{suffix}"

    def fields(self) -> dict[str, Any]:
        """Machine-readable fields for CSVs and JSON (numbers as numbers, missing as None)."""
        if self.task == "classification":
            return {"predicted": self.label, "predicted_index": self.index, "confidence": self.confidence}
        if self.task == "regression":
            return {"predicted": self.value}
        return {"predicted": self.text, "mask_pixels": self.mask_pixels}


def predictions(outputs: np.ndarray, info: Any) -> list[Prediction]:
    """A :class:`Prediction` per row of a batch of model outputs."""
    outputs = np.asarray(outputs, dtype=np.float32)
    names = list(info.class_names)
    if info.task == "classification":
        probs = class_probabilities(outputs)
        top = np.argmax(probs, axis=1)
        return [Prediction(info.task, outputs[i], int(top[i]), class_label(int(top[i]), names), float(probs[i, top[i]]),
                           probs[i], class_names=names) for i in range(len(outputs))]
    if info.task == "regression":
        return [Prediction(info.task, outputs[i], value=float(outputs[i].ravel()[0])) for i in range(len(outputs))]
    out = []
    for i in range(len(outputs)):
        o = outputs[i]
        pixels = int((o[..., 0] > 0.5).sum()) if o.shape[-1] == 1 else int((np.argmax(o, axis=-1) > 0).sum())
        out.append(Prediction(info.task, o, mask_pixels=pixels))
    return out


def truth_label(truth: Any, info: Any) -> str:
    """A known truth for people: class name, value; '' when unknown."""
    if truth is None:
        return ""
    if info.task == "classification":
        return class_label(int(truth), list(info.class_names))
    if info.task == "regression":
        return f"{float(truth):g}"
    return str(truth)
