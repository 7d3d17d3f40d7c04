"""``xaicli train`` then ``xaicli predict`` end to end through the CLI on tiny generated data."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import write_dicom
from typer.testing import CliRunner

from xaicli.cli import app
from xaicli.io import write_png

runner = CliRunner()
FAST = ["--epochs", "2", "--batch-size", "4", "--param", "depth=2", "--param", "filters=4"]


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _square(rng, bright: bool, size=16, channels=1):
    image = rng.uniform(0.0, 0.3, (size, size, channels)).astype(np.float32)
    if bright:
        y, x = rng.integers(2, size - 6, 2)
        image[y : y + 4, x : x + 4] = 0.9
    return image


@pytest.fixture(scope="module")
def chest(tmp_path_factory):
    root = tmp_path_factory.mktemp("chest")
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 3)):
        for label in ("normal", "nodule"):
            for i in range(n):
                write_png(root / split / label / f"{split}_{i:02d}.png", _square(rng, label == "nodule"))
    return root


@pytest.fixture(scope="module")
def chest_model(chest, tmp_path_factory):
    out = tmp_path_factory.mktemp("chest-model") / "run"
    result = invoke("train", chest / "train", "-o", out, *FAST, "--normal-class", "normal", "--seed", "1")
    assert result.exit_code == 0, result.output
    return out


def test_train_classification_writes_everything(chest_model):
    for name in ("model.keras", "history.csv", "training-curve.png", "validation.json",
                 "validation-confusion-matrix.csv", "validation-confusion-matrix.png",
                 "validation-classification-report.csv"):
        assert (chest_model / name).is_file(), name
    info = json.loads(zipfile.ZipFile(chest_model / "model.keras").read("xaicli.json"))
    assert info["task"] == "classification"
    assert info["class_names"] == ["nodule", "normal"]
    assert info["input_shape"] == [16, 16, 1]
    assert info["normal_class"] == "normal" and info["architecture"] == "simple-cnn"
    assert info["cam_layer"] == "relu2"
    history = read_csv(chest_model / "history.csv")
    assert [row["epoch"] for row in history] == ["1", "2"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history[0])
    validation = json.loads((chest_model / "validation.json").read_text())
    assert validation["n"] == 4 and [c["support"] for c in validation["per_class"]] == [2, 2]  # stratified
    # the loss panel (one panel per metric, side by side, in history.csv's order) has a marker per
    # epoch and curve (and one in the legend), and the first and last go the way history.csv went
    from pictures import TRAIN, VALIDATION, decode, markers

    curve = decode((chest_model / "training-curve.png").read_bytes())
    panels = [k for k in history[0] if k != "epoch" and not k.startswith("val_") and k != "learning_rate"]
    width = curve.shape[1] // len(panels)
    loss_panel = curve[:, panels.index("loss") * width : (panels.index("loss") + 1) * width]
    for colour, key in ((TRAIN, "loss"), (VALIDATION, "val_loss")):
        points = sorted(markers(loss_panel, colour), key=lambda p: p[1])  # by x: epoch 1 first, epoch 2 last
        assert len(points) == len(history) + 1, key
        went = float(history[-1][key]) - float(history[0][key])
        if abs(went) > 0.005:  # a visible change: higher loss is drawn higher (smaller y)
            assert np.sign(points[0][0] - points[-1][0]) == np.sign(went), (key, went)


def test_predict_classification_no_flags(chest, chest_model, tmp_path):
    out = tmp_path / "pred"
    result = invoke("predict", chest_model / "model.keras", chest / "test", "-o", out)
    assert result.exit_code == 0, result.output
    rows = read_csv(out / "predictions.csv")
    assert len(rows) == 6
    assert list(rows[0]) == ["file", "prediction", "confidence", "p_nodule", "p_normal", "true", "correct"]
    for row in rows:
        probs = float(row["p_nodule"]) + float(row["p_normal"])
        assert probs == pytest.approx(1.0, abs=1e-4)
        assert row["true"] == Path(row["file"]).parent.name
    evaluation = json.loads((out / "evaluation.json").read_text())
    correct = sum(int(r["correct"]) for r in rows)
    assert evaluation["accuracy"] == pytest.approx(correct / 6)
    assert np.sum(evaluation["confusion_matrix"]) == 6
    missed = sum(1 for r in rows if r["true"] == "nodule" and r["prediction"] == "normal")
    assert evaluation["missed_pathologies"] == missed
    matrix = read_csv(out / "confusion-matrix.csv")
    assert [r["true \\ predicted"] for r in matrix] == ["nodule", "normal"]
    from pictures import row_shares_shaded, shaded_cells

    counts = [[int(r[name]) for name in ("nodule", "normal")] for r in matrix]
    assert counts == evaluation["confusion_matrix"]
    cells = shaded_cells((out / "confusion-matrix.png").read_bytes(), 2)  # the figure shows that table
    np.testing.assert_allclose(cells, row_shares_shaded(counts), atol=3)
    assert "accuracy" in result.output
    # outputs are never overwritten silently
    again = invoke("predict", chest_model / "model.keras", chest / "test", "-o", out)
    assert again.exit_code == 6 and "exists already" in again.output
    assert invoke("predict", chest_model / "model.keras", chest / "test", "-o", out, "--overwrite").exit_code == 0


def test_predict_json_summary(chest, chest_model, tmp_path):
    result = invoke("predict", chest_model / "model.keras", chest / "test" / "nodule", "-o", tmp_path / "p", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["task"] == "classification" and summary["predicted"] == 3
    assert summary["evaluation"]["n"] == 3 and summary["failures"] == []


def test_predict_partial_failure_lists_bad_files(chest, chest_model, tmp_path):
    folder = tmp_path / "mixed" / "normal"
    folder.mkdir(parents=True)
    for f in sorted((chest / "test" / "normal").iterdir()):
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (folder / "empty.jpg").write_bytes(b"")
    out = tmp_path / "pred"
    result = invoke("predict", chest_model / "model.keras", tmp_path / "mixed", "-o", out)
    assert result.exit_code == 4, result.output
    assert "broken.png" in result.output and "empty.jpg" in result.output
    rows = read_csv(out / "predictions.csv")
    assert sorted(Path(r["file"]).name for r in rows) == sorted(f.name for f in (chest / "test" / "normal").iterdir())


def test_predict_only_bad_files_and_empty_folder(chest_model, tmp_path):
    (tmp_path / "empty").mkdir()
    result = invoke("predict", chest_model / "model.keras", tmp_path / "empty", "-o", tmp_path / "p1")
    assert result.exit_code == 3 and "no images found" in result.output
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"junk")
    result = invoke("predict", chest_model / "model.keras", tmp_path / "bad", "-o", tmp_path / "p2")
    assert result.exit_code == 3 and "x.png" in result.output
    result = invoke("predict", chest_model / "model.keras", tmp_path / "missing", "-o", tmp_path / "p3")
    assert result.exit_code == 3


def test_predict_bad_model_files(chest, tmp_path):
    (tmp_path / "corrupt.keras").write_bytes(b"PK\x03\x04 this is not a model")
    result = invoke("predict", tmp_path / "corrupt.keras", chest / "test", "-o", tmp_path / "p")
    assert result.exit_code == 7 and "corrupt.keras" in result.output
    assert "Traceback" not in result.output


def test_foreign_keras_model_with_flags(chest, tmp_path):
    import keras

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x)).save(tmp_path / "foreign.keras")
    out = tmp_path / "pred"
    result = invoke("predict", tmp_path / "foreign.keras", chest / "test", "-o", out,
                    "--class-names", "nodule,normal", "--preprocessing", "symmetric")
    assert result.exit_code == 0, result.output
    rows = read_csv(out / "predictions.csv")
    assert len(rows) == 6 and {r["prediction"] for r in rows} <= {"nodule", "normal"}
    assert "true" in rows[0]  # the flags' class names match the folders: evaluated
    # a wrong shape given for the model is refused clearly
    result = invoke("predict", tmp_path / "foreign.keras", chest / "test", "-o", tmp_path / "p2", "--input-shape", "32,32,3")
    assert result.exit_code == 7 and "shape" in result.output
    result = invoke("predict", tmp_path / "foreign.keras", chest / "test", "-o", tmp_path / "p3", "--class-names", "a,b,c")
    assert result.exit_code == 7


def test_train_is_deterministic_and_config_file(chest, tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text("epochs: 1\nbatch-size: 4\nparam: {depth: 1, filters: 2}\nseed: 5\nvalidation_split: 0.25\n")
    runs = []
    for name in ("a", "b"):
        result = invoke("train", chest / "train", "-o", tmp_path / name, "--config", config)
        assert result.exit_code == 0, result.output
        runs.append(tmp_path / name)
    import keras

    first, second = (keras.models.load_model(r / "model.keras", compile=False) for r in runs)
    for w1, w2 in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(w1, w2)
    assert len(read_csv(runs[0] / "history.csv")) == 1
    assert json.loads(zipfile.ZipFile(runs[0] / "model.keras").read("xaicli.json"))["extra"]["training"]["seed"] == 5
    # the command line wins over the file
    result = invoke("train", chest / "train", "-o", tmp_path / "c", "--config", config, "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert len(read_csv(tmp_path / "c" / "history.csv")) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("epoch: 3\n")
    result = invoke("train", chest / "train", "-o", tmp_path / "d", "--config", bad)
    assert result.exit_code == 2 and "unknown option 'epoch'" in result.output


def test_train_user_errors(chest, tmp_path):
    (tmp_path / "empty").mkdir()
    result = invoke("train", tmp_path / "empty", "-o", tmp_path / "o")
    assert result.exit_code == 3 and "cannot tell the task" in result.output
    result = invoke("train", chest / "train", "-o", tmp_path / "o", "--model", "nosuch")
    assert result.exit_code == 5 and "unknown model" in result.output
    result = invoke("train", chest / "train", "-o", tmp_path / "o", "--optimizer", "adamw", *FAST)
    assert result.exit_code == 2
    result = invoke("train", chest / "train", "-o", tmp_path / "o", "--augment", "twist")
    assert result.exit_code == 2
    result = invoke("train", chest / "train", "-o", tmp_path / "o", "--param", "depth")
    assert result.exit_code == 2


def test_train_with_unreadable_images_reports_them(chest, tmp_path):
    data = tmp_path / "train"
    for label in ("normal", "nodule"):
        (data / label).mkdir(parents=True)
        for f in sorted((chest / "train" / label).iterdir()):
            (data / label / f.name).write_bytes(f.read_bytes())
    (data / "nodule" / "zz_bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    result = invoke("train", data, "-o", tmp_path / "o", *FAST, "--augment", "flip,shift")
    assert result.exit_code == 4, result.output
    assert "zz_bad.png" in result.output
    assert (tmp_path / "o" / "model.keras").is_file()


# --------------------------------------------------------------------------------- regression


def _face(rng, age, size=16):
    image = rng.uniform(0.0, 0.2, (size, size, 3)).astype(np.float32)
    image[4:12, 4:12] = age / 80.0
    return image


def test_regression_utkface_names_end_to_end(tmp_path):
    rng = np.random.default_rng(2)
    for split, n in (("train", 12), ("test", 4)):
        for i in range(n):
            age = int(rng.integers(1, 80))
            write_png(tmp_path / split / f"{age}_{i % 2}_{i % 5}_{split}{i:03d}.png", _face(rng, age))
    out = tmp_path / "model"
    result = invoke("train", tmp_path / "train", "-o", out, *FAST)
    assert result.exit_code == 0, result.output
    info = json.loads(zipfile.ZipFile(out / "model.keras").read("xaicli.json"))
    assert info["task"] == "regression" and info["input_shape"] == [16, 16, 3]
    assert info["extra"]["label_pattern"] == "utkface"
    pred = tmp_path / "pred"
    result = invoke("predict", out / "model.keras", tmp_path / "test", "-o", pred)
    assert result.exit_code == 0, result.output
    rows = read_csv(pred / "predictions.csv")
    assert list(rows[0]) == ["file", "prediction", "true", "abs_error"]
    for row in rows:
        assert float(row["true"]) == float(Path(row["file"]).name.split("_")[0])
        assert float(row["abs_error"]) == pytest.approx(abs(float(row["prediction"]) - float(row["true"])), abs=1e-3)
    evaluation = json.loads((pred / "evaluation.json").read_text())
    assert evaluation["mae"] == pytest.approx(np.mean([float(r["abs_error"]) for r in rows]), rel=1e-4)
    assert "MAE" in result.output


def test_regression_from_labels_csv(tmp_path):
    rng = np.random.default_rng(3)
    lines = ["file,value"]
    for i in range(10):
        value = float(rng.uniform(0, 10))
        write_png(tmp_path / "imgs" / f"img{i}.png", _face(rng, value * 8))
        lines.append(f"img{i}.png,{value}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    result = invoke("train", tmp_path / "imgs", "-o", tmp_path / "m", "--labels", tmp_path / "labels.csv", *FAST)
    assert result.exit_code == 0, result.output
    result = invoke("predict", tmp_path / "m" / "model.keras", tmp_path / "imgs", "-o", tmp_path / "p",
                    "--labels", tmp_path / "labels.csv", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["evaluation"]["n"] == 10 and summary["truth_source"].startswith("labels CSV")


# ------------------------------------------------------------------------------- segmentation


def _write_drive(root: Path, split: str, ids, rng):
    from PIL import Image

    for n in ids:
        image = rng.uniform(0.5, 0.7, (16, 16, 3)).astype(np.float32)
        mask = np.zeros((16, 16), bool)
        mask[:, int(rng.integers(2, 12)) : ][:, :2] = True
        image[mask] *= 0.3
        tag = "training" if split == "training" else "test"
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "1st_manual").mkdir(parents=True, exist_ok=True)
        import cv2

        cv2.imwrite(str(root / split / "images" / f"{n:02d}_{tag}.tif"), (image[:, :, ::-1] * 255).astype(np.uint8))
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / split / "1st_manual" / f"{n:02d}_manual1.gif")


def test_segmentation_drive_layout_end_to_end(tmp_path):
    rng = np.random.default_rng(4)
    _write_drive(tmp_path, "training", range(21, 27), rng)
    _write_drive(tmp_path, "test", range(1, 3), rng)
    out = tmp_path / "model"
    result = invoke("train", tmp_path / "training", "-o", out, "--epochs", "2", "--batch-size", "2",
                    "--param", "depth=2", "--param", "filters=4", "--augment", "flip,vflip")
    assert result.exit_code == 0, result.output
    info = json.loads(zipfile.ZipFile(out / "model.keras").read("xaicli.json"))
    assert info["task"] == "segmentation" and info["architecture"] == "unet"
    assert info["cam_layer"] == "dec1_relu2"
    validation = json.loads((out / "validation.json").read_text())
    assert validation["n"] >= 1
    # pooled counts: Dice = 2I / (|P| + |T|), IoU = I / (|P| + |T| - I), so Dice = 2 IoU / (1 + IoU)
    iou = validation["iou_pooled"]
    assert validation["dice_pooled"] == pytest.approx(2 * iou / (1 + iou), rel=1e-9)
    pred = tmp_path / "pred"
    result = invoke("predict", out / "model.keras", tmp_path / "test", "-o", pred)  # the DRIVE root
    assert result.exit_code == 0, result.output
    rows = read_csv(pred / "predictions.csv")
    assert len(rows) == 2  # only images/, not the masks
    from xaicli.io import read_mask

    dices, ious = [], []
    for row in rows:  # Dice and IoU recomputed from the written mask and the true one
        assert row["true_mask"].endswith("_manual1.gif")
        predicted, true = read_mask(pred / row["mask"]), read_mask(Path(row["true_mask"]))
        both = np.logical_and(predicted, true).sum()
        dices.append(2 * both / (predicted.sum() + true.sum()))
        ious.append(both / np.logical_or(predicted, true).sum())
        assert float(row["dice"]) == pytest.approx(dices[-1], rel=1e-5)
        assert float(row["iou"]) == pytest.approx(ious[-1], rel=1e-5)
        assert float(row["foreground"]) == pytest.approx(predicted.mean(), rel=1e-5)
    evaluation = json.loads((pred / "evaluation.json").read_text())
    assert evaluation["n"] == 2
    assert evaluation["dice"] == pytest.approx(np.mean(dices), rel=1e-5)
    assert evaluation["iou"] == pytest.approx(np.mean(ious), rel=1e-5)
    assert "Dice" in result.output


def test_predictions_do_not_depend_on_batch_size(chest, chest_model, tmp_path):
    tables = []
    for size in ("1", "4"):
        out = tmp_path / f"b{size}"
        result = invoke("predict", chest_model / "model.keras", chest / "test", "-o", out, "--batch-size", size)
        assert result.exit_code == 0, result.output
        tables.append(read_csv(out / "predictions.csv"))
    for a, b in zip(tables[0], tables[1], strict=True):
        assert a["file"] == b["file"] and a["prediction"] == b["prediction"]
        assert float(a["p_nodule"]) == pytest.approx(float(b["p_nodule"]), abs=1e-5)


def test_train_with_the_cam_consistency_regulariser(chest, tmp_path):
    out = tmp_path / "regularised"
    result = invoke("train", chest / "train", "-o", out, *FAST, "--cam-consistency", "2", "--cam-schedule", "step",
                    "--cam-warmup", "1")
    assert result.exit_code == 0, result.output
    history = read_csv(out / "history.csv")
    assert [float(row["cam_lambda"]) for row in history] == [0.0, 2.0]  # warm-up, then the step
    assert all(float(row["cam_loss"]) >= 0 and float(row["task_loss"]) > 0 for row in history)
    with zipfile.ZipFile(out / "model.keras") as archive:
        config = json.loads(archive.read("config.json"))
    assert config["class_name"] == "Functional" and "cam_consistency" not in config["config"]["name"]  # not the wrapper
    predicted = invoke("predict", out / "model.keras", chest / "test", "-o", tmp_path / "pred", "--json")
    assert predicted.exit_code == 0, predicted.output


def test_cam_consistency_refuses_bad_values(chest, tmp_path):
    bad = invoke("train", chest / "train", "-o", tmp_path / "a", *FAST, "--cam-consistency", "-1")
    assert bad.exit_code == 2 and "--cam-consistency must be >= 0" in bad.output
    bad = invoke("train", chest / "train", "-o", tmp_path / "b", *FAST, "--cam-consistency", "1", "--cam-decay", "1")
    assert bad.exit_code == 2 and "--cam-decay" in bad.output


# ------------------------------------------------------------------------- audit regressions


def test_predict_dicom_empty_window_and_a_decoder_crash_do_not_stop_the_batch(chest_model, tmp_path, monkeypatch):
    from pydicom.sequence import Sequence

    from xaicli import dicom

    pixels = (np.arange(256).reshape(16, 16) * 8).astype(np.uint16)
    folder = tmp_path / "dcm" / "normal"
    write_dicom(folder / "a_empty_window.dcm", pixels, WindowCenter=None, WindowWidth=None)
    write_dicom(folder / "b_empty_voi_lut.dcm", pixels, VOILUTSequence=Sequence([]))
    write_dicom(folder / "c_crash.dcm", pixels)
    real = dicom._read_dicom_image

    def crashing(path, frame, force):  # a decoder bug on one odd file
        if path.name == "c_crash.dcm":
            raise IndexError("list index out of range")
        return real(path, frame, force)

    monkeypatch.setattr(dicom, "_read_dicom_image", crashing)
    out = tmp_path / "pred"
    result = invoke("predict", chest_model / "model.keras", tmp_path / "dcm", "-o", out)
    assert result.exit_code == 4, result.output
    assert "c_crash.dcm" in result.output and "IndexError" in result.output and "Traceback" not in result.output
    rows = read_csv(out / "predictions.csv")
    assert [Path(r["file"]).name for r in rows] == ["a_empty_window.dcm", "b_empty_voi_lut.dcm"]


def _segmentation_model(path: Path, size: int = 16) -> Path:
    import keras

    from xaicli.api import ModelInfo
    from xaicli.models.io import save_model

    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3))
    outputs = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="head")(inputs)
    info = ModelInfo(task="segmentation", input_shape=(size, size, 3), class_names=["foreground"])
    return save_model(keras.Model(inputs, outputs), info, path)


def test_predict_two_inputs_with_one_name_get_two_mask_files(tmp_path):
    import cv2

    model = _segmentation_model(tmp_path / "seg.keras")
    rng = np.random.default_rng(0)
    for folder in ("ra", "rb"):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "01_test.tif"), rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    out = tmp_path / "pred"
    result = invoke("predict", model, tmp_path / "ra" / "01_test.tif", tmp_path / "rb" / "01_test.tif", "-o", out)
    assert result.exit_code == 0, result.output
    rows = read_csv(out / "predictions.csv")
    assert [r["mask"] for r in rows] == ["masks/01_test.png", "masks/01_test-2.png"]
    assert all((out / r["mask"]).is_file() for r in rows)
    # --overwrite replaces the earlier run's masks, never one input's mask by the other's
    again = invoke("predict", model, tmp_path / "ra" / "01_test.tif", tmp_path / "rb" / "01_test.tif", "-o", out, "--overwrite")
    assert again.exit_code == 0, again.output
    assert len(list((out / "masks").iterdir())) == 2


@pytest.mark.parametrize("text, key, what", [
    ("epochs: abc\n", "epochs", "an integer"),
    ("learning_rate: fast\n", "learning_rate", "a number"),
    ("param: 5\n", "param", "a mapping"),
    ("epochs: 2.5\n", "epochs", "an integer"),
    ("overwrite: maybe\n", "overwrite", "true or false"),
    ("batch-size: [4]\n", "batch-size", "one value"),
    ("data: elsewhere\n", "data", "the command's argument"),
])
def test_train_config_values_of_the_wrong_type_are_usage_errors(chest, tmp_path, text, key, what):
    config = tmp_path / "train.yaml"
    config.write_text(text)
    result = invoke("train", chest / "train", "-o", tmp_path / "o", "--config", config)
    assert result.exit_code == 2, result.output
    assert "train.yaml" in result.output and f"'{key}'" in result.output and what in result.output
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


def test_train_refuses_an_unknown_optimizer_before_reading_images(chest, tmp_path, monkeypatch):
    from xaicli import io

    def no_reading(*args, **kwargs):
        raise AssertionError("images were read before the options were checked")

    monkeypatch.setattr(io, "read_image", no_reading)
    result = invoke("train", chest / "train", "-o", tmp_path / "o", "--optimizer", "adamw")
    assert result.exit_code == 2 and "unknown optimizer 'adamw'" in result.output
