"""``predict``: run a model over files and folders, write predictions (and masks), and evaluate
against the truth when it is known (see :mod:`xaicli.datasets`) -- the pipeline's read and
predict stages into the predictions table, with the evaluation accumulated as the records pass.

Outputs: ``predictions.csv`` (one row per image, with class probabilities), ``masks/<name>.png``
(segmentation), ``evaluation.json`` and, for classification, the classification report and the
confusion matrix (CSV and PNG). Unreadable files are listed and the rest processed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.api import LoadedModel
from xaicli.errors import InputError, XaicliError
from xaicli.pipeline.record import Record
from xaicli.pipeline.run import Pipeline
from xaicli.pipeline.scoring import strip_path
from xaicli.pipeline.sinks import PredictionSink, close_all, discard_all, prediction_columns


@dataclass
class PredictResult:
    task: str
    rows: list[dict[str, Any]]  # the first rows, for a terminal table
    columns: list[str]
    evaluation: dict[str, Any] | None
    truth_source: str | None
    failures: list[tuple[str, str]]
    outputs: dict[str, str] = field(default_factory=dict)
    n_inputs: int = 0
    predicted: int = 0


class _Evaluation:
    """The evaluation of a run, accumulated record by record (class indices, values, Dice/IoU)."""

    def __init__(self, info: Any, normal_class: str | None) -> None:
        self.info, self.normal_class = info, normal_class
        self.y_true: list[int] = []
        self.y_pred: list[int] = []
        self.values: list[tuple[float, float]] = []
        self.dices: list[float] = []
        self.ious: list[float] = []
        self.pooled = [0, 0, 0]

    def add(self, record: Record) -> None:
        if record.truth is None:
            return
        if self.info.task == "classification":
            self.y_true.append(int(record.truth))
            self.y_pred.append(int(record.prediction.index))
        elif self.info.task == "regression":
            self.values.append((record.prediction.value, float(record.truth)))

    def add_masks(self, mask: np.ndarray, true_mask: np.ndarray) -> tuple[float, float]:
        from xaicli import evaluation

        d, u = evaluation.dice_iou(mask, true_mask)
        self.dices.append(d)
        self.ious.append(u)
        self.pooled[0] += int(np.logical_and(mask, true_mask).sum())
        self.pooled[1] += int(mask.sum() + true_mask.sum())
        self.pooled[2] += int(np.logical_or(mask, true_mask).sum())
        return d, u

    def report(self) -> dict[str, Any] | None:
        from xaicli import evaluation

        if self.info.task == "classification" and self.y_true:
            return evaluation.classification_report(self.y_true, self.y_pred, self.info.class_names, self.normal_class)
        if self.info.task == "regression" and self.values:
            return evaluation.regression_report([p for p, _ in self.values], [t for _, t in self.values])
        if self.info.task == "segmentation" and self.dices:
            return evaluation.segmentation_report(self.dices, self.ious, tuple(self.pooled))
        return None


def predict_stages(loaded: LoadedModel, *, batch_size: int, frame: int | None) -> tuple[Pipeline, list[Any]]:
    """The per-image stages of ``predict``: read, then predict (in this process or on each worker of a cluster)."""
    return Pipeline(loaded, batch_size=batch_size, frame=frame), []


def predict(
    loaded: LoadedModel,
    inputs: Sequence[str | os.PathLike[str]],
    output_dir: str | os.PathLike[str],
    *,
    batch_size: int = 32,
    overwrite: bool = False,
    labels: str | os.PathLike[str] | None = None,
    label_column: str | None = None,
    pattern: str | None = None,
    masks: str | os.PathLike[str] | None = None,
    normal_class: str | None = None,
    threshold: float = 0.5,
    frame: int | str | None = None,
    keep_rows: int = 50,
    report: bool = False,
    progress: Callable[[int, int], None] | None = None,
    engine: Any = "local",
    address: str | None = None,
    resume: bool = False,
) -> PredictResult:
    """Predict every image under ``inputs`` (see the module docstring for what is written);
    ``engine`` runs the per-image stages, ``resume`` continues an interrupted run (as in ``compare``);
    with ``report``, also keep the small copies of the images ``xaicli report`` shows (``OUT/report/``)."""
    from xaicli import datasets, io
    from xaicli.evaluation import write_classification_files
    from xaicli.pipeline.engines import Work, engine_for, records
    from xaicli.pipeline.journal import RunJournal, model_key

    info = loaded.info
    out = Path(output_dir)
    sources = io.discover(inputs, frames=frame)
    if not sources:
        raise InputError(f"no images found in {', '.join(str(i) for i in inputs)}")
    planned = [out / "predictions.csv", out / "evaluation.json"]
    if info.task == "classification":
        planned += [out / "confusion-matrix.csv", out / "confusion-matrix.png", out / "classification-report.csv"]
    runner = engine_for(engine, address)
    journal = RunJournal(out, "predict", sources, [model_key(loaded), frame], resume=resume, overwrite=overwrite)
    overwrite = overwrite or journal.resuming  # this run's own outputs, made again from the same records
    io.check_outputs(planned + ([out / "masks"] if info.task == "segmentation" else []), overwrite)
    normal_class = normal_class if normal_class is not None else info.normal_class
    if normal_class is not None and info.task == "classification" and normal_class not in info.class_names:
        raise InputError(f"normal class {normal_class!r} is not one of the model's classes ({', '.join(info.class_names)})")
    truths, truth_source = datasets.truths(sources, info, labels=labels, label_column=label_column,
                                           pattern=pattern, masks=masks)
    # never pad a small run up to a large batch: compute only what is there
    work = Work(loaded, partial(predict_stages, batch_size=min(batch_size, len(sources)), frame=frame),
                with_image=info.task == "segmentation" or report)
    evaluation = _Evaluation(info, normal_class)
    failures: list[tuple[str, str]] = []
    last_mask: list[str] = []  # the mask file being written (not yet listed in predictions.csv)

    def segmentation_columns(record: Record) -> dict[str, Any]:
        from xaicli.predictions import foreground

        height, width = record.image.shape[:2]
        prob = io.resize(foreground(record.prediction.output[None])[0].astype(np.float32), (height, width),
                         interpolation="linear")
        mask = prob > threshold
        name = Path("masks") / f"{record.name}.png"
        last_mask[:] = [name.as_posix()]
        io.write_png(out / name, mask, overwrite=overwrite)
        row: dict[str, Any] = {"mask": name.as_posix(), "foreground": float(mask.mean())}
        if record.truth is not None:
            try:
                true_mask = io.read_mask(record.truth, shape=(height, width))
            except XaicliError as exc:
                failures.append((str(record.truth), strip_path(str(exc), record.truth)))
            else:
                dice, iou = evaluation.add_masks(mask, true_mask)
                row.update(true_mask=str(record.truth), dice=dice, iou=iou)
        return row

    has_truth = any(t is not None for t in truths)
    sink = PredictionSink(out / "predictions.csv", info, layout="full", has_truth=has_truth, overwrite=overwrite,
                          keep_rows=keep_rows, extra=segmentation_columns if info.task == "segmentation" else None)
    sinks: list[Any] = [sink]
    if report:  # the pictures of `xaicli report`'s per-image rows
        from xaicli.report.keep import ViewSink

        sinks.append(ViewSink(out / "report", info, overwrite=overwrite))
    done = 0
    try:
        for record in records(runner, work, sources, truths, journal):
            done += 1
            if not record.ok:
                failures.append((record.label, strip_path(record.error or "failed", record.label)))
                continue
            for each in sinks:
                each.add(record)
            evaluation.add(record)
            if progress is not None:
                progress(done, len(sources))
        written = close_all(sinks)
    except BaseException as error:
        from xaicli.io.write import remove_written

        masks = [row.get("mask", "") for row in sink.stream.written_rows()] if info.task == "segmentation" else []
        discard_all(sinks)
        remove_written(out, masks + last_mask)  # an interrupted run leaves no masks/ to block its rerun
        journal.interrupted(error)
        raise
    evaluated = evaluation.report()
    if evaluated is not None:
        evaluated["truth_source"] = truth_source
        written["evaluation"] = str(io.write_json(out / "evaluation.json", evaluated, overwrite=overwrite))
        if info.task == "classification":
            written.update(write_classification_files(evaluated, out, overwrite=overwrite))
    journal.finish()
    if info.task == "segmentation" and sink.stream.count:
        written["masks"] = str(out / "masks")
    return PredictResult(info.task, sink.rows, prediction_columns(info, "full", has_truth), evaluated, truth_source,
                         failures, written, len(sources), sink.stream.count)
