"""``train``: fit a model plugin on a labelled folder and write a self-describing model file.

Writes, into one output folder: ``model.keras`` (with its :class:`ModelInfo`), ``history.csv``,
``training-curve.png`` and ``validation.json`` (the validation report; for classification also
the validation confusion matrix as CSV and PNG). Deterministic for a seed: Keras' global seeds and
TensorFlow's deterministic ops are set, the split and the shuffling are seeded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.api import ModelInfo
from xaicli.errors import InputError, UsageError, XaicliError
from xaicli.io.write import exists_error
from xaicli.training import fitting

AUGMENTATIONS = ("flip", "vflip", "shift", "rotate", "zoom")
DEFAULT_MODELS = {"classification": "simple-cnn", "regression": "simple-cnn", "segmentation": "unet"}


@dataclass
class TrainResult:
    output_dir: Path
    model_path: Path
    info: ModelInfo
    history: dict[str, list[float]]
    validation: dict[str, Any] | None
    n_train: int
    n_val: int
    failures: list[tuple[str, str]] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    best_epoch: int | None = None  # the epoch whose weights the model file holds (1-based)
    warnings: list[str] = field(default_factory=list)  # the model may not be usable: why

    @property
    def usable(self) -> bool:
        return not self.warnings


def parse_size(value: Any) -> tuple[int, int] | None:
    """``64``, ``64x48`` or ``(64, 48)`` -> (height, width)."""
    if value is None:
        return None
    if isinstance(value, int):
        return (value, value)
    parts = [p for p in str(value).lower().replace(",", "x").split("x") if p.strip()] if isinstance(value, str) else list(value)
    try:
        dims = [int(p) for p in parts]
    except (TypeError, ValueError):
        raise UsageError(f"input size must be N or HxW, not {value!r}") from None
    if len(dims) == 1:
        dims *= 2
    if len(dims) != 2 or min(dims) < 8:
        raise UsageError(f"input size must be N or HxW with sides >= 8, not {value!r}")
    return dims[0], dims[1]


def parse_augment(value: Any) -> list[str]:
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [i.strip().lower() for i in items if i and i.strip()]
    unknown = [i for i in items if i not in AUGMENTATIONS]
    if unknown:
        raise UsageError(f"unknown augmentation {', '.join(unknown)}; choose from {', '.join(AUGMENTATIONS)}")
    return items


def _load(dataset, indices, info, failures) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Preprocessed images and targets for ``indices``; unreadable files go to ``failures``."""
    from xaicli.io import read_image, read_mask
    from xaicli.preprocessing import preprocess

    height, width = info.input_shape[:2]
    images, targets, kept = [], [], []
    for i in indices:
        f = dataset.files[i]
        try:
            image = read_image(f)
            if dataset.task == "segmentation":
                target = read_mask(dataset.labels[i], shape=image.shape[:2])
                from xaicli.io import resize

                target = resize(target.astype(np.float32), (height, width), interpolation="area") > 0.5
                target = target.astype(np.float32)[..., None]
            else:
                target = dataset.labels[i]
        except XaicliError as exc:
            text = str(exc)
            failures.append((str(f), text[len(f"{f}: "):] if text.startswith(f"{f}: ") else text))
            continue
        images.append(image)
        targets.append(target)
        kept.append(i)
    if not images:
        return np.zeros((0, *info.input_shape), np.float32), np.zeros((0,)), kept
    x = preprocess(images, info)
    dtype = np.int32 if dataset.task == "classification" else np.float32
    return x, np.asarray(targets, dtype=dtype), kept


