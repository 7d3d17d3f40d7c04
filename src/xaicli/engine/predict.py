"""``predict``: run a model over files and folders, write predictions (and masks), and evaluate
against the truth when it is known (see :mod:`xaicli.engine.data`).

Images are read and preprocessed in batches; each batch goes through one compiled model call
(padded to the batch size, so the function is traced once). Unreadable files are listed and the
rest processed; the caller raises :class:`PartialFailure` after writing the outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.contracts import LoadedModel
from xaicli.errors import InputError, ModelError, OutputError, XaicliError
from xaicli.preprocessing import preprocess


class BatchPredictor:
    """One compiled forward function for a model, fed fixed-size (padded) batches."""

    def __init__(self, model: Any, batch_size: int = 32):
        import tensorflow as tf

        self.model = model
        self.batch_size = max(1, int(batch_size))
        self._fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        outputs = []
        for start in range(0, len(batch), self.batch_size):
            chunk = batch[start : start + self.batch_size]
            n = len(chunk)
            if n < self.batch_size:  # pad: a leftover batch must not trigger a new trace
                pad = np.zeros((self.batch_size - n, *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            try:
                out = self._fn(chunk)
            except (ValueError, TypeError) as exc:
                raise ModelError(f"the model cannot take inputs of shape {chunk.shape[1:]}: {' '.join(str(exc).split())[:200]}") from None
            outputs.append(np.asarray(out)[:n])
        return np.concatenate(outputs) if outputs else np.zeros((0,))


def read_batch(files: list[Path], info) -> tuple[list[int], list[np.ndarray], list[tuple[str, str]]]:
    """Read images; returns the indices read, the images and (file, reason) for the failures."""
    from xaicli.io import read_image

    ok, images, failures = [], [], []
    for i, f in enumerate(files):
        try:
            images.append(read_image(f))
            ok.append(i)
        except XaicliError as exc:
            failures.append((str(f), _reason(exc, f)))
    return ok, images, failures


def _reason(exc: Exception, f: Path) -> str:
    text = str(exc)
    prefix = f"{f}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def class_probabilities(outputs: np.ndarray) -> np.ndarray:
    """(N, K) class probabilities; one sigmoid unit becomes two columns (1 - p, p)."""
    outputs = outputs.reshape(len(outputs), -1)
    if outputs.shape[1] == 1:
        return np.concatenate([1.0 - outputs, outputs], axis=1)
    if np.any(outputs < -1e-6) or not np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3):
        shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))  # logits -> softmax
        return shifted / shifted.sum(axis=1, keepdims=True)
    return outputs


def foreground(outputs: np.ndarray) -> np.ndarray:
    """(N, H, W) foreground probability (or, with several classes, 1 - background probability)."""
    if outputs.shape[-1] == 1:
        return outputs[..., 0]
    return 1.0 - outputs[..., 0]


@dataclass
class PredictResult:
    task: str
    rows: list[dict[str, Any]]
    columns: list[str]
    evaluation: dict[str, Any] | None
    truth_source: str | None
    failures: list[tuple[str, str]]
    outputs: dict[str, str] = field(default_factory=dict)
    n_inputs: int = 0


def mask_names(files: list[Path], roots: list[Path]) -> list[Path]:
    """``masks/<name>.png`` per file, unique: the path below its input folder, and two inputs of
    the same name (``a/01.tif``, ``b/01.tif``) get ``01.png`` and ``01-2.png`` as in ``explain``."""
    from xaicli.engine.explain import output_names

    return [Path("masks") / f"{name}.png" for name in output_names(files, list(dict.fromkeys(roots)))]


def predict(
    loaded: LoadedModel,
    inputs: list[str | Path],
    output_dir: str | Path,
    *,
    batch_size: int = 32,
    overwrite: bool = False,
    labels: str | Path | None = None,
    label_column: str | None = None,
    pattern: str | None = None,
    masks: str | Path | None = None,
    normal_class: str | None = None,
    threshold: float = 0.5,
    progress: Any = None,
) -> PredictResult:
    """Predict every image under ``inputs``; write ``predictions.csv``, masks, evaluation files."""
    from xaicli import io
    from xaicli.engine import data, evaluation

    info = loaded.info
    out = Path(output_dir)
    pairs = data.expand_inputs(inputs)
    if not pairs:
        raise InputError(f"no images found in {', '.join(str(i) for i in inputs)}")
    planned = [out / "predictions.csv", out / "evaluation.json"]
    if info.task == "classification":
        planned += [out / "confusion-matrix.csv", out / "confusion-matrix.png", out / "classification-report.csv"]
    for p in planned + ([out / "masks"] if info.task == "segmentation" else []):
        if p.exists() and not overwrite:
            raise OutputError(f"{p}: exists already (pass --overwrite to replace it)")
    if normal_class is None:
        normal_class = info.normal_class
    if normal_class is not None and info.task == "classification" and normal_class not in info.class_names:
        raise InputError(f"normal class {normal_class!r} is not one of the model's classes ({', '.join(info.class_names)})")

    files = [f for f, _ in pairs]
    roots = [r for _, r in pairs]
    truth, truth_source = data.truths(files, info, roots=roots, labels=labels, label_column=label_column,
                                      pattern=pattern, masks=masks)
    # never pad a small run up to a large batch: compute only what is there
    names_out = mask_names(files, roots) if info.task == "segmentation" else []
    runner = BatchPredictor(loaded.model, min(batch_size, len(files)))
    rows: list[dict[str, Any]] = []
    failures: list[tuple[str, str]] = []
    y_true: list[int] = []
    y_pred: list[int] = []
    values: list[tuple[float, float]] = []
    dices, ious, pooled = [], [], [0, 0, 0]
    names = info.class_names
    chunk = max(batch_size, 1) * 4  # read a few batches at a time: bounded memory on big folders
    for start in range(0, len(files), chunk):
        part = files[start : start + chunk]
        ok, images, bad = read_batch(part, info)
        failures.extend(bad)
        if images:
            outputs = runner(preprocess(images, info))
            if info.task == "segmentation" and outputs.ndim != 4:
                raise ModelError(f"{loaded.path}: the model does not output maps; is it a segmentation model?")
        for j, i in enumerate(ok):
            f, k = part[i], start + i
            row: dict[str, Any] = {"file": str(f)}
            if info.task == "classification":
                probs = class_probabilities(outputs[j : j + 1])[0]
                top = int(np.argmax(probs))
                row.update(prediction=names[top], confidence=float(probs[top]))
                row.update({f"p_{name}": float(p) for name, p in zip(names, probs, strict=True)})
                if truth[k] is not None:
                    row.update(true=names[truth[k]], correct=int(top == truth[k]))
                    y_true.append(truth[k])
                    y_pred.append(top)
            elif info.task == "regression":
                value = float(np.asarray(outputs[j]).reshape(-1)[0])
                row["prediction"] = value
                if truth[k] is not None:
                    row.update(true=float(truth[k]), abs_error=abs(value - float(truth[k])))
                    values.append((value, float(truth[k])))
            else:
                height, width = images[j].shape[:2]
                prob = io.resize(foreground(outputs[j : j + 1])[0].astype(np.float32), (height, width), interpolation="linear")
                mask = prob > threshold
                name = names_out[k]
                io.write_png(out / name, mask, overwrite=overwrite)
                row.update(mask=name.as_posix(), foreground=float(mask.mean()))
                if truth[k] is not None:
                    try:
                        true_mask = io.read_mask(truth[k], shape=(height, width))
                    except XaicliError as exc:
                        failures.append((str(truth[k]), _reason(exc, Path(truth[k]))))
                    else:
                        d, u = evaluation.dice_iou(mask, true_mask)
                        row.update(true_mask=str(truth[k]), dice=d, iou=u)
                        dices.append(d)
                        ious.append(u)
                        inter = int(np.logical_and(mask, true_mask).sum())
                        pooled[0] += inter
                        pooled[1] += int(mask.sum() + true_mask.sum())
                        pooled[2] += int(np.logical_or(mask, true_mask).sum())
            rows.append(row)
        if progress is not None:
            progress(min(start + chunk, len(files)), len(files))

    report = None
    if info.task == "classification" and y_true:
        report = evaluation.classification_report(y_true, y_pred, names, normal_class)
    elif info.task == "regression" and values:
        report = evaluation.regression_report([p for p, _ in values], [t for _, t in values])
    elif info.task == "segmentation" and dices:
        report = evaluation.segmentation_report(dices, ious, tuple(pooled))

    columns = _columns(info, rows)
    written: dict[str, str] = {}
    if rows:
        written["predictions"] = str(io.write_csv(out / "predictions.csv", rows, columns=columns, overwrite=overwrite))
    if report is not None:
        import json

        report["truth_source"] = truth_source
        written["evaluation"] = str(io.write_bytes(out / "evaluation.json", (json.dumps(report, indent=2) + "\n").encode(), overwrite=overwrite))
        if info.task == "classification":
            written.update(write_classification_files(report, out, overwrite=overwrite))
    if info.task == "segmentation" and rows:
        written["masks"] = str(out / "masks")
    return PredictResult(info.task, rows, columns, report, truth_source, failures, written, len(files))


def _columns(info, rows: list[dict[str, Any]]) -> list[str]:
    if info.task == "classification":
        columns = ["file", "prediction", "confidence"] + [f"p_{n}" for n in info.class_names]
        extra = ["true", "correct"]
    elif info.task == "regression":
        columns, extra = ["file", "prediction"], ["true", "abs_error"]
    else:
        columns, extra = ["file", "mask", "foreground"], ["true_mask", "dice", "iou"]
    if any("true" in r or "true_mask" in r for r in rows):
        columns += extra
    return columns


def write_classification_files(report: dict[str, Any], out: Path, *, prefix: str = "", overwrite: bool = False) -> dict[str, str]:
    """The classification report CSV, the confusion matrix as CSV and as a readable PNG."""
    from xaicli import io
    from xaicli.engine import evaluation

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
