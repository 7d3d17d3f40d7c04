"""The Grad-CAM consistency regulariser: exact loss, gradient flow, and lambda = 0 is plain training."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from xaicli.metrics.consistency import ConsistencyAccumulator
from xaicli.training.cam_consistency import LambdaSchedule, lambda_callback, make_consistency_model

CLASSES = 3


def _tiny_model(seed: int = 0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", padding="same", name="conv1")(inputs)
    x = keras.layers.Conv2D(6, 3, activation="relu", padding="same", name="last_conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(CLASSES, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs)


def _toy_data(n: int = 48, seed: int = 1):
    """Class k has a bright 3x3 square in horizontal band k, at a random column."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.1, (n, 12, 12, 1)).astype(np.float32)
    y = np.arange(n) % CLASSES
    for i, label in enumerate(y):
        column = rng.integers(0, 9)
        x[i, label * 4 : label * 4 + 3, column : column + 3, 0] += 1.0
    return x, y


def _numpy_cam_maps(model, x, y):
    """Grad-CAM at 'last_conv' from activations and gradients taken by the explainers' runner."""
    from xaicli.api import Target
    from xaicli.runner import ModelRunner

    runner = ModelRunner(model, batch_size=7)
    weights = np.eye(CLASSES, dtype=np.float32)[y]
    target = Target(weights, [str(v) for v in y])
    ref = runner.resolve_layers("last_conv")
    _, (acts,), (grads,) = runner.activation_gradients(x, target, ref)
    alpha = grads.mean(axis=(1, 2), keepdims=True)
    cam = np.maximum((alpha * acts).sum(axis=-1), 0.0)
    return cam / (cam.max(axis=(1, 2), keepdims=True) + 1e-7)


def _numpy_l_cam(maps, y, correct, means, seen, decay):
    """L_CAM by the definition: per class, mean distance of the correct maps from the EMA mean."""
    losses = []
    for c in range(CLASSES):
        members = correct & (y == c)
        if not members.any():
            continue
        batch_mean = maps[members].mean(axis=0)
        mean = decay * means[c] + (1 - decay) * batch_mean if seen[c] else batch_mean
        losses.append(((maps[members] - mean) ** 2).mean(axis=(1, 2)).mean())
    return float(np.mean(losses)) if losses else 0.0


def test_regularised_loss_equals_a_numpy_recomputation_on_a_fixed_batch():
    base = _tiny_model()
    x, y = _toy_data(24)
    wrapped = make_consistency_model(base, "last_conv", CLASSES, decay=0.8)
    wrapped.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    y_pred, task_loss, cam_loss, new_means, present = wrapped._step_losses(x, y, None, False)

    predicted = np.asarray(y_pred).argmax(axis=1)
    maps = _numpy_cam_maps(base, x, y)
    # first batch: the class means are the batch means, so L_CAM is the consistency metric
    accumulator = ConsistencyAccumulator("positive")
    for saliency, truth, guess in zip(maps, y, predicted, strict=True):
        accumulator.add(saliency, int(truth), int(guess))
    expected = accumulator.result().overall
    if np.isnan(expected):
        expected = 0.0
    # (the metric divides by the maximum without the training loss's 1e-7 guard: rel 1e-3)
    assert float(cam_loss) == pytest.approx(expected, rel=1e-3, abs=1e-7)
    correct = predicted == y
    no_means = np.zeros((CLASSES, *maps.shape[1:]), np.float32)
    assert float(cam_loss) == pytest.approx(_numpy_l_cam(maps, y, correct, no_means, np.zeros(CLASSES), 0.8), rel=1e-5, abs=1e-8)
    probabilities = np.asarray(y_pred)
    cross_entropy = -np.log(probabilities[np.arange(len(y)), y]).mean()
    assert float(task_loss) == pytest.approx(cross_entropy, rel=1e-5)

    # second batch: the EMA blends the stored means with the new batch means
    wrapped.class_means.assign(np.asarray(new_means))
    wrapped.class_seen.assign(np.asarray(present))
    x2, y2 = _toy_data(24, seed=5)
    y_pred2, _, cam_loss2, _, _ = wrapped._step_losses(x2, y2, None, False)
    maps2 = _numpy_cam_maps(base, x2, y2)
    correct2 = np.asarray(y_pred2).argmax(axis=1) == y2
    expected2 = _numpy_l_cam(maps2, y2, correct2, np.asarray(new_means), np.asarray(present), 0.8)
    assert float(cam_loss2) == pytest.approx(expected2, rel=1e-5, abs=1e-8)


