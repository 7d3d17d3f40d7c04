"""Model metrics in plain NumPy: classification report, confusion matrix, missed pathologies,
MAE/RMSE, Dice/IoU, and the two pictures a person reads (confusion matrix, training curves).

The chest X-ray study reports accuracy with per-class precision, recall, F1 and a confusion
matrix, and stresses the costly error: a pathology predicted as the normal class.
"""

from __future__ import annotations

import io as _io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Counts (true class, predicted class): rows are the truth."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return matrix


def classification_report(
    y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str], normal_class: str | None = None
) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support, macro and weighted averages, the
    confusion matrix, and (with ``normal_class``) pathologies predicted as normal."""
    n = len(class_names)
    matrix = confusion_matrix(y_true, y_pred, n)
    tp = np.diag(matrix).astype(float)
    predicted = matrix.sum(axis=0).astype(float)
    support = matrix.sum(axis=1).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(n), where=denom > 0)
    total = float(support.sum())
    per_class = [
        {"class": name, "precision": float(precision[i]), "recall": float(recall[i]),
         "f1": float(f1[i]), "support": int(support[i])}
        for i, name in enumerate(class_names)
    ]
    weights = support / total if total else np.zeros(n)
    present = (support > 0) | (predicted > 0)
    report: dict[str, Any] = {
        "n": int(total),
        "accuracy": float(tp.sum() / total) if total else float("nan"),
        "per_class": per_class,
        # over the classes present in the truth or the predictions (as scikit-learn without
        # ``labels``): a class absent from a subset must not pull the macro average to 0
        "macro_avg": {"precision": _mean(precision[present]), "recall": _mean(recall[present]),
                      "f1": _mean(f1[present])},
        "macro_classes": [name for name, keep in zip(class_names, present, strict=True) if keep],
        "weighted_avg": {"precision": float((precision * weights).sum()), "recall": float((recall * weights).sum()),
                         "f1": float((f1 * weights).sum())},
        "confusion_matrix": matrix.tolist(),
        "class_names": list(class_names),
    }
    if normal_class is not None and normal_class in class_names:
        k = list(class_names).index(normal_class)
        missed = int(matrix[:, k].sum() - matrix[k, k])
        report["normal_class"] = normal_class
        report["missed_pathologies"] = missed
        pathologies = int(total - support[k])
        report["missed_pathology_rate"] = missed / pathologies if pathologies else 0.0
    return report


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def regression_report(predicted: Sequence[float], true: Sequence[float]) -> dict[str, Any]:
    """MAE, RMSE, and the MAE of a constant predictor at the truth's mean (a floor to beat)."""
    p = np.asarray(predicted, dtype=np.float64)
    t = np.asarray(true, dtype=np.float64)
    errors = p - t
    return {
        "n": int(len(t)),
        "mae": float(np.abs(errors).mean()) if len(t) else float("nan"),
        "rmse": float(np.sqrt((errors**2).mean())) if len(t) else float("nan"),
        "mae_constant_mean": float(np.abs(t - t.mean()).mean()) if len(t) else float("nan"),
    }


def dice_iou(predicted: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """Dice = 2|A∩B|/(|A|+|B|) and IoU = |A∩B|/|A∪B| of two boolean masks (1.0 when both empty)."""
    a = np.asarray(predicted, bool)
    b = np.asarray(true, bool)
    inter = float(np.logical_and(a, b).sum())
    total = float(a.sum() + b.sum())
    union = float(np.logical_or(a, b).sum())
    dice = 2 * inter / total if total else 1.0
    iou = inter / union if union else 1.0
    return dice, iou


def segmentation_report(dices: Sequence[float], ious: Sequence[float], pooled: tuple[int, int, int]) -> dict[str, Any]:
    """Mean per-image Dice/IoU, and the pooled ones from (intersection, |pred|+|true|, union)."""
    inter, total, union = pooled
    return {
        "n": len(dices),
        "dice": float(np.mean(dices)) if dices else float("nan"),
        "iou": float(np.mean(ious)) if ious else float("nan"),
        "dice_pooled": 2 * inter / total if total else 1.0,
        "iou_pooled": inter / union if union else 1.0,
    }


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(figure) -> bytes:
    buffer = _io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(figure)
    return buffer.getvalue()


def confusion_matrix_png(matrix: Sequence[Sequence[int]], class_names: Sequence[str], title: str = "Confusion matrix") -> bytes:
    """A labelled confusion matrix with counts and row-normalised shading, as PNG bytes."""
    plt = pyplot()
    m = np.asarray(matrix, dtype=float)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    n = len(class_names)
    size = max(4.0, 0.9 * n + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(share, cmap="Blues", vmin=0, vmax=1)
    axis.set_xticks(range(n), labels=class_names, rotation=45, ha="right")
    axis.set_yticks(range(n), labels=class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    for i in range(n):
        for j in range(n):
            axis.text(j, i, f"{int(m[i, j])}", ha="center", va="center",
                      color="white" if share[i, j] > 0.5 else "black")
    return figure_png(figure)


def training_curve_png(history: dict[str, Sequence[float]], title: str = "Training") -> bytes:
    """Loss and the first metric per epoch, training and validation, as PNG bytes."""
    plt = pyplot()
    metrics = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    figure, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    for axis, key in zip(axes[0], metrics, strict=True):
        epochs = range(1, len(history[key]) + 1)
        axis.plot(epochs, history[key], marker="o", label="train")
        if f"val_{key}" in history:
            axis.plot(epochs, history[f"val_{key}"], marker="o", label="validation")
        axis.set_xlabel("epoch")
        axis.set_title(key)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    return figure_png(figure)


def write_classification_files(report: dict[str, Any], out: Path, *, prefix: str = "", overwrite: bool = False) -> dict[str, str]:
    """The classification report CSV, the confusion matrix as CSV and as a readable PNG."""
    from xaicli import evaluation, io

    names = report["class_names"]
    matrix = report["confusion_matrix"]
    rows = [dict(r) for r in report["per_class"]]
    for label in ("macro_avg", "weighted_avg"):
        rows.append({"class": label.replace("_", " "), **report[label], "support": report["n"]})
    rows.append({"class": "accuracy", "precision": "", "recall": "", "f1": report["accuracy"], "support": report["n"]})
    written = {
        "classification_report": str(io.write_csv(out / f"{prefix}classification-report.csv", rows,
                                                  columns=["class", "precision", "recall", "f1", "support"], overwrite=overwrite)),
        "confusion_matrix_csv": str(io.write_csv(
            out / f"{prefix}confusion-matrix.csv",
            [{"true \\ predicted": name, **{p: int(v) for p, v in zip(names, row, strict=True)}} for name, row in zip(names, matrix, strict=True)],
            columns=["true \\ predicted", *names], overwrite=overwrite)),
        "confusion_matrix_png": str(io.write_bytes(out / f"{prefix}confusion-matrix.png",
                                                   evaluation.confusion_matrix_png(matrix, names), overwrite=overwrite)),
    }
    return written
