"""One pipeline under every command: the plugin contract, in-process plugins, the Python API, the
same inputs everywhere, one runner per model, errors worded in API terms and named as options."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import xaicli
from xaicli import plugins
from xaicli.api import Explainer, Explanation
from xaicli.cli import app
from xaicli.errors import OutputError, UsageError
from xaicli.testing import check_explainer, check_metric, check_region_source

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
CHEST = SAMPLE / "models" / "chest" / "model.keras"
NODULE = SAMPLE / "chest" / "test" / "nodule"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


class ScoreTimesBrightness(Explainer):
    """A throwaway explainer: the image's brightness times the target score."""

    name = "throwaway"

    def explain(self, runner, images, target):
        scores = runner.scores(images, target, np.arange(len(images)))
        return Explanation(images.mean(axis=-1) * scores[:, None, None])


class Undeclared(ScoreTimesBrightness):
    """Calls the gradients while declaring it needs none: check_explainer must refuse it."""

    name = "undeclared"

    def explain(self, runner, images, target):
        _, grads = runner.gradients(images, target, np.arange(len(images)))
        return Explanation(np.abs(grads).sum(axis=-1))


def test_a_new_explainer_is_one_class_and_check_explainer_covers_it(tmp_path):
    maps = check_explainer(ScoreTimesBrightness)
    assert maps.shape == (9, 16, 16)
    with pytest.raises(AssertionError, match="calls runner.gradients but declares needs_gradients = False"):
        check_explainer(Undeclared)
    with plugins.registered("explainers", "throwaway", ScoreTimesBrightness):
        assert plugins.available("explainers")["throwaway"].package == plugins.IN_PROCESS
        assert "throwaway" in CliRunner().invoke(app, ["plugins", "explainers"]).output
        out = tmp_path / "out"
        result = CliRunner().invoke(app, ["explain", str(CHEST), str(NODULE / "test_0015.png"), "-m", "throwaway,gradcam",
                                          "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert [r["method"] for r in _rows(out / "maps.csv")] == ["throwaway", "gradcam"]
    assert "throwaway" not in plugins.names("explainers")


def test_a_broken_declaration_is_reported_as_a_broken_plugin():
    class BadDisplay(ScoreTimesBrightness):
        display = "sideways"

    with plugins.registered("explainers", "bad-display", BadDisplay):
        with pytest.raises(xaicli.errors.PluginError, match="display must be one of"):
            plugins.make("explainers", "bad-display")


def test_a_plugin_that_rejects_a_parameter_gives_one_line_and_the_usage_exit_code(tmp_path):
    pytest.importorskip("xaicli_edges")
    result = CliRunner().invoke(app, ["explain", str(CHEST), str(NODULE / "test_0015.png"), "-m", "edges",
                                      "-p", "edges.ksize=4", "-o", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert "method 'edges': ksize must be 1, 3, 5 or 7, not 4" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


class Peak(xaicli.api.Metric):
    """A third-party metric without a ``normalization`` keyword: the map's maximum."""

    name = "peak"
    label = "Peak"
    higher_is_better = None

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = float(scale)

    def score(self, saliency, **context):
        return float(np.max(saliency) * self.scale)


def test_a_metric_without_a_normalization_keyword_is_scored(tmp_path):
    assert check_metric(Peak, scale=2.0) > 0
    with plugins.registered("metrics", "peak", Peak):
        out = tmp_path / "out"
        result = CliRunner().invoke(app, ["compare", str(NODULE), "--model", str(CHEST), "--methods", "gradcam",
                                          "--metrics", "entropy,peak", "--metric-param", "peak.scale=2", "-o", str(out)])
        assert result.exit_code == 0, result.output
        rows = [r for r in _rows(out / "scores.csv") if r["method"] == "gradcam"]
        assert rows and all(float(r["Peak"]) > 0 for r in rows)


def test_check_region_source_on_the_built_ins(tmp_path):
    mask = check_region_source("box", "0.25,0.25,0.75,0.5")
    assert mask.sum() == 10 * 6  # 24 x 20 image: rows 6..12, columns 5..15
    assert check_region_source("ellipse", "0.5,0.5,0.3,0.3").any()
    with pytest.raises(UsageError):
        check_region_source("box", "1,2")


@pytest.mark.parametrize("folder", ["chest/test", "faces/test", "retina/test"])
def test_explain_and_compare_take_the_same_inputs(tmp_path, folder):
    """On every shipped set: explain's maps.csv and compare's predictions.csv name the same images."""
    model = {"chest": "chest", "faces": "faces", "retina": "retina"}[folder.split("/")[0]]
    model_file = str(SAMPLE / "models" / model / "model.keras")
    explained = CliRunner().invoke(app, ["explain", model_file, str(SAMPLE / folder), "-m", "gradcam",
                                         "-o", str(tmp_path / "e")])
    assert explained.exit_code == 0, explained.output
    compared = CliRunner().invoke(app, ["compare", str(SAMPLE / folder), "--model", model_file, "--methods", "gradcam",
                                        "--metrics", "entropy", "-o", str(tmp_path / "c")])
    assert compared.exit_code == 0, compared.output
    explain_images = [r["image"] for r in _rows(tmp_path / "e" / "maps.csv")]
    compare_images = [r["file"] for r in _rows(tmp_path / "c" / "predictions.csv")]
    assert explain_images == compare_images and len(compare_images) == len(xaicli.io.discover([SAMPLE / folder]))
    if folder == "retina/test":  # the DRIVE layout: images only, not the expert or field-of-view masks
        assert len(compare_images) == 6 and all("/images/" in f for f in compare_images)


def test_compare_builds_one_runner_per_model(tmp_path, monkeypatch):
    from xaicli.runner import calls

    built = []
    original = calls.ModelRunner.__init__

    def counting(self, model, **kwargs):
        built.append(model)
        original(self, model, **kwargs)

    monkeypatch.setattr(calls.ModelRunner, "__init__", counting)
    base = ["compare", str(NODULE), "--model", str(CHEST), "--methods", "gradcam,ig", "--steps", "4",
            "--metrics", "entropy,deletion,insertion", "--deletion-steps", "4"]
    result = CliRunner().invoke(app, [*base, "-o", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert len(built) == 1  # explanations, targets and the faithfulness curves share it
    built.clear()
    result = CliRunner().invoke(app, [*base, "--sanity", "--metrics", "randomization-spearman", "-o", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert len(built) == 2 and built[0] is not built[1]  # the model, and its weight-randomised copy


def test_the_python_api_takes_arrays_and_paths_with_identical_maps():
    import cv2

    model = xaicli.load_model(CHEST)
    path = NODULE / "test_0015.png"
    by_path = xaicli.explain(model, path, methods="gradcam,ig")[0]
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # uint8 H x W, as another library reads it
    by_array = xaicli.explain(model, pixels, methods="gradcam,ig")[0]
    batch = xaicli.explain(model, np.stack([pixels, pixels[::-1]])[..., None], methods="gradcam,ig")
    for key in ("gradcam", "ig"):
        np.testing.assert_array_equal(by_path[key], by_array[key])
        # in a batch of two: the same up to the float32 rounding of a batched convolution
        np.testing.assert_allclose(batch[0][key], by_path[key], rtol=1e-4, atol=1e-9)
    assert by_path.prediction.label == by_array.prediction.label and len(batch) == 2
    assert by_path.source == path and by_array.source is None and by_array.name == "array-0"
    with pytest.raises(UsageError, match="batch_size must be at least 1"):
        xaicli.explain(model, path, batch_size=0)


def test_the_cli_names_the_option_of_an_api_parameter(tmp_path):
    result = CliRunner().invoke(app, ["compare", str(NODULE), "--model", str(CHEST), "--methods", "gradcam",
                                      "--batch-size", "0", "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--batch-size must be at least 1, not 0" in result.output, result.output


def test_the_overlay_of_the_api_is_the_png_explain_writes(tmp_path):
    from xaicli.io import read_image

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["explain", str(CHEST), str(NODULE / "test_0015.png"), "-m", "ig,rise", "--masks", "64",
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    api = xaicli.explain(CHEST, NODULE / "test_0015.png", methods=["ig", ("rise", {"n_masks": 64})])[0]
    for row in _rows(out / "maps.csv"):
        written = np.round(read_image(out / row["overlay"]) * 255).astype(np.uint8)
        np.testing.assert_array_equal(xaicli.overlay(api.image, api.maps[row["method"]]), written)
    # ig is signed: its declared display (magnitudes) is not the positive part
    positive = xaicli.overlay(api.image, api["ig"], display="positive")
    assert not np.array_equal(positive, xaicli.overlay(api.image, api.maps["ig"]))


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("index", range(len(_python_blocks(ROOT / "docs" / "python-api.md"))))
def test_the_python_api_examples_run(tmp_path, monkeypatch, index):
    (tmp_path / "sample_data").symlink_to(SAMPLE)
    monkeypatch.chdir(tmp_path)
    exec(compile(_python_blocks(ROOT / "docs" / "python-api.md")[index], f"python-api.md[{index}]", "exec"), {})


def test_importing_xaicli_keeps_tensorflow_quiet():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", "import xaicli, tensorflow; print('ok')"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok"
    assert done.stderr.strip() == "", done.stderr


def test_the_atomic_writer_never_replaces_a_file_created_meanwhile(tmp_path, monkeypatch):
    """No check-then-rename window: the name is claimed with link(), which fails if it exists."""
    from xaicli.io import AtomicFile

    target = tmp_path / "scores.csv"
    pending = AtomicFile(target, mode="w")
    pending.handle.write("ours")
    target.write_text("theirs")  # another writer finished first
    monkeypatch.setattr(Path, "exists", lambda self: False)  # even a check that misses it
    with pytest.raises(OutputError, match="exists already"):
        pending.commit()
    monkeypatch.undo()
    assert target.read_text() == "theirs" and [p.name for p in tmp_path.iterdir()] == ["scores.csv"]
