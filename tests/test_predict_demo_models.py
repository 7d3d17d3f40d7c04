"""The shipped demo models (sample_data/models/) still reach the figures sample_data/README.md
states, and `train` runs on each real sample set (tiny input size, one epoch)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xaicli.cli import app

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
runner = CliRunner()


def _predict(model: str, data: str, out: Path) -> dict:
    path = SAMPLE / "models" / model / "model.keras"
    assert path.is_file(), f"{path} is shipped with the repository"
    return _predict_with(path, data, out)


def _predict_with(path: Path, data: str, out: Path) -> dict:
    result = runner.invoke(app, ["predict", str(path), str(SAMPLE / data), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_shipped_chest_model(tmp_path):
    summary = _predict("chest", "chest/test", tmp_path)
    assert summary["predicted"] == 60
    assert summary["evaluation"]["accuracy"] >= 0.9


def test_shipped_faces_model(tmp_path):
    evaluation = _predict("faces", "faces/test", tmp_path)["evaluation"]
    assert evaluation["n"] == 40
    assert evaluation["mae"] < 0.5 * evaluation["mae_constant_mean"]


def test_shipped_defects_model(tmp_path):
    summary = _predict("defects", "defects/test", tmp_path)
    assert summary["predicted"] == 80
    # good, not perfect: the faint defects it misses are the fifth study's incorrect predictions
    assert 0.75 <= summary["evaluation"]["accuracy"] < 1.0


def test_shipped_retina_model(tmp_path):
    summary = _predict("retina", "retina/test", tmp_path)
    assert summary["evaluation"]["n"] == 6 and summary["evaluation"]["dice"] >= 0.6
    assert len(list((tmp_path / "masks").glob("*.png"))) == 6


@pytest.mark.parametrize("data,task", [("chest/train", "classification"), ("faces/train", "regression"),
                                       ("retina/training", "segmentation")])
def test_train_runs_on_each_sample_set(tmp_path, data, task):
    assert (SAMPLE / data).is_dir(), f"{SAMPLE / data} is shipped with the repository"
    params = ["--param", "depth=1", "--param", "filters=2"]
    result = runner.invoke(app, ["train", str(SAMPLE / data), "-o", str(tmp_path / "m"), "--epochs", "1",
                                 "--input-size", "16", "--batch-size", "16", *params])
    assert result.exit_code == 0, result.output
    validation = json.loads((tmp_path / "m" / "validation.json").read_text())
    assert validation["n"] > 0
    from xaicli.models.io import load_model

    assert load_model(tmp_path / "m" / "model.keras").info.task == task


def test_train_learns_the_shipped_chest_data(tmp_path):
    """Eight epochs of a small CNN on the 240 shipped training images (64 x 64, 4 classes) score
    well above chance (25 %) on the 60 held-out test images: training learns, it does not only run."""
    result = runner.invoke(app, ["train", str(SAMPLE / "chest" / "train"), "-o", str(tmp_path / "m"), "--epochs", "8",
                                 "--batch-size", "16", "--param", "depth=3", "--param", "filters=8", "--seed", "0"])
    assert result.exit_code == 0, result.output
    summary = _predict_with(tmp_path / "m" / "model.keras", "chest/test", tmp_path / "p")
    assert summary["evaluation"]["n"] == 60
    assert summary["evaluation"]["accuracy"] >= 0.5, summary["evaluation"]
