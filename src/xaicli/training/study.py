"""The Grad-CAM consistency study as one run: depth x lambda -> accuracy and consistency.

For each depth of ``simple-cnn`` and each lambda (0 = plain training), train on the training
folder with the consistency regulariser (:mod:`xaicli.training.cam_consistency`), then on the test
folder measure accuracy and the ``consistency`` metric L_CAM of the Grad-CAM maps (the same
metric ``xaicli score`` reports). The study asked whether consistency and accuracy move together
across CNNs of growing depth, and what the regulariser changes.

Writes ``study.csv`` (one row per depth x lambda), ``accuracy-vs-consistency.png`` and
``class-mean-maps.png`` (per depth, the class-mean Grad-CAM map of each class for every lambda, side
by side), and keeps each trained model in ``models/depth{d}-lambda{l}/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.errors import UsageError
from xaicli.io.write import exists_error

STUDY_COLUMNS = ["depth", "lambda", "test_accuracy", "consistency", "n_test", "n_correct",
                 "final_train_task_loss", "final_train_cam_loss", "train_seconds", "model"]


@dataclass
class StudyRow:
    depth: int
    lam: float
    accuracy: float
    consistency: float
    n_test: int
    n_correct: int
    task_loss: float
    cam_loss: float
    seconds: float
    model: str
    class_means: dict[str, np.ndarray] = field(default_factory=dict)

    def as_csv(self) -> dict[str, Any]:
        values = [self.depth, self.lam, self.accuracy, self.consistency, self.n_test, self.n_correct,
                  self.task_loss, self.cam_loss, self.seconds, self.model]
        return dict(zip(STUDY_COLUMNS, values, strict=True))


def evaluate_consistency(model_path: Path, test_dir: Path, *, batch_size: int = 16) -> tuple[float, float, int, int, dict[str, np.ndarray]]:
    """Test accuracy, L_CAM of Grad-CAM maps, counts, and the class-mean maps of correct samples."""
    from xaicli import datasets
    from xaicli.io import Source, output_names
    from xaicli.metrics import unit_range
    from xaicli.metrics.consistency import ConsistencyAccumulator
    from xaicli.models.io import load_model
    from xaicli.pipeline.run import Pipeline, make_methods

    loaded = load_model(model_path)
    dataset = datasets.discover(test_dir, task="classification")
    names = output_names(dataset.files, [Path(test_dir)] * len(dataset.files))
    sources = [Source(f, Path(test_dir), n) for f, n in zip(dataset.files, names, strict=True)]
    accumulator = ConsistencyAccumulator("positive")
    sums: dict[str, np.ndarray] = {}
    correct = total = 0
    pipeline = Pipeline(loaded, make_methods(["gradcam"]), batch_size=batch_size)
    for record in pipeline.records(sources, truths=dataset.labels):
        if not record.ok:
            continue
        total += 1
        saliency = record.maps[0].map
        truth = dataset.class_names[record.truth]
        if accumulator.add(saliency, truth, record.prediction.label):
            correct += 1
            sums[truth] = sums.get(truth, 0.0) + unit_range(saliency, "positive")
    result = accumulator.result()
    means = {name: sums[name] / result.per_class[name][1] for name in sorted(sums)}
    accuracy = correct / total if total else float("nan")
    return accuracy, result.overall, total, correct, means


def run_study(
    train_dir: str | Path,
    test_dir: str | Path,
    output_dir: str | Path,
    *,
    depths: Sequence[int] = (2, 3, 4),
    lambdas: Sequence[float] = (0.0, 1.0),
    epochs: int = 30,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    schedule: str = "linear",
    warmup: int = 1,
    decay: float = 0.9,
    seed: int = 0,
    overwrite: bool = False,
    on_status: Callable[[str], None] | None = None,
) -> list[StudyRow]:
    """Train and evaluate every depth x lambda; write the CSV and the two figures."""
    from xaicli import io
    from xaicli.training.train import train

    status = on_status or (lambda message: None)
    if not depths or not lambdas:
        raise UsageError("name at least one depth and one lambda")
    if any(d < 1 for d in depths) or any(lam < 0 for lam in lambdas):
        raise UsageError("depths must be >= 1 and lambdas >= 0")
    out = Path(output_dir)
    for name in ("study.csv", "accuracy-vs-consistency.png", "class-mean-maps.png"):
        if (out / name).exists() and not overwrite:
            raise exists_error(out / name)
    rows: list[StudyRow] = []
    for depth in depths:
        for lam in lambdas:
            status(f"depth {depth}, lambda {lam:g}: training")
            started = time.perf_counter()
            result = train(
                train_dir, out / "models" / f"depth{depth}-lambda{lam:g}", model="simple-cnn",
                params={"depth": depth}, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                seed=seed, overwrite=overwrite, cam_consistency=lam, cam_schedule=schedule,
                cam_warmup=warmup, cam_decay=decay,
            )
            seconds = time.perf_counter() - started
            status(f"depth {depth}, lambda {lam:g}: evaluating on {test_dir}")
            accuracy, consistency, n, n_correct, means = evaluate_consistency(result.model_path, Path(test_dir), batch_size=batch_size)
            history = result.history
            rows.append(StudyRow(depth, float(lam), accuracy, consistency, n, n_correct,
                                 _last(history, "task_loss", "loss"), _last(history, "cam_loss"), seconds,
                                 str(result.model_path), means))
    io.write_csv(out / "study.csv", [r.as_csv() for r in rows], columns=STUDY_COLUMNS, overwrite=overwrite)
    io.write_bytes(out / "accuracy-vs-consistency.png", _scatter_png(rows), overwrite=overwrite)
    io.write_bytes(out / "class-mean-maps.png", _class_means_png(rows), overwrite=overwrite)
    return rows


def _last(history: dict[str, list[float]], *keys: str) -> float:
    for key in keys:
        if history.get(key):
            return float(history[key][-1])
    return float("nan")


def _scatter_png(rows: list[StudyRow]) -> bytes:
    from xaicli.evaluation import figure_png, pyplot

    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6, 4.5))
    lambdas = sorted({r.lam for r in rows})
    for lam in lambdas:
        chosen = [r for r in rows if r.lam == lam]
        label = "no regulariser" if lam == 0 else f"lambda = {lam:g}"
        axes.plot([r.consistency for r in chosen], [r.accuracy for r in chosen], "o-", label=label)
        for r in chosen:
            axes.annotate(f"depth {r.depth}", (r.consistency, r.accuracy), textcoords="offset points", xytext=(5, 4), fontsize=8)
    axes.set_xlabel("L_CAM on the test split (lower = more consistent)")
    axes.set_ylabel("test accuracy")
    axes.set_title("Accuracy versus Grad-CAM consistency")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    return figure_png(figure)


def _class_means_png(rows: list[StudyRow]) -> bytes:
    """Per depth a block: one row per class, one column per lambda (jet colormap, labelled)."""
    import cv2

    from xaicli.io import colorize, encode_png, resize

    cell, pad, header = 96, 4, 18
    classes = sorted({name for r in rows for name in r.class_means})
    lambdas = sorted({r.lam for r in rows})
    depths = sorted({r.depth for r in rows})
    label_width = 110
    width = label_width + len(lambdas) * (cell + pad)
    block = header + len(classes) * (cell + pad)
    canvas = np.full((len(depths) * (block + header), width, 3), 255, np.uint8)
    for d_index, depth in enumerate(depths):
        top = d_index * (block + header)
        cv2.putText(canvas, f"simple-cnn depth {depth}", (4, top + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        for l_index, lam in enumerate(lambdas):
            x0 = label_width + l_index * (cell + pad)
            text = "lambda 0" if lam == 0 else f"lambda {lam:g}"
            cv2.putText(canvas, text, (x0 + 4, top + header + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        for c_index, name in enumerate(classes):
            y0 = top + 2 * header + c_index * (cell + pad)
            cv2.putText(canvas, name[:14], (4, y0 + cell // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
            for l_index, lam in enumerate(lambdas):
                match = [r for r in rows if r.depth == depth and r.lam == lam]
                if not match or name not in match[0].class_means:
                    continue
                picture = colorize(resize(match[0].class_means[name].astype(np.float32), (cell, cell), interpolation="linear"))
                x0 = label_width + l_index * (cell + pad)
                bottom = min(y0 + cell, canvas.shape[0])
                canvas[y0:bottom, x0 : x0 + cell] = picture[: bottom - y0]
    return encode_png(canvas)
