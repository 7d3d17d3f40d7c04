"""What an explanation explains: one scalar per image, fixed from the unperturbed prediction.

Every target here is linear in the model output, ``score = sum(output * weights[image])``:

* **class** (classification): the softmax score of one class: the predicted class by default
  (``predicted``), or one given by index (``3``) or name (``nodule``). For a one-unit sigmoid
  output, class 1 scores the output and class 0 scores its negative (``1 - p`` up to a constant,
  which no explainer sees: every method uses differences or gradients of the score);
* **regression**: one output unit (``0`` by default; ``output:k`` or ``k`` for another);
* **segmentation**: the sum of the output over a mask, the predicted one by default (output > 0.5
  for a one-channel sigmoid map, the non-background arg-max classes for a softmax map, or one class
  with ``class:c``/``c``/a class name), or a given mask file resized to the output.

The weights are computed once, from the prediction on the original images, and every perturbed,
interpolated or noisy copy of an image keeps scoring the same class, unit or mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xaicli.api import ModelInfo, Target
from xaicli.errors import UsageError


def _class_label(index: int, names: Sequence[str]) -> str:
    return f"class {index} ({names[index]})" if index < len(names) else f"class {index}"


def _class_index(spec: str, names: Sequence[str], n: int, what: str) -> int:
    text = spec.split(":", 1)[1] if spec.startswith(("class:", "output:")) else spec
    if text.lstrip("-").isdigit():
        index = int(text)
    elif text in names:
        index = list(names).index(text)
    else:
        known = ", ".join(names) if names else f"indices 0..{n - 1}"
        raise UsageError(f"target {spec!r}: unknown {what}; choose from {known}", parameter="target")
    if not 0 <= index < n:
        raise UsageError(f"target {spec!r}: {what} index out of range 0..{n - 1}", parameter="target")
    return index


def resolve_target(
    outputs: np.ndarray,
    info: ModelInfo,
    spec: str | None = None,
    masks: Sequence[np.ndarray | None] | None = None,
) -> Target:
    """The target for each image, from the model's unperturbed ``outputs`` (batch first).

    ``spec``: ``None``/``predicted``, a class (index or name, ``class:...``), ``output:k`` for
    regression. ``masks``: for segmentation, one boolean (h, w) mask per image (or None: predicted).
    """
    outputs = np.asarray(outputs, dtype=np.float32)
    spec = (spec or "predicted").strip()
    n = len(outputs)
    if info.task == "classification":
        return _classification(outputs, info, spec)
    if info.task == "regression":
        flat = outputs.reshape(n, -1)
        index = 0 if spec == "predicted" else _class_index(spec, [], flat.shape[1], "output")
        weights = np.zeros_like(flat)
        weights[:, index] = 1.0
        unit = "" if flat.shape[1] == 1 else f" {index}"
        labels = [f"output{unit} = {flat[i, index]:.4g}" for i in range(n)]
        return Target(weights.reshape(outputs.shape), labels, [index] * n)
    return _segmentation(outputs, info, spec, masks)


def _classification(outputs: np.ndarray, info: ModelInfo, spec: str) -> Target:
    n = len(outputs)
    flat = outputs.reshape(n, -1)
    k = flat.shape[1]
    names = list(info.class_names)
    weights = np.zeros_like(flat)
    labels, classes = [], []
    if k == 1:  # one sigmoid unit: classes 0 / 1
        for i in range(n):
            cls = int(flat[i, 0] >= 0.5) if spec == "predicted" else _class_index(spec, names, 2, "class")
            weights[i, 0] = 1.0 if cls == 1 else -1.0
            labels.append(_class_label(cls, names))
            classes.append(cls)
        return Target(weights.reshape(outputs.shape), labels, classes)
    for i in range(n):
        cls = int(np.argmax(flat[i])) if spec == "predicted" else _class_index(spec, names, k, "class")
        weights[i, cls] = 1.0
        labels.append(_class_label(cls, names))
        classes.append(cls)
    return Target(weights.reshape(outputs.shape), labels, classes)


def _segmentation(
    outputs: np.ndarray, info: ModelInfo, spec: str, masks: Sequence[np.ndarray | None] | None
) -> Target:
    if outputs.ndim != 4:
        raise UsageError(f"a segmentation target needs a (height, width, channels) output, not {outputs.shape[1:]}")
    n, h, w, c = outputs.shape
    names = list(info.class_names)
    weights = np.zeros_like(outputs)
    labels, classes = [], []
    for i in range(n):
        given = masks[i] if masks is not None and i < len(masks) else None
        if c == 1:
            predicted = outputs[i, :, :, 0] > 0.5
            channel_masks = {0: predicted}
        else:
            arg = np.argmax(outputs[i], axis=-1)
            if spec == "predicted":
                channel_masks = {ch: arg == ch for ch in range(1, c)}  # every non-background class
            else:
                ch = _class_index(spec, names, c, "class")
                channel_masks = {ch: arg == ch}
        if given is not None:
            import cv2

            region = np.asarray(given).astype(bool)
            if region.shape != (h, w):
                region = cv2.resize(region.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
            channels = list(channel_masks) if (c == 1 or spec != "predicted") else list(range(1, c))
            for ch in channels:
                weights[i, :, :, ch] = region
            labels.append(f"given mask ({int(region.sum())} px)")
            classes.append(None)
            continue
        total = int(sum(m.sum() for m in channel_masks.values()))
        if total == 0:
            # Nothing predicted: explain the whole output map rather than an empty (zero) score.
            for ch in channel_masks:
                weights[i, :, :, ch] = 1.0
            labels.append("whole output (empty predicted mask)")
            classes.append(None)
            continue
        for ch, m in channel_masks.items():
            weights[i, :, :, ch] = m
        label = "predicted mask" if spec == "predicted" else f"predicted {_class_label(next(iter(channel_masks)), names)} mask"
        labels.append(f"{label} ({total} px)")
        classes.append(None if spec == "predicted" else next(iter(channel_masks)))
    return Target(weights, labels, classes)
