"""Model plugins, the self-describing model file, data discovery and evaluation metrics."""

from __future__ import annotations

import zipfile

import keras
import numpy as np
import pytest

from xaicli import datasets as data
from xaicli import evaluation, plugins
from xaicli.api import ModelInfo
from xaicli.errors import InputError, ModelError, OutputError, PluginError, UsageError
from xaicli.models import get_spec
from xaicli.models.io import INFO_ENTRY, find_cam_layer, load_model, read_info, save_model

BUILD_CASES = [
    ("xray-cnn", (32, 32, 1), "classification", 3, {"width": "0.0625", "dense": "8"}),
    ("xray-cnn", (32, 32, 1), "regression", 1, {"width": 0.0625}),
    ("simple-cnn", (16, 16, 1), "classification", 2, {"depth": "2", "filters": "4"}),
    ("simple-cnn", (16, 16, 3), "regression", 1, {"depth": 1}),
    ("mobilenetv2", (32, 32, 3), "regression", 1, {"alpha": "0.35"}),
    ("mobilenetv2", (32, 32, 3), "classification", 4, {"alpha": 0.35}),
    ("unet", (16, 16, 3), "segmentation", 1, {"depth": "2", "filters": "4"}),
]


@pytest.mark.parametrize("name,shape,task,outputs,params", BUILD_CASES)
def test_specs_build_with_head_and_cam_layer(name, shape, task, outputs, params):
    spec = get_spec(name)
    model = spec.build(shape, task, outputs, **params)
    assert model.input_shape == (None, *shape)
    if task == "segmentation":
        assert model.output_shape == (None, shape[0], shape[1], outputs)
    else:
        assert model.output_shape == (None, outputs)
    x = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    y = np.asarray(model(x))
    assert np.isfinite(y).all()
    if task == "classification":
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    cam = spec.default_cam_layer(model)
    layer_shape = model.get_layer(cam).output.shape
    assert len(layer_shape) == 4 and layer_shape[1] >= 1


def test_resnet50_builds_without_download():
    model = get_spec("resnet50").build((32, 32, 3), "classification", 2)
    assert model.get_layer("conv5_block3_out") is not None
    assert get_spec("resnet50").preprocessing == "caffe"


def test_xray_cnn_is_the_study_architecture():
    model = get_spec("xray-cnn").build((260, 260, 1), "classification", 9)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [128, 128, 256, 256, 512, 512]
    assert all(c.kernel_size == (3, 3) for c in convs)
    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    drops = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert len(pools) == 6 and len(drops) == 4 and all(d.rate == pytest.approx(0.1) for d in drops)
    assert [d.units for d in dense] == [128, 256, 9]
    assert dense[-1].activation.__name__ == "softmax"


def test_simple_cnn_depth_grows():
    spec = get_spec("simple-cnn")
    counts = [sum(isinstance(layer, keras.layers.Conv2D) for layer in spec.build((32, 32, 1), "classification", 2, depth=d).layers)
              for d in (1, 2, 4)]
    assert counts == [1, 2, 4]


def test_simple_cnn_pools_set_the_cam_layer_resolution():
    spec = get_spec("simple-cnn")
    default = spec.build((64, 64, 1), "classification", 2, depth=4)
    finer = spec.build((64, 64, 1), "classification", 2, depth=4, pools="2")
    assert default.get_layer("relu4").output.shape[1:3] == (8, 8)
    assert finer.get_layer("relu4").output.shape[1:3] == (16, 16)
    with pytest.raises(UsageError, match="pools < depth"):
        spec.build((64, 64, 1), "classification", 2, depth=2, pools=2)


