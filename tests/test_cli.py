"""The CLI a newcomer expects: one vocabulary, old spellings for one release, help a person can use,
progress everywhere, fail-fast checks, sizes that make sense, and the models people have."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from xaicli.cli import app
from xaicli.io import write_png

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
CHEST = SAMPLE / "models" / "chest" / "model.keras"
NODULE = SAMPLE / "chest" / "test" / "nodule"
COMMANDS = ["train", "predict", "explain", "score", "compare", "dicom-anonymize", "consistency-study", "plugins"]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_an_example_clean_placeholders_and_the_exit_codes(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    text = result.output
    assert "Examples:" in text and f"xaicli {command}" in text.split("Examples:", 1)[1]
    assert "Exit codes:" in text and "8 a --fail-if gate failed" in text
    for placeholder in ("<bool>", "<path>", "<list[", "<int>", "<str>", "<float>"):
        assert placeholder not in text, (command, placeholder)
    assert "{" not in text.splitlines()[0], text.splitlines()[0]  # Usage: xaicli explain [OPTIONS] INPUT...
    if command not in ("plugins",):
        assert "-o, --output, --out" in text or command == "score" and "--output, --out" in text


def test_the_main_help_lists_the_exit_codes_and_completion_is_there():
    assert "Exit codes: 0 ok" in invoke("--help").output
    completion = subprocess.run([sys.executable, "-m", "xaicli", "--show-completion", "bash"], capture_output=True,
                                text=True, env={"SHELL": "/bin/bash", "PATH": "/usr/bin:/bin"}, timeout=60)
    assert completion.returncode == 0 and "_xaicli_completion" in completion.stdout


def test_minus_m_is_the_method_everywhere_and_old_spellings_still_work_for_a_release(tmp_path):
    # the bug: `compare nodule -m gradcam --model ...` silently ran the four default methods
    result = invoke("compare", NODULE, "-m", "gradcam", "--model", CHEST, "--metrics", "entropy", "-o", tmp_path / "c")
    assert result.exit_code == 0, result.output
    assert {r["method"] for r in _rows(tmp_path / "c" / "scores.csv")} == {"gradcam", "random"}
    # repeatable and comma lists, in compare as in explain
    result = invoke("compare", NODULE, "-m", "gradcam", "-m", "saliency,gradcam++", "--model", CHEST, "--metrics",
                    "entropy", "-o", tmp_path / "c2")
    assert {r["method"] for r in _rows(tmp_path / "c2" / "scores.csv")} == {"gradcam", "saliency", "gradcam++", "random"}
    # compare -m MODEL (the model until this release), explain MODEL INPUT (positional)
    old = invoke("compare", NODULE, "-m", CHEST, "--methods", "gradcam", "--metrics", "entropy", "-o", tmp_path / "c3")
    assert old.exit_code == 0 and "deprecated: -m" in old.output and "--model" in old.output, old.output
    old = invoke("explain", CHEST, NODULE / "test_0015.png", "-m", "gradcam", "-o", tmp_path / "e")
    assert old.exit_code == 0 and "deprecated: MODEL as the first argument" in old.output
    new = invoke("explain", "--model", CHEST, NODULE / "test_0015.png", "-m", "gradcam", "-o", tmp_path / "e2")
    assert new.exit_code == 0 and "deprecated" not in new.output
    # an option a command does not take is an error, not ignored
    assert invoke("predict", "--model", CHEST, NODULE, "--steps", "5").exit_code == 2


def test_every_output_spelling_is_accepted(tmp_path):
    for spelling in ("-o", "--output", "--out"):
        result = invoke("predict", "--model", CHEST, NODULE, spelling, tmp_path / spelling.strip("-"))
        assert result.exit_code == 0 and (tmp_path / spelling.strip("-") / "predictions.csv").is_file(), result.output


def test_train_restores_its_best_epoch_and_says_when_the_model_is_not_usable(tmp_path):
    result = invoke("train", SAMPLE / "chest" / "train", "--model", "simple-cnn", "--param", "depth=2", "--epochs", "4",
                    "--json", "-o", tmp_path / "m")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    history = _rows(tmp_path / "m" / "history.csv")
    losses = [float(r["val_loss"]) for r in history]
    assert doc["best_epoch"] == int(np.argmin(losses)) + 1
    assert json.loads((tmp_path / "m" / "model.keras").parent.joinpath("validation.json").read_text())["n"] == 48
    # a model that cannot learn (a learning rate of almost nothing): a warning and usable: false
    hopeless = invoke("train", SAMPLE / "chest" / "train", "--model", "simple-cnn", "--param", "depth=1", "--epochs", "1",
                      "--learning-rate", "1e-9", "--json", "-o", tmp_path / "h")
    assert hopeless.exit_code == 0, hopeless.output
    doc = json.loads(hopeless.stdout)
    assert doc["usable"] is False and doc["warnings"] and "not usable" in hopeless.output
    # the old -m spelling of the model plugin still works, for one release
    old = invoke("train", SAMPLE / "chest" / "train", "-m", "simple-cnn", "--param", "depth=1", "--epochs", "1",
                 "-o", tmp_path / "old")
    assert old.exit_code == 0 and "deprecated: -m simple-cnn" in old.output


def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path):
    done = subprocess.run([sys.executable, "-m", "xaicli", "compare", str(NODULE), "--model", str(CHEST), "-m", "gradcam",
                           "--metrics", "entropy", "-o", str(tmp_path / "c")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("compare: ")]
    assert lines[0] == "compare: started" and "15/15 images (100 %)" in lines[-1], done.stderr
    quiet = subprocess.run([sys.executable, "-m", "xaicli", "predict", "--model", str(CHEST), str(NODULE), "--quiet",
                            "-o", str(tmp_path / "p")], capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and "predict: " not in quiet.stderr


def test_a_plain_progress_line_comes_while_one_batch_takes_long(monkeypatch):
    """The heartbeat: a slow batch (RISE on a big model) still prints a line every HEARTBEAT seconds."""
    from xaicli.cli import progress

    monkeypatch.setattr(progress, "HEARTBEAT", 0.3)
    lines: list[str] = []

    class Console:
        def print(self, text, **_):
            lines.append(text)

    with progress.Progress(Console(), "compare", interactive=False) as update:
        update(0, 10)
        deadline = time.monotonic() + 5
        while len(lines) < 3 and time.monotonic() < deadline:
            threading.Event().wait(0.1)
        update(10, 10)
    assert lines[0] == "compare: started" and any("working for" in line for line in lines[1:]), lines
    assert lines[-1].startswith("compare: 10/10 images (100 %)") and "done in" in lines[-1]


def test_fail_fast_before_any_model_call(tmp_path, monkeypatch):
    from xaicli.runner import calls

    def no_calls(self, *args, **kwargs):
        raise AssertionError("the model was called before the mistake was reported")

    monkeypatch.setattr(calls.ModelRunner, "predict", no_calls)
    (tmp_path / "afile").write_text("not a folder")
    unwritable = invoke("explain", "--model", CHEST, NODULE, "-m", "gradcam", "-o", tmp_path / "afile" / "out")
    assert unwritable.exit_code == 6 and "afile is a file" in unwritable.output, unwritable.output
    layer = invoke("compare", NODULE, "--model", CHEST, "-m", "gradcam", "--layer", "nope", "-o", tmp_path / "c")
    assert layer.exit_code == 2 and "layer 'nope' not found" in layer.output
    bad_param = invoke("compare", NODULE, "--model", CHEST, "-m", "rise", "-p", "rise.n_masks=-4", "-o", tmp_path / "c")
    assert bad_param.exit_code == 2 and "n_masks" in bad_param.output
    region = invoke("compare", NODULE, "--model", CHEST, "-m", "gradcam", "--roi", tmp_path / "no" / "masks", "-o", tmp_path / "c")
    assert region.exit_code == 3 and "does not exist" in region.output
    assert not (tmp_path / "c").exists()


def test_sizes_are_bounded_and_odd_sizes_are_said(tmp_path):
    big = np.random.default_rng(0).random((1500, 1200, 1)).astype(np.float32)
    write_png(tmp_path / "in" / "big.png", big)
    write_png(tmp_path / "in" / "dot.png", np.ones((1, 1, 1), np.float32))
    result = invoke("explain", "--model", CHEST, tmp_path / "in", "-m", "gradcam", "--max-size", "300", "-o", tmp_path / "o")
    assert result.exit_code == 4, result.output  # the 1x1 image is refused, the big one explained
    assert "dot.png: image is 1x1 px: too small to explain" in result.output
    assert "big.png: 1200x1500 px shrunk to the model's 64x64" in result.output
    saliency = np.load(tmp_path / "o" / "big" / "gradcam_relu4.npy")
    assert saliency.shape == (300, 240)  # the long side at --max-size, the aspect kept
    from xaicli.io import read_image

    assert read_image(tmp_path / "o" / "big" / "gradcam_relu4.png").shape[:2] == (300, 240)
    model_size = invoke("explain", "--model", CHEST, tmp_path / "in" / "big.png", "-m", "gradcam", "--at-model-size",
                        "-o", tmp_path / "o2")
    assert model_size.exit_code == 0 and np.load(tmp_path / "o2" / "big" / "gradcam_relu4.npy").shape == (64, 64)


def _tiny(path: Path, outputs: int = 1) -> Path:
    import keras

    inp = keras.Input((16, 16, 1), name="image")
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp)
    pooled = keras.layers.GlobalAveragePooling2D()(h)
    heads = [keras.layers.Dense(3, activation="softmax", name="kind")(pooled),
             keras.layers.Dense(1, name="size")(pooled)][:max(outputs, 1)]
    model = keras.Model(inp, heads if outputs > 1 else heads[0])
    if path.suffix:
        model.save(path)
    else:
        model.export(path, verbose=False)
    return path


def test_the_models_people_have(tmp_path):
    for i in range(2):
        write_png(tmp_path / "in" / f"i{i}.png", np.random.default_rng(i).random((16, 16, 1)).astype(np.float32))
    saved = _tiny(tmp_path / "saved")
    ok = invoke("explain", "--model", saved, tmp_path / "in", "-m", "saliency,ig", "--steps", "4", "-o", tmp_path / "s")
    assert ok.exit_code == 0, ok.output  # gradients flow through a SavedModel
    cam = invoke("explain", "--model", saved, tmp_path / "in", "-m", "gradcam", "-o", tmp_path / "s2")
    assert cam.exit_code == 7 and "SavedModel hides its layers" in cam.output and "saliency" in cam.output
    two = _tiny(tmp_path / "two.keras", outputs=2)
    refused = invoke("predict", "--model", two, tmp_path / "in", "-o", tmp_path / "p")
    assert refused.exit_code == 7 and "--output-index" in refused.output
    for choice, task in (("1", "regression"), ("kind", "classification")):
        chosen = invoke("predict", "--model", two, tmp_path / "in", "--output-index", choice, "--json", "-o", tmp_path / choice)
        assert chosen.exit_code == 0 and json.loads(chosen.stdout)["task"] == task, chosen.output
    unknown = invoke("predict", "--model", two, tmp_path / "in", "--output-index", "colour", "-o", tmp_path / "u")
    assert unknown.exit_code == 2 and "0: kind, 1: size" in unknown.output


def test_frames_of_multi_frame_dicom_and_tiff(tmp_path):
    from helpers import write_dicom
    from PIL import Image

    frames = np.stack([np.full((16, 16), v, np.uint16) for v in (100, 2000, 4000)])
    write_dicom(tmp_path / "in" / "multi.dcm", frames)
    pages = [Image.fromarray(np.full((16, 16), v, np.uint8)) for v in (10, 120, 250)]
    pages[0].save(tmp_path / "in" / "stack.tif", save_all=True, append_images=pages[1:])
    model = _tiny(tmp_path / "m.keras")
    refused = invoke("predict", "--model", model, tmp_path / "in", "-o", tmp_path / "r")
    assert refused.exit_code == 3 and "--frame" in refused.output
    every = invoke("predict", "--model", model, tmp_path / "in", "--frame", "all", "-o", tmp_path / "all")
    assert every.exit_code == 0, every.output
    names = [Path(r["file"]).name for r in _rows(tmp_path / "all" / "predictions.csv")]
    assert names == [f"multi.dcm[{k}]" for k in range(3)] + [f"stack.tif[{k}]" for k in range(3)]
    middle = invoke("explain", "--model", model, tmp_path / "in", "--frame", "middle", "-m", "saliency", "-o", tmp_path / "mid")
    assert middle.exit_code == 0, middle.output
    explained = invoke("explain", "--model", model, tmp_path / "in", "--frame", "all", "-m", "saliency", "-o", tmp_path / "e")
    assert explained.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "e").iterdir() if p.is_dir()) == [
        "multi-frame000", "multi-frame001", "multi-frame002", "stack-frame000", "stack-frame001", "stack-frame002"]
