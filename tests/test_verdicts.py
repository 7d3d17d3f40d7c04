"""Comparisons that give a verdict: groups, several regions, lift, gates, warnings -- through the CLI,
checking the files written and the exit codes; and the spurious-tag study of the verdicts issue."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from xaicli.cli import app
from xaicli.errors import EXIT_GATE

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
CHEST = SAMPLE / "models" / "chest" / "model.keras"
FAST = ["--metrics", "roi-ratio,pointing-hit,lift,entropy", "--rows-per-page", "30"]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def invoke(*args) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def _summary(out: Path) -> dict[tuple[str, str], dict[str, str]]:
    return {(r["Group"], r["Method"]): r for r in _rows(out / "summary.csv")}


@pytest.fixture(scope="module")
def chest_compare(tmp_path_factory):
    """One comparison of the shipped chest test set, grouped by true class, outcome and folder."""
    out = tmp_path_factory.mktemp("chest") / "out"
    result = invoke("compare", SAMPLE / "chest" / "test", "--model", CHEST, "--methods", "gradcam,saliency",
                    "--roi", SAMPLE / "chest" / "masks" / "lesion" / "test", "--group-by", "true,outcome,folder",
                    "-o", out, "--json", *FAST)
    return out, result


def test_groups_per_class_and_outcome_with_their_size_and_accuracy(chest_compare):
    out, result = chest_compare
    assert result.exit_code == 0, result.output
    summary = _summary(out)
    predictions = _rows(out / "predictions.csv")
    correct = [p for p in predictions if p["correct"] == "1"]
    assert summary[("all", "gradcam")]["Images"] == "60"
    assert float(summary[("all", "gradcam")]["Accuracy"]) == pytest.approx(len(correct) / 60, abs=1e-4)
    assert summary[("outcome=correct", "gradcam")]["Images"] == str(len(correct))
    assert float(summary[("outcome=correct", "gradcam")]["Accuracy"]) == 1.0
    assert float(summary[("outcome=incorrect", "gradcam")]["Accuracy"]) == 0.0
    for cls in ("normal", "nodule", "consolidation", "cavity"):
        assert summary[(f"true={cls}", "gradcam")]["Images"] == "15"
        assert summary[(f"folder={cls}", "gradcam")]["Images"] == "15"
    # a group's mean is the mean of its images' scores
    scores = _rows(out / "scores.csv")
    nodules = [float(r["RoiLift"]) for r in scores if r["method"] == "gradcam" and "/nodule/" in r["image"]]
    assert float(summary[("true=nodule", "gradcam")]["RoiLift"]) == pytest.approx(np.mean(nodules), rel=1e-4)
    payload = json.loads(result.stdout)
    assert {r["Group"] for r in payload["summary"]} >= {"all", "true=nodule", "outcome=correct"}
    assert payload["directions"]["RoiLift"] == "higher" and payload["directions"]["Entropy"] is None
    assert isinstance(payload["summary"][0]["RoiLift"], float)  # numbers as numbers
    assert payload["Accuracy"] == pytest.approx(len(correct) / 60, abs=1e-4)


def test_lift_and_the_random_row_follow_the_same_rules(chest_compare):
    out, _ = chest_compare
    summary = _summary(out)
    assert 0.5 < float(summary[("all", "random")]["RoiLift"]) < 1.5  # chance is 1
    assert float(summary[("all", "gradcam")]["RoiLift"]) > 4  # Grad-CAM looks at the lesion
    assert float(summary[("all", "gradcam")]["PointingHit"]) >= 0.8


def test_a_gate_passes_fails_and_names_what_failed(tmp_path):
    base = ["compare", SAMPLE / "chest" / "test" / "nodule", "--model", CHEST, "--methods", "gradcam",
            "--roi", SAMPLE / "chest" / "masks" / "lesion" / "test", *FAST]
    passed = invoke(*base, "-o", tmp_path / "a", "--fail-if", "gradcam.RoiLift<2")
    assert passed.exit_code == 0, passed.output
    failed = invoke(*base, "-o", tmp_path / "b", "--fail-if", "gradcam.RoiLift<1000", "--fail-if",
                    "gradcam.PointingHit<0.1@true=nodule")
    assert failed.exit_code == EXIT_GATE, failed.output
    assert "gradcam.RoiLift in group all = " in failed.output and "< 1000" in failed.output
    assert "gate 'gradcam.RoiLift<1000' failed" in failed.output and "(15 images)" in failed.output
    assert "PointingHit<0.1@true=nodule" not in failed.output  # that gate passed
    assert (tmp_path / "b" / "summary.csv").is_file()  # the outputs are written all the same
    missing = invoke(*base, "-o", tmp_path / "c", "--fail-if", "gradcam.RoiLift<1@true=normal")
    assert missing.exit_code == EXIT_GATE and "has no value" in missing.output


@pytest.mark.parametrize("gate, message", [
    ("gradcam.RoiLift", "write METHOD.COLUMN<VALUE"),
    ("rise.RoiLift<2", "no method 'rise'"),
    ("gradcam.Lfit<2", "no column 'Lfit'"),
])
def test_a_bad_gate_is_refused_before_any_model_call(tmp_path, gate, message):
    result = invoke("compare", SAMPLE / "chest" / "test" / "nodule", "--model", CHEST, "--methods", "gradcam",
                    "--roi", SAMPLE / "chest" / "masks" / "lesion" / "test", "-o", tmp_path / "o", "--fail-if", gate)
    assert result.exit_code == 2 and message in result.output and "--fail-if" in result.output, result.output
    assert not (tmp_path / "o").exists()


def test_several_regions_give_columns_per_region(tmp_path):
    out = tmp_path / "out"
    result = invoke("compare", SAMPLE / "chest" / "test" / "nodule", "--model", CHEST, "--methods", "gradcam",
                    "--roi", f"lesion={SAMPLE / 'chest' / 'masks' / 'lesion' / 'test'}",
                    "--roi", f"lungs={SAMPLE / 'chest' / 'masks' / 'lungs' / 'test'}", "-o", out, *FAST)
    assert result.exit_code == 0, result.output
    row = _summary(out)[("all", "gradcam")]
    for column in ("lesionRatio", "lesionLift", "lesionPointingHit", "lungsRatio", "lungsLift", "lungsPointingHit"):
        assert column in row
    # the lesion lies inside a lung: more of the map's mass falls in the lungs, but per area the lesion wins
    assert float(row["lungsRatio"]) > float(row["lesionRatio"])
    assert float(row["lesionLift"]) > float(row["lungsLift"])
    scores = _rows(out / "scores.csv")
    assert scores[0]["region"] == "lesion: ok; lungs: ok"
    same_name = invoke("compare", SAMPLE / "chest" / "test" / "nodule", "--model", CHEST, "--roi", "a=box:0,0,1,1",
                       "--roi", "a=box:0,0,0.5,0.5", "-o", tmp_path / "o2")
    assert same_name.exit_code == 2 and "distinct names" in same_name.output


def _constant_model(path: Path) -> Path:
    """A 'model' that answers class 0 whatever the image: it has learned nothing."""
    import keras

    from xaicli.api import ModelInfo
    from xaicli.models.io import save_model

    inp = keras.Input((64, 64, 1))
    h = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="conv", kernel_initializer="zeros")(inp)
    out = keras.layers.Dense(4, activation="softmax", bias_initializer=keras.initializers.Constant([3.0, 0, 0, 0]),
                             kernel_initializer="zeros")(keras.layers.GlobalAveragePooling2D()(h))
    info = ModelInfo(task="classification", input_shape=(64, 64, 1),
                     class_names=["cavity", "consolidation", "nodule", "normal"], cam_layer="conv")
    return save_model(keras.Model(inp, out), info, path)


def test_warnings_a_person_would_want(tmp_path):
    model = _constant_model(tmp_path / "constant.keras")
    out = tmp_path / "out"
    result = invoke("compare", SAMPLE / "chest" / "test", "--model", model, "--methods", "gradcam,rise",
                    "-p", "rise.n_masks=16", "--roi", SAMPLE / "chest" / "masks" / "lesion" / "test", "-o", out,
                    "--metrics", "entropy,deletion,consistency", "--deletion-steps", "4", "--json")
    assert result.exit_code == 0, result.output
    kinds = {(w["kind"], w["method"]) for w in _rows(out / "warnings.csv")}
    assert ("one-class", "") in kinds and ("chance", "") in kinds and ("consistency-at-chance", "") in kinds
    assert ("constant-maps", "gradcam") in kinds  # a zero model: every Grad-CAM map is zero
    assert ("unreliable", "rise") in kinds  # 16 masks
    assert ("no-better-than-random", "gradcam") in kinds
    payload = json.loads(result.stdout)
    assert {w["kind"] for w in payload["warnings"]} >= {"one-class", "chance", "constant-maps", "unreliable"}
    assert "predicts 'cavity' for every one of the 60 images" in result.output
    scores = [r for r in _rows(out / "scores.csv") if r["method"] == "gradcam"]
    assert all(r["flags"] == "constant" for r in scores)
    rise = [r for r in _rows(out / "scores.csv") if r["method"] == "rise"]
    assert all(math.isfinite(float(r["reliability"])) for r in rise) and any("unreliable" in r["flags"] for r in rise)
    # the shipped model raises none of these on its own test set
    good = invoke("compare", SAMPLE / "chest" / "test" / "nodule", "--model", CHEST, "--methods", "gradcam",
                  "-o", tmp_path / "good", "--metrics", "entropy")
    assert good.exit_code == 0 and not [w for w in _rows(tmp_path / "good" / "warnings.csv") if w["kind"] != "one-class"]


def test_regression_error_bands_and_mae(tmp_path):
    out = tmp_path / "out"
    result = invoke("compare", SAMPLE / "faces" / "test", "--model", SAMPLE / "models" / "faces" / "model.keras",
                    "--methods", "gradcam", "--roi", f"face-masks:{SAMPLE / 'faces' / 'masks' / 'test'}", "-o", out, *FAST)
    assert result.exit_code == 0, result.output
    summary = _summary(out)
    predictions = _rows(out / "predictions.csv")
    errors = [float(p["abs_error"]) for p in predictions]
    assert float(summary[("all", "gradcam")]["MAE"]) == pytest.approx(np.mean(errors), rel=1e-4)
    bands = sorted(g for g, m in summary if g.startswith("error") and m == "gradcam")
    assert len(bands) >= 2 and sum(int(summary[(b, "gradcam")]["Images"]) for b in bands) == 40
    assert "MAE on the explained images" in result.output and "abs_error" in result.output  # the age study's table


def test_the_spurious_tag_study(tmp_path):
    """A model trained where a corner tag gives the class away: compare with the tag as a region shows
    Grad-CAM and IG looking at the tag (lift well above 1), and a gate on the real lesion fails."""
    import cv2

    from xaicli.io import write_png

    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 10)):
        for cls in ("clear", "lesion"):
            for i in range(n):
                image = rng.normal(0.4, 0.05, (32, 32)).astype(np.float32)
                lesion = np.zeros((32, 32), np.uint8)
                tag = np.zeros((32, 32), np.uint8)
                if cls == "lesion":  # a faint lesion somewhere, and the tag that gives it away
                    cv2.circle(lesion, tuple(int(v) for v in rng.integers(10, 22, 2)), 3, 1, -1)
                    image[lesion > 0] += 0.08
                    tag[1:5, 1:5] = 1
                    image[tag > 0] = 1.0
                name = f"{cls}_{split}_{i:02d}.png"
                write_png(tmp_path / split / cls / name, np.clip(image, 0, 1)[..., None])
                write_png(tmp_path / "tags" / split / cls / name, tag.astype(bool))
                write_png(tmp_path / "lesions" / split / cls / name, lesion.astype(bool))
    trained = invoke("train", tmp_path / "train", "--model", "simple-cnn", "--param", "depth=2", "--param", "pools=1",
                     "--param", "filters=8", "--epochs", "20", "--batch-size", "8", "--seed", "0", "-o", tmp_path / "model")
    assert trained.exit_code == 0, trained.output
    out = tmp_path / "out"
    result = invoke("compare", tmp_path / "test" / "lesion", "--model", tmp_path / "model" / "model.keras",
                    "--methods", "gradcam,ig", "--steps", "16", "--roi", f"tag={tmp_path / 'tags' / 'test'}",
                    "--roi", f"lesion={tmp_path / 'lesions' / 'test'}", "--metrics", "roi-ratio,lift,pointing-hit",
                    "--fail-if", "gradcam.lesionPointingHit<0.5", "-o", out)
    summary = _summary(out)
    for method in ("gradcam", "ig"):
        assert float(summary[("all", method)]["tagLift"]) > 5, method  # the tag covers 1.6 % of the image
        assert float(summary[("all", method)]["tagLift"]) > float(summary[("all", method)]["lesionLift"])
    assert result.exit_code == EXIT_GATE, result.output
    assert "gradcam.lesionPointingHit in group all" in result.output