def test_spec_errors():
    with pytest.raises(UsageError, match="no parameter"):
        get_spec("simple-cnn").build((16, 16, 1), "classification", 2, bogus=1)
    with pytest.raises(UsageError, match="does not do segmentation"):
        get_spec("simple-cnn").build((16, 16, 1), "segmentation", 1)
    with pytest.raises(UsageError, match="divisible by 8"):
        get_spec("unet").build((20, 20, 1), "segmentation", 1)
    with pytest.raises(UsageError, match="not a valid int"):
        get_spec("simple-cnn").build((16, 16, 1), "classification", 2, depth="deep")
    with pytest.raises(PluginError, match="unknown model 'no-such-net'"):
        get_spec("no-such-net")
    assert set(plugins.names("models")) >= {"xray-cnn", "simple-cnn", "mobilenetv2", "resnet50", "unet"}


def _tiny_classifier(channels=1, classes=3):
    return get_spec("simple-cnn").build((16, 16, channels), "classification", classes, depth=2, filters=4)


def test_save_and_load_round_trip(tmp_path):
    model = _tiny_classifier()
    info = ModelInfo(task="classification", input_shape=(16, 16, 1), class_names=["a", "b", "c"],
                     cam_layer="relu2", normal_class="a", architecture="simple-cnn", extra={"k": 1})
    path = save_model(model, info, tmp_path / "m.keras")
    assert INFO_ENTRY in zipfile.ZipFile(path).namelist()
    assert not list(tmp_path.glob(".*"))  # no temporary left behind
    loaded = load_model(path)
    assert loaded.info == info
    x = np.random.default_rng(1).random((3, 16, 16, 1), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(loaded.model(x)), np.asarray(model(x)), rtol=1e-6)
    # still a plain Keras file for other tools
    assert keras.models.load_model(path, compile=False).output_shape == (None, 3)
    with pytest.raises(OutputError, match="exists already"):
        save_model(model, info, path)
    save_model(model, info, path, overwrite=True)
    with pytest.raises(UsageError, match=".keras"):
        save_model(model, info, tmp_path / "m.h5")


def test_foreign_keras_file_with_and_without_flags(tmp_path):
    model = _tiny_classifier(channels=3, classes=2)
    path = tmp_path / "foreign.keras"
    model.save(path)
    assert read_info(path) is None
    loaded = load_model(path)
    assert loaded.info.task == "classification"
    assert loaded.info.class_names == ["class_0", "class_1"]
    assert loaded.info.input_shape == (16, 16, 3)
    # no stored CAM layer: the runner's default (nested-aware, never the output head) decides
    assert loaded.info.cam_layer is None and find_cam_layer(model) == "relu2"
    flagged = load_model(path, class_names=["cat", "dog"], preprocessing="symmetric", cam_layer="relu1")
    assert flagged.info.class_names == ["cat", "dog"] and flagged.info.preprocessing == "symmetric"
    assert flagged.info.cam_layer == "relu1"
    with pytest.raises(ModelError, match="2 classes but 3"):
        load_model(path, class_names=["a", "b", "c"])
    with pytest.raises(UsageError, match="no layer named"):
        load_model(path, cam_layer="nope")
    with pytest.raises(ModelError, match="takes inputs of shape"):
        load_model(path, input_shape="32,32,3")


def test_foreign_regression_and_segmentation_inferred(tmp_path):
    reg = get_spec("simple-cnn").build((16, 16, 1), "regression", 1, depth=1)
    reg.save(tmp_path / "reg.keras")
    assert load_model(tmp_path / "reg.keras").info.task == "regression"
    seg = get_spec("unet").build((16, 16, 1), "segmentation", 1, depth=2, filters=2)
    seg.save(tmp_path / "seg.keras")
    assert load_model(tmp_path / "seg.keras").info.task == "segmentation"


def test_safe_mode_refuses_code_unless_allowed(tmp_path):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    keras.Model(inputs, outputs).save(tmp_path / "lambda.keras")
    with pytest.raises(ModelError, match="--allow-unsafe"):
        load_model(tmp_path / "lambda.keras")
    assert load_model(tmp_path / "lambda.keras", allow_unsafe=True).info.task == "classification"