def train(
    data: str | Path,
    output_dir: str | Path,
    *,
    task: str | None = None,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    input_size: Any = None,
    color: str | None = None,
    epochs: int = 10,
    batch_size: int = 32,
    optimizer: str = "nadam",
    learning_rate: float = 1e-3,
    validation_split: float = 0.2,
    augment: Sequence[str] | str | None = None,
    seed: int = 0,
    labels: str | Path | None = None,
    label_column: str | None = None,
    pattern: str | None = None,
    masks: str | Path | None = None,
    normal_class: str | None = None,
    cam_consistency: float | None = None,
    cam_layer: str | None = None,
    cam_schedule: str = "linear",
    cam_warmup: int = 0,
    cam_decay: float = 0.9,
    restore_best: bool = True,
    overwrite: bool = False,
    on_epoch: Callable[[int, int, dict[str, float]], None] | None = None,
    on_status: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train and write the outputs; returns what was written and the validation report.

    ``cam_consistency`` (classification only) adds the Grad-CAM consistency regulariser with that
    final lambda (:mod:`xaicli.training.cam_consistency`) at ``cam_layer`` (default: the model's CAM
    layer); lambda follows ``cam_schedule`` after ``cam_warmup`` epochs, and ``history`` then logs
    ``task_loss``, ``cam_loss`` and ``cam_lambda`` per epoch.
    """
    from xaicli import datasets as data_mod
    from xaicli import evaluation, io
    from xaicli.evaluation import write_classification_files
    from xaicli.models import get_spec
    from xaicli.models.io import find_cam_layer, save_model
    from xaicli.predictions import class_probabilities

    status = on_status or (lambda message: None)
    if epochs < 1:
        raise UsageError(f"epochs must be >= 1, not {epochs}")
    if batch_size < 1:
        raise UsageError(f"batch size must be >= 1, not {batch_size}")
    if color not in (None, "grayscale", "rgb"):
        raise UsageError(f"color must be grayscale or rgb, not {color!r}")
    if str(optimizer).lower() not in fitting.OPTIMIZERS:  # before reading any image, not after
        raise UsageError(f"unknown optimizer {optimizer!r}; choose from {', '.join(fitting.OPTIMIZERS)}")
    if not learning_rate > 0:
        raise UsageError(f"learning rate must be positive, not {learning_rate}")
    augment_names = parse_augment(augment)
    size = parse_size(input_size)
    schedule = None
    if cam_consistency is not None:
        from xaicli.training.cam_consistency import LambdaSchedule

        schedule = LambdaSchedule(float(cam_consistency), epochs, cam_schedule, int(cam_warmup))
    out = Path(output_dir)
    model_path = out / "model.keras"
    planned = [model_path, out / "history.csv", out / "training-curve.png", out / "validation.json"]
    for p in planned:
        if p.exists() and not overwrite:
            raise exists_error(p)

    dataset = data_mod.discover(data, task=task, labels=labels, label_column=label_column, pattern=pattern, masks=masks)
    task = dataset.task
    if schedule is not None and task != "classification":
        raise UsageError(f"cam_consistency needs a classification task, not {task}", parameter="cam_consistency")
    if normal_class is not None and (task != "classification" or normal_class not in dataset.class_names):
        raise UsageError(f"normal class {normal_class!r} is not one of the classes ({', '.join(dataset.class_names) or 'none'})")
    model_name = model or DEFAULT_MODELS[task]
    spec = get_spec(model_name)
    params = dict(params or {})

    # Input size and colour mode: from the first readable image unless given.
    first = None
    for f in dataset.files[:8]:
        try:
            first = io.read_image(f)
            break
        except XaicliError:
            continue
    if first is None:
        raise InputError(f"{data}: none of the first images can be read")
    if size is None:
        size = first.shape[:2]
        multiple = getattr(spec, "size_multiple", None)
        if multiple is not None:
            m = multiple(params)
            size = (max(m, size[0] // m * m), max(m, size[1] // m * m))
    if color is None:
        color = "grayscale" if data_mod.looks_gray(first) else "rgb"
    channels = 1 if color == "grayscale" else 3
    input_shape = (int(size[0]), int(size[1]), channels)
    extra: dict[str, Any] = {"params": params, "label_source": dataset.source}
    if dataset.source.get("kind") == "pattern":
        extra["label_pattern"] = dataset.source["pattern"]
    info = ModelInfo(task=task, input_shape=input_shape, class_names=list(dataset.class_names),
                     preprocessing=spec.preprocessing, normal_class=normal_class,
                     architecture=model_name, extra=extra)

    stratify = task == "classification"
    train_idx, val_idx = data_mod.stratified_split(dataset.labels, validation_split, seed, stratify=stratify)
    failures: list[tuple[str, str]] = []
    status(f"reading {len(dataset.files)} images ({task}, {input_shape[0]}x{input_shape[1]} {color})")
    x_train, y_train, _ = _load(dataset, train_idx, info, failures)
    x_val, y_val, _ = _load(dataset, val_idx, info, failures)
    if len(x_train) == 0:
        raise InputError(f"{data}: no training image could be read")
    if task == "classification" and len(np.unique(y_train)) < 2:
        raise InputError(f"{data}: the training split holds fewer than two classes")

    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()

    num_outputs = len(dataset.class_names) if task == "classification" else 1
    net = spec.build(input_shape, task, num_outputs, **params)
    if task == "regression":
        # Train on standardised targets but output real units (years): the scaling is a layer
        # inside the model, so predict and explain see ages, not z-scores.
        mean, std = float(y_train.mean()), float(y_train.std() or 1.0)
        outputs = keras.layers.Rescaling(scale=std, offset=mean, name="target_scale")(net.output)
        net = keras.Model(net.input, outputs, name=net.name)
        y_train_fit, y_val_fit = (y_train - mean) / std, (y_val - mean) / std
        extra["target_mean"], extra["target_std"] = mean, std
    else:
        y_train_fit, y_val_fit = y_train, y_val
    info.cam_layer = spec.default_cam_layer(net) or find_cam_layer(net)

    if task == "classification":
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    elif task == "regression":
        loss, metrics = "mse", []
    else:
        loss, metrics = fitting.segmentation_loss, ["binary_accuracy"]
    if task == "regression":
        # fit the standardised target: compile against the layer before the rescaling
        fit_model = keras.Model(net.input, net.get_layer("target_scale").input, name="fit")
    else:
        fit_model = net
    callbacks: list[Any] = []
    if schedule is not None:
        from xaicli.training.cam_consistency import lambda_callback, make_consistency_model

        fit_model = make_consistency_model(net, cam_layer or info.cam_layer, num_outputs, decay=cam_decay)
        callbacks.append(lambda_callback(fit_model, schedule))
        extra["cam_consistency"] = {"lambda": schedule.value, "layer": fit_model.layer_name, "schedule": schedule.kind,
                                    "warmup": schedule.warmup, "decay": float(cam_decay)}
    fit_model.compile(optimizer=fitting.optimizer(optimizer, learning_rate), loss=loss, metrics=metrics)

    train_ds = tf.data.Dataset.from_tensor_slices((x_train, y_train_fit))
    train_ds = train_ds.shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    augmenter = fitting.augmenter(augment_names, seed)
    if augmenter is not None:
        if task == "segmentation":
            def aug(x, y):
                both = augmenter(tf.concat([x, y], axis=-1), training=True)
                return both[..., :-1], tf.cast(both[..., -1:] > 0.5, tf.float32)
        else:
            def aug(x, y):
                return augmenter(x, training=True), y
        train_ds = train_ds.map(aug)
    train_ds = train_ds.prefetch(2)
    validation = (x_val, y_val_fit) if len(x_val) else None

    class _Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if on_epoch is not None:
                on_epoch(epoch + 1, epochs, {k: float(v) for k, v in (logs or {}).items()})

    best = fitting.best_epoch_callback() if restore_best and validation is not None else None
    callbacks += [best] if best is not None else []

    status(f"training {model_name} on {len(x_train)} images, validating on {len(x_val)}")
    fit = fit_model.fit(train_ds, validation_data=validation, epochs=epochs, verbose=0,
                        callbacks=[*callbacks, _Progress()], shuffle=False)
    history = {k: [float(v) for v in values] for k, values in fit.history.items()}

    report = None
    best_epoch = best.restore() if best is not None else epochs
    if best is not None and best_epoch != epochs:
        status(f"restored the weights of epoch {best_epoch} (lowest validation loss {best.best:.4g})")
    if len(x_val):
        from xaicli.runner import ModelRunner

        outputs = ModelRunner(net, batch_size=min(batch_size, len(x_val))).predict(x_val)
        if task == "classification":
            predicted = np.argmax(class_probabilities(outputs), axis=1)
            report = evaluation.classification_report(y_val.tolist(), predicted.tolist(), info.class_names, normal_class)
        elif task == "regression":
            report = evaluation.regression_report(outputs.reshape(-1), y_val)
        else:
            masks_pred = outputs[..., 0] > 0.5
            pairs = [evaluation.dice_iou(p, t[..., 0] > 0.5) for p, t in zip(masks_pred, y_val, strict=True)]
            truth = y_val[..., 0] > 0.5
            pooled = (int(np.logical_and(masks_pred, truth).sum()), int(masks_pred.sum() + truth.sum()),
                      int(np.logical_or(masks_pred, truth).sum()))
            report = evaluation.segmentation_report([d for d, _ in pairs], [u for _, u in pairs], pooled)
    info.extra["training"] = {
        "data": str(data), "epochs": epochs, "batch_size": batch_size, "optimizer": optimizer,
        "learning_rate": learning_rate, "validation_split": validation_split, "augment": augment_names,
        "seed": seed, "n_train": int(len(x_train)), "n_val": int(len(x_val)), "best_epoch": best_epoch,
        "restore_best": restore_best,
    }
    if report is not None:
        info.extra["validation"] = {k: v for k, v in report.items() if k in ("accuracy", "mae", "rmse", "dice", "iou", "n")}

    written = {"model": str(save_model(net, info, model_path, overwrite=overwrite))}
    epochs_done = len(next(iter(history.values()), []))
    rows = [{"epoch": e + 1, **{k: v[e] for k, v in history.items()}} for e in range(epochs_done)]
    written["history"] = str(io.write_csv(out / "history.csv", rows, columns=["epoch", *history], overwrite=overwrite))
    written["training_curve"] = str(io.write_bytes(out / "training-curve.png",
                                                   evaluation.training_curve_png(history, f"{model_name} on {data}"),
                                                   overwrite=overwrite))
    if report is not None:
        written["validation"] = str(io.write_bytes(out / "validation.json", (json.dumps(report, indent=2) + "\n").encode(), overwrite=overwrite))
        if task == "classification":
            written.update(write_classification_files(report, out, prefix="validation-", overwrite=overwrite))
    return TrainResult(out, model_path, info, history, report, int(len(x_train)), int(len(x_val)), failures, written,
                       best_epoch, fitting.usability(task, report, info))