def _train(lam: float, epochs: int = 3, seed: int = 0, plain: bool = False):
    base = _tiny_model(seed)
    x, y = _toy_data(48)
    keras.utils.set_random_seed(seed + 100)
    if plain:
        base.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
        history = base.fit(x, y, batch_size=12, epochs=epochs, shuffle=False, verbose=0)
        return base, history
    model = make_consistency_model(base, "last_conv", CLASSES)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    schedule = LambdaSchedule(lam, epochs, kind="step")
    history = model.fit(x, y, batch_size=12, epochs=epochs, shuffle=False, verbose=0,
                        callbacks=[lambda_callback(model, schedule)])
    return base, history


def test_lambda_zero_gives_the_same_weights_as_plain_training():
    regularised, history = _train(0.0)
    plain, _ = _train(0.0, plain=True)
    for a, b in zip(regularised.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert {"loss", "task_loss", "cam_loss", "cam_lambda"} <= set(history.history)


def test_the_regulariser_gradient_makes_maps_more_consistent():
    x, y = _toy_data(48)

    def consistency(model):
        maps = _numpy_cam_maps(model, x, y)
        accumulator = ConsistencyAccumulator("positive")
        predicted = model(x).numpy().argmax(axis=1)
        for saliency, truth, guess in zip(maps, y, predicted, strict=True):
            accumulator.add(saliency, int(truth), int(guess))
        return accumulator.result().overall

    plain, _ = _train(0.0, epochs=6)
    regularised, history = _train(50.0, epochs=6)
    assert history.history["cam_loss"][-1] < history.history["cam_loss"][0]
    assert consistency(regularised) < consistency(plain)


def test_schedules():
    linear = LambdaSchedule(2.0, epochs=5, kind="linear", warmup=1)
    assert [linear.at(e) for e in range(5)] == [0.0, 0.5, 1.0, 1.5, 2.0]
    # without warm-up the curriculum still starts from 0 (the first epoch is not lambda / epochs)
    plain = LambdaSchedule(2.0, epochs=5, kind="linear")
    assert [plain.at(e) for e in range(5)] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert LambdaSchedule(1.0, epochs=10).at(0) == 0.0 and LambdaSchedule(1.0, epochs=10).at(9) == 1.0
    assert [LambdaSchedule(3.0, epochs=5, warmup=2).at(e) for e in range(5)] == [0.0, 0.0, 1.0, 2.0, 3.0]
    step = LambdaSchedule(2.0, epochs=5, kind="step", warmup=2)
    assert [step.at(e) for e in range(5)] == [0.0, 0.0, 2.0, 2.0, 2.0]
    from xaicli.errors import UsageError

    with pytest.raises(UsageError):
        LambdaSchedule(-1.0, epochs=3)


def test_consistency_study_command_writes_the_table_and_figures(tmp_path):
    import csv

    from typer.testing import CliRunner

    from xaicli.cli import app
    from xaicli.io import write_png

    for split, n, seed in (("train", 24, 1), ("test", 9, 2)):
        x, y = _toy_data(n, seed)
        for i, (image, label) in enumerate(zip(x, y, strict=True)):
            write_png(tmp_path / split / f"class{label}" / f"{i:02d}.png", np.clip(image[..., 0], 0, 1))
    out = tmp_path / "study"
    args = ["consistency-study", str(tmp_path / "train"), str(tmp_path / "test"), "-o", str(out),
            "--depths", "1,2", "--lambdas", "0,1", "--epochs", "2", "--batch-size", "8"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    with open(out / "study.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["depth"], float(r["lambda"])) for r in rows] == [("1", 0.0), ("1", 1.0), ("2", 0.0), ("2", 1.0)]
    test_x, test_y = _toy_data(9, 2)
    test_files = [tmp_path / "test" / f"class{label}" / f"{i:02d}.png" for i, label in enumerate(test_y)]
    means_by_row = []
    for row in rows:
        model = keras.saving.load_model(row["model"], compile=False)
        as_read = np.round(np.clip(test_x, 0, 1) * 255) / 255  # the 8-bit PNGs the command reads
        correct = int((np.argmax(model.predict(as_read, verbose=0), axis=1) == test_y).sum())
        assert row["n_test"] == "9" and int(row["n_correct"]) == correct  # counted against the truth
        assert float(row["test_accuracy"]) == pytest.approx(correct / 9)
        loss, means = _consistency_by_hand(row["model"], test_files, test_y)
        if correct:
            assert float(row["consistency"]) == pytest.approx(loss, rel=1e-4, abs=1e-9)
        else:
            assert row["consistency"] == "nan"
        means_by_row.append(means)
    _check_class_mean_maps(out / "class-mean-maps.png", rows, means_by_row)
    from pictures import TRAIN, VALIDATION

    from xaicli.io import read_image

    scatter = np.round(read_image(out / "accuracy-vs-consistency.png") * 255).astype(int)
    for colour in (TRAIN, VALIDATION):  # one line per lambda, matplotlib's first two colours
        assert (np.abs(scatter - colour).max(axis=2) < 30).sum() > 30
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 6 and "exists already" in again.output  # no silent overwrite


def _consistency_by_hand(model_path, files, truths):
    """L_CAM of the model's Grad-CAM maps over the correctly predicted test images: maps scaled to
    [0, 1] by their maxima, per class the mean squared distance from the class-mean map divided by
    H W, averaged over the samples and then over the classes (docs/cam-consistency.md)."""
    import xaicli

    by_class: dict[int, list[np.ndarray]] = {}
    for result, truth in zip(xaicli.explain(model_path, files, "gradcam"), truths, strict=True):
        if result.prediction.index == truth:
            m = np.maximum(result["gradcam"].astype(np.float64), 0)
            by_class.setdefault(int(truth), []).append(m / m.max() if m.max() > 0 else m)
    means = {f"class{c}": np.mean(maps, axis=0) for c, maps in by_class.items()}
    losses = [np.mean([((m - means[f"class{c}"]) ** 2).mean() for m in maps]) for c, maps in by_class.items()]
    return (float(np.mean(losses)) if losses else float("nan")), means


def _check_class_mean_maps(path, rows, means_by_row, cell=96):
    """Each class-mean map is drawn (jet, 96 px) in its depth's block, its class's row and its
    lambda's column: found in the figure where it belongs."""
    import cv2

    from xaicli.io import colorize, read_image, resize

    figure = np.round(read_image(path) * 255).astype(np.float32)
    where = {}  # every place each map is drawn at (nearly identical maps match each other's places too)
    for row, means in zip(rows, means_by_row, strict=True):
        for name, mean in means.items():
            tile = colorize(resize(mean.astype(np.float32), (cell, cell), interpolation="linear")).astype(np.float32)
            scores = cv2.matchTemplate(figure, tile, cv2.TM_SQDIFF) / tile.size  # mean squared difference
            assert scores.min() < 1.0, (row["depth"], row["lambda"], name)  # drawn, to within rounding
            if np.ptp(mean) > 0.05:  # a flat map (a model that learned no map yet) matches any flat patch
                ys, xs = np.nonzero(scores < 1.0)
                where[row["depth"], float(row["lambda"]), name] = {(int(y), int(x)) for y, x in zip(ys, xs, strict=True)}
    assert len(where) >= len(rows)

    def placed(a, b, rule):
        return any(rule(p, q) for p in where[a] for q in where[b])

    for a in where:
        for b in where:
            (depth, lam, name), (depth2, lam2, name2) = a, b
            if depth == depth2 and name == name2 and lam < lam2:  # lambdas left to right
                assert placed(a, b, lambda p, q: p[0] == q[0] and p[1] < q[1]), (a, b)
            if depth == depth2 and lam == lam2 and name < name2:  # classes top to bottom
                assert placed(a, b, lambda p, q: p[1] == q[1] and p[0] < q[0]), (a, b)
            if depth < depth2:  # one block per depth, in order
                assert placed(a, b, lambda p, q: p[0] < q[0]), (a, b)
