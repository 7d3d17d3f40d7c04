"""``xaicli explain`` end to end through the CLI runner: files written, maps.csv, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from xaicli.api import ModelInfo
from xaicli.cli import app
from xaicli.io import write_png
from xaicli.models.io import save_model

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


def _model(tmp: Path, task: str, channels: int = 3) -> Path:
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, channels))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inp)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv2")(x)
    if task == "segmentation":
        out = keras.layers.Conv2D(1, 1, activation="sigmoid", name="seg")(x)
        names = []
    else:
        x = keras.layers.GlobalAveragePooling2D()(x)
        if task == "classification":
            out = keras.layers.Dense(3, activation="softmax")(x)
            names = ["normal", "nodule", "cavity"]
        else:
            out = keras.layers.Dense(1)(x)
            names = []
    path = tmp / f"{task}{channels}.keras"
    save_model(keras.Model(inp, out), ModelInfo(task=task, input_shape=(16, 16, channels), class_names=names), path)
    return path


def _images(folder: Path, n: int = 3, size=(20, 24), channels: int = 3) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img{i}.png"
        write_png(path, rng.uniform(0, 1, (*size, channels)).astype(np.float32))
        paths.append(path)
    return paths


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "maps.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_explain_classification_writes_maps_overlays_and_index(tmp_path):
    model = _model(tmp_path, "classification")
    _images(tmp_path / "imgs")
    (tmp_path / "imgs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    out = tmp_path / "out"
    result = runner.invoke(app, ["explain", str(model), str(tmp_path / "imgs"), "-m", "gradcam,ig", "-m", "rise",
                                 "--steps", "16", "--masks", "40", "-p", "rise.grid_size=4", "-o", str(out), "--batch-size", "2"])
    assert result.exit_code == 4, result.output  # one broken file: the rest are explained
    assert "broken.png" in result.output
    rows = _rows(out)
    assert set(rows[0]) >= {"image", "method", "target", "prediction", "map", "overlay", "seconds", "completeness_gap", "layer"}
    assert len(rows) == 9 and {r["method"] for r in rows} == {"gradcam", "ig", "rise"}
    from xaicli import plugins
    from xaicli.io import overlay, read_image

    for r in rows:
        saliency = np.load(out / r["map"])
        assert saliency.dtype == np.float32 and saliency.shape == (20, 24)  # the image's own resolution
        # the overlay is this map over this image, in the method's display (jet, alpha 0.45)
        image = read_image(tmp_path / "imgs" / Path(r["image"]).name)
        expected = overlay(image, saliency, mode=plugins.load("explainers", r["method"]).display)
        np.testing.assert_array_equal(np.round(read_image(out / r["overlay"]) * 255).astype(np.uint8), expected)
        assert r["target"].startswith("class ")
        if r["method"] == "ig":  # a ReLU net is piecewise linear along the path: 16 nodes are exact
            assert abs(float(r["completeness_gap"])) < 1e-3
        else:
            assert r["completeness_gap"] == ""
    assert [r["layer"] for r in rows if r["method"] == "gradcam"] == ["conv2"] * 3
    # outputs are never overwritten by accident
    again = runner.invoke(app, ["explain", str(model), str(tmp_path / "imgs" / "img0.png"), "-m", "gradcam", "-o", str(out)])
    assert again.exit_code == 6 and "exists" in again.output
    ok = runner.invoke(app, ["explain", str(model), str(tmp_path / "imgs" / "img0.png"), "-m", "saliency", "-o", str(out), "--overwrite"])
    assert ok.exit_code == 0, ok.output
    assert [r["method"] for r in _rows(out)] == ["saliency"]


def test_explain_several_gradcam_layers_and_target_class(tmp_path):
    model = _model(tmp_path, "classification")
    files = _images(tmp_path / "imgs", n=1)
    out = tmp_path / "out"
    result = runner.invoke(app, ["explain", str(model), str(files[0]), "-m", "gradcam", "--layer", "all-conv",
                                 "--target", "nodule", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    assert [r["layer"] for r in rows] == ["combined", "conv1", "conv2"]
    assert all(r["target"] == "class 1 (nodule)" for r in rows)


def test_explain_regression_and_segmentation_targets(tmp_path):
    files = _images(tmp_path / "imgs", n=2)
    reg = runner.invoke(app, ["explain", str(_model(tmp_path, "regression")), str(tmp_path / "imgs"), "-m", "lime,occlusion",
                              "--samples", "30", "--segmentation", "grid", "-o", str(tmp_path / "r")])
    assert reg.exit_code == 0, reg.output
    assert all(r["target"].startswith("output = ") for r in _rows(tmp_path / "r"))
    mask = np.zeros((20, 24), bool)
    mask[5:12, 6:14] = True
    write_png(tmp_path / "mask.png", mask)
    seg_model = _model(tmp_path, "segmentation")
    seg = runner.invoke(app, ["explain", str(seg_model), str(files[0]), "-m", "gradcam,saliency",
                              "--target-mask", str(tmp_path / "mask.png"), "-o", str(tmp_path / "s")])
    assert seg.exit_code == 0, seg.output
    rows = _rows(tmp_path / "s")
    assert rows[0]["target"].startswith("given mask (")
    pred = runner.invoke(app, ["explain", str(seg_model), str(files[0]), "-m", "saliency", "-o", str(tmp_path / "p")])
    assert pred.exit_code == 0, pred.output
    target = _rows(tmp_path / "p")[0]["target"]
    from xaicli.io import read_image
    from xaicli.models.io import load_model
    from xaicli.preprocessing import preprocess

    loaded = load_model(seg_model)
    predicted = int((np.asarray(loaded.model(preprocess([read_image(files[0])], loaded.info)))[..., 0] > 0.5).sum())
    assert target == (f"predicted mask ({predicted} px)" if predicted else "whole output (empty predicted mask)")


def test_explain_dicom_input(tmp_path):
    dicom = REPO / "sample_data" / "dicom" / "IM0001.dcm"
    assert dicom.is_file(), f"{dicom} is shipped with the repository"
    model = _model(tmp_path, "classification", channels=1)
    result = runner.invoke(app, ["explain", str(model), str(dicom), "-m", "gradcam", "-o", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    row = _rows(tmp_path / "d")[0]
    from xaicli.io import read_image

    assert np.load(tmp_path / "d" / row["map"]).shape == read_image(dicom).shape[:2]


def test_explain_user_mistakes(tmp_path):
    model = _model(tmp_path, "classification")
    files = _images(tmp_path / "imgs", n=1)
    unknown = runner.invoke(app, ["explain", str(model), str(files[0]), "-m", "gradkam", "-o", str(tmp_path / "o")])
    assert unknown.exit_code == 5 and "gradcam" in unknown.output
    bad_param = runner.invoke(app, ["explain", str(model), str(files[0]), "-m", "rise", "-p", "rise.nmasks=3", "-o", str(tmp_path / "o")])
    assert bad_param.exit_code == 2 and "n_masks" in bad_param.output
    bad_layer = runner.invoke(app, ["explain", str(model), str(files[0]), "-m", "gradcam", "--layer", "nope", "-o", str(tmp_path / "o")])
    assert bad_layer.exit_code == 2 and "conv1" in bad_layer.output
    wrong_option = runner.invoke(app, ["explain", str(model), str(files[0]), "-m", "gradcam", "--steps", "5", "-o", str(tmp_path / "o")])
    assert wrong_option.exit_code == 2
    missing = runner.invoke(app, ["explain", str(model), str(tmp_path / "nothing.png"), "-m", "gradcam", "-o", str(tmp_path / "o")])
    assert missing.exit_code == 3
    assert not (tmp_path / "o").exists()
    assert "Traceback" not in unknown.output + bad_param.output + bad_layer.output + missing.output


@pytest.mark.parametrize("model,image,task", [
    ("chest", "sample_data/chest/test/cavity/test_0045.png", "classification"),
    ("faces", "sample_data/faces/test/22_0_1_test0013.jpg", "regression"),
    ("retina", "sample_data/retina/test/images/01_test.tif", "segmentation"),
])
def test_every_method_runs_on_the_shipped_models(tmp_path, model, image, task):
    """The issue's bar: every method through `xaicli explain` on the sample models of all three tasks."""
    from xaicli import plugins

    methods = ",".join(plugins.names("explainers"))
    out = tmp_path / "out"
    result = runner.invoke(app, ["explain", str(REPO / f"sample_data/models/{model}/model.keras"), str(REPO / image),
                                 "-m", methods, "--masks", "64", "--samples", "32", "--steps", "8",
                                 "-p", "scorecam.max_channels=4", "-p", "lime.segmentation=grid", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    assert {r["method"] for r in rows} == set(plugins.names("explainers"))
    for r in rows:
        saliency = np.load(out / r["map"])
        assert saliency.dtype == np.float32 and np.isfinite(saliency).all() and np.abs(saliency).max() > 0, r["method"]
    if task == "segmentation":
        assert all("mask" in r["target"] for r in rows), rows[0]["target"]