def test_corrupt_and_missing_model_files(tmp_path):
    (tmp_path / "junk.keras").write_bytes(b"not a zip at all")
    with pytest.raises(ModelError, match="not a readable Keras model"):
        load_model(tmp_path / "junk.keras")
    model = _tiny_classifier()
    good = tmp_path / "good.keras"
    model.save(good)
    data_bytes = good.read_bytes()
    (tmp_path / "cut.keras").write_bytes(data_bytes[: len(data_bytes) // 2])
    with pytest.raises(ModelError):
        load_model(tmp_path / "cut.keras")
    with pytest.raises(InputError, match="missing.keras: no such model file"):
        load_model(tmp_path / "missing.keras")
    (tmp_path / "model.txt").write_text("x")
    with pytest.raises(ModelError, match="not a model file"):
        load_model(tmp_path / "model.txt")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ModelError, match="SavedModel"):
        load_model(tmp_path / "folder")


# ------------------------------------------------------------------------------------- data


def test_utkface_and_custom_patterns():
    assert data.value_from_name(data.Path("34_1_2_20170116.jpg"), "utkface") == 34.0
    assert data.value_from_name(data.Path("x_34.png"), "utkface") is None
    assert data.value_from_name(data.Path("scan-7.5-b.png"), "scan-{dose}-*") == 7.5
    with pytest.raises(UsageError):
        data.compile_pattern("no-field-*")


def test_stratified_split_keeps_class_shares_and_is_seeded():
    labels = [0] * 50 + [1] * 30 + [2] * 20
    train, val = data.stratified_split(labels, 0.2, seed=3, stratify=True)
    assert len(set(train) & set(val)) == 0 and len(train) + len(val) == 100
    counts = np.bincount(np.asarray(labels)[val])
    assert counts.tolist() == [10, 6, 4]
    again = data.stratified_split(labels, 0.2, seed=3, stratify=True)
    assert np.array_equal(val, again[1])
    assert not np.array_equal(val, data.stratified_split(labels, 0.2, seed=4, stratify=True)[1])
    with pytest.raises(UsageError):
        data.stratified_split(labels, 1.0, seed=0, stratify=True)


def test_labels_csv(tmp_path):
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("file,age\na.png,3\nsub/b.png,4.5\n")
    assert data.read_labels_csv(csv_path) == {"a.png": 3.0, "sub/b.png": 4.5}
    csv_path.write_text("file,age\na.png,old\n")
    with pytest.raises(InputError, match="line 2: age value 'old' is not a number"):
        data.read_labels_csv(csv_path)
    csv_path.write_text("name_of_thing,age\n")
    with pytest.raises(InputError, match="no rows"):
        data.read_labels_csv(csv_path)


def test_drive_mask_matching(tmp_path):
    (tmp_path / "1st_manual").mkdir()
    for n in ("21", "22"):
        (tmp_path / "1st_manual" / f"{n}_manual1.gif").write_bytes(b"GIF89a")
    from pathlib import Path

    from xaicli.io import MaskMatcher

    index = MaskMatcher(tmp_path / "1st_manual")
    assert index.get(Path("21_training.tif")).name == "21_manual1.gif"
    assert index.get(Path("23_training.tif")) is None


# -------------------------------------------------------------------------------- evaluation


def test_classification_report_by_hand():
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 0, 1, 1, 0, 2, 2, 0, 1]
    report = evaluation.classification_report(y_true, y_pred, ["normal", "a", "b"], normal_class="normal")
    assert report["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [1, 1, 2]]
    assert report["accuracy"] == pytest.approx(5 / 9)
    normal = report["per_class"][0]
    assert normal["precision"] == pytest.approx(2 / 4) and normal["recall"] == pytest.approx(2 / 3)
    assert normal["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert report["per_class"][2]["precision"] == pytest.approx(1.0) and report["per_class"][2]["support"] == 4
    assert report["missed_pathologies"] == 2  # one 'a' and one 'b' called normal
    assert report["missed_pathology_rate"] == pytest.approx(2 / 6)


def test_macro_averages_leave_out_classes_absent_from_truth_and_predictions():
    report = evaluation.classification_report([0, 0, 2, 2], [0, 0, 2, 2], ["normal", "a", "b", "c"])
    assert report["macro_avg"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}  # not 0.5
    assert report["macro_classes"] == ["normal", "b"]
    # a class only predicted (never true) counts, as in scikit-learn: its precision is 0
    wrong = evaluation.classification_report([0, 0], [0, 1], ["normal", "a", "b"])
    assert wrong["macro_classes"] == ["normal", "a"]
    assert wrong["macro_avg"]["precision"] == pytest.approx(0.5)
    assert wrong["macro_avg"]["recall"] == pytest.approx(0.25)


def test_regression_and_dice():
    r = evaluation.regression_report([1.0, 2.0, 5.0], [1.0, 4.0, 2.0])
    assert r["mae"] == pytest.approx(5 / 3) and r["rmse"] == pytest.approx(np.sqrt(13 / 3))
    assert r["mae_constant_mean"] == pytest.approx(np.mean(np.abs(np.array([1, 4, 2]) - 7 / 3)))
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2] = True
    b[1:3] = True
    dice, iou = evaluation.dice_iou(a, b)
    assert dice == pytest.approx(2 * 4 / 16) and iou == pytest.approx(4 / 12)
    assert evaluation.dice_iou(np.zeros((2, 2)), np.zeros((2, 2))) == (1.0, 1.0)


def test_savedmodel_folder_and_legacy_h5(tmp_path):
    model = _tiny_classifier()
    model.export(tmp_path / "saved", verbose=False)
    loaded = load_model(tmp_path / "saved")
    assert loaded.info.task == "classification" and loaded.info.input_shape == (16, 16, 1)
    x = np.random.default_rng(2).random((2, 16, 16, 1), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(loaded.model(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "legacy.h5")
    assert load_model(tmp_path / "legacy.h5", class_names=["a", "b", "c"]).info.class_names == ["a", "b", "c"]


def test_applications_take_a_local_weights_file(tmp_path):
    keras.utils.set_random_seed(7)
    backbone = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.35)
    backbone.save_weights(tmp_path / "mnv2.weights.h5")
    keras.utils.set_random_seed(8)
    model = get_spec("mobilenetv2").build((32, 32, 3), "regression", 1, alpha=0.35, weights=str(tmp_path / "mnv2.weights.h5"))
    np.testing.assert_array_equal(model.get_layer("Conv1").get_weights()[0], backbone.get_layer("Conv1").get_weights()[0])
    with pytest.raises(InputError, match="missing.h5: weights file not found .xaicli never downloads"):
        get_spec("mobilenetv2").build((32, 32, 3), "regression", 1, weights=str(tmp_path / "missing.h5"))


def test_models_that_cannot_take_images_are_refused_naming_the_model(tmp_path):
    """4-channel input, a vector input and two outputs: exit 7 with the model's file named."""
    import keras
    from typer.testing import CliRunner

    from xaicli.cli import app
    from xaicli.io import write_png

    write_png(tmp_path / "in" / "a.png", np.full((8, 8, 1), 0.5, np.float32))
    inputs = keras.Input((8, 8, 4))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, name="conv")(inputs))
    keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(pooled)).save(tmp_path / "rgba.keras")
    vector = keras.Input((10,))
    keras.Model(vector, keras.layers.Dense(2, activation="softmax")(vector)).save(tmp_path / "vector.keras")
    image = keras.Input((8, 8, 1))
    flat = keras.layers.Flatten()(image)
    keras.Model(image, [keras.layers.Dense(2)(flat), keras.layers.Dense(1)(flat)]).save(tmp_path / "two.keras")
    cases = {"rgba.keras": "4 channels", "vector.keras": "not an image", "two.keras": "2 outputs"}
    for name, reason in cases.items():
        result = CliRunner().invoke(app, ["predict", str(tmp_path / name), str(tmp_path / "in"), "-o", str(tmp_path / "o")])
        assert result.exit_code == 7, (name, result.output)
        assert name in result.output and reason in result.output, result.output
        assert "--input-shape" not in result.output and "Traceback" not in result.output
