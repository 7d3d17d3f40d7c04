"""``score_run`` on a hand-made maps.csv (no model), the summary arithmetic and the grid pages."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from xaicli.errors import InputError, OutputError, UsageError
from xaicli.io import load_map, read_image, write_csv, write_npy, write_npz, write_png
from xaicli.io.grid import GridWriter
from xaicli.pipeline.score import score_run
from xaicli.pipeline.summary import Summary
from xaicli.rois import parse_roi


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture()
def run(tmp_path):
    """Two 8x8 images, masks = left half; method 'a' puts its peak left, 'b' right."""
    region = np.zeros((8, 8), bool)
    region[:, :4] = True
    rows = []
    for name in ("one", "two"):
        write_png(tmp_path / "images" / f"{name}.png", np.full((8, 8, 1), 0.5, np.float32))
        write_png(tmp_path / "masks" / f"{name}.png", region)
        left = np.zeros((8, 8), np.float32)
        left[2, 1] = 3.0
        left[5, 6] = 1.0
        right = left[:, ::-1].copy()
        write_npy(tmp_path / "run" / name / "a.npy", left)
        write_npz(tmp_path / "run" / name / "b.npz", map=right)
        rows += [
            {"image": str(tmp_path / "images" / f"{name}.png"), "method": "a", "target": "class 1 (x)",
             "prediction": "x (0.9)", "map": f"{name}/a.npy", "overlay": "", "seconds": 0.5},
            {"image": str(tmp_path / "images" / f"{name}.png"), "method": "b", "target": "class 1 (x)",
             "prediction": "x (0.9)", "map": f"{name}/b.npz", "overlay": "", "seconds": 1.5},
        ]
    write_csv(tmp_path / "run" / "maps.csv", rows)
    return tmp_path


def test_score_run_hand_computed(run):
    result = score_run(run / "run", roi=parse_roi(str(run / "masks")))
    scores = _rows(run / "run" / "scores.csv")
    assert len(scores) == 4 and result.rows == 4
    a = [r for r in scores if r["method"] == "a"]
    assert float(a[0]["RoiRatio"]) == pytest.approx(0.75)
    assert float(a[0]["BackgroundRatio"]) == pytest.approx(0.25)
    assert float(a[0]["PointingHit"]) == 1.0
    expected_entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(64)
    assert float(a[0]["Entropy"]) == pytest.approx(expected_entropy, rel=1e-5)
    b = [r for r in scores if r["method"] == "b"]
    assert float(b[0]["RoiRatio"]) == pytest.approx(0.25) and float(b[0]["PointingHit"]) == 0.0
    summary = {r["Method"]: r for r in _rows(run / "run" / "summary.csv")}
    assert float(summary["a"]["PointingHit"]) == 1.0 and float(summary["b"]["PointingHit"]) == 0.0
    assert float(summary["b"]["SecondsPerImage"]) == pytest.approx(1.5)
    assert summary["a"]["RoiRatio_n"] == "2" and float(summary["a"]["RoiRatio_std"]) == 0.0
    with pytest.raises(OutputError):
        score_run(run / "run", roi=parse_roi(str(run / "masks")))
    score_run(run / "run", roi=parse_roi(str(run / "masks")), normalization="abs", overwrite=True)
    assert {r["normalization"] for r in _rows(run / "run" / "scores.csv")} == {"abs"}


def test_score_run_reports_missing_maps_and_regions(run):
    (run / "run" / "two" / "a.npy").unlink()
    (run / "masks" / "one.png").unlink()
    result = score_run(run / "run" / "maps.csv", run / "elsewhere", roi=parse_roi(str(run / "masks")))
    assert [f for f, _ in result.failures] == [f"{run / 'images' / 'two.png'} [a]"]
    assert len(result.no_region) == 1 and "no mask" in result.no_region[0][1]
    scores = _rows(run / "elsewhere" / "scores.csv")
    one = [r for r in scores if r["image"].endswith("one.png")]
    assert all(r["RoiRatio"] == "nan" and "no mask" in r["region"] for r in one)
    assert all(r["Entropy"] != "nan" for r in one)


def test_score_run_errors(tmp_path, run):
    with pytest.raises(InputError):
        score_run(tmp_path / "missing")
    with pytest.raises(UsageError, match="region of interest"):
        score_run(run / "run", metrics="pointing-hit")
    with pytest.raises(UsageError, match="model"):
        score_run(run / "run", metrics="deletion")
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 3, 4)))
    with pytest.raises(InputError, match="2-D"):
        load_map(bad)


def test_summary_mean_std_skip_nan():
    summary = Summary()
    for value in (1.0, 2.0, 3.0, math.nan):
        summary.add("m", {"x": value})
    mean, std, n = summary.mean_std_n("m", "x")
    assert (mean, n) == (2.0, 3) and std == pytest.approx(1.0)
    rows, header = summary.rows(["x"], "positive")
    assert header[:2] == ["Method", "x"] and rows[0]["Images"] == 4


def test_grid_pages_and_stale_pages(tmp_path):
    image = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32)
    grid = GridWriter(tmp_path, ["a", "b"], rows_per_page=2, tile=64)
    for _ in range(5):
        grid.add(image, {"a": np.ones((20, 30)), "b": None}, ["x.png", "pred: 3"])
    pages = grid.close()
    assert [p.name for p in pages] == ["grid-001.png", "grid-002.png", "grid-003.png"]
    first = read_image(pages[0])
    assert first.shape[1] >= 3 * 64 and first.shape[0] >= 2 * 64
    again = GridWriter(tmp_path, ["a"], rows_per_page=10, tile=64, overwrite=True)
    again.add(image, {"a": np.ones((20, 30))}, ["x"])
    assert [p.name for p in again.close()] == ["grid-001.png"]
    assert not (tmp_path / "grid-002.png").exists()
    existing = GridWriter(tmp_path, ["a"], tile=64, rows_per_page=1)
    with pytest.raises(OutputError):
        existing.add(image, {}, ["x"])


def test_score_run_lists_an_unreadable_mask_and_scores_the_rest(run):
    (run / "masks" / "two.png").write_bytes(b"\x89PNG\r\n\x1a\n junk")  # one bad mask file
    empty = np.zeros((8, 8), bool)
    write_png(run / "masks" / "one.png", empty, overwrite=True)  # and one empty region
    result = score_run(run / "run", run / "out", roi=parse_roi(str(run / "masks")))
    assert result.rows == 4  # every map scored
    assert [f for f, _ in result.failures] == [str(run / "images" / "two.png")]
    assert "masks" in result.failures[0][1] and "two.png" in result.failures[0][1]
    assert result.no_region == [(str(run / "images" / "one.png"), "empty region")]
    scores = _rows(run / "out" / "scores.csv")
    assert {r["region"] for r in scores} == {"empty region", "unreadable region"}
    assert all(r["RoiRatio"] == "nan" and r["Entropy"] != "nan" for r in scores)
    from typer.testing import CliRunner

    from xaicli.cli import app

    cli = CliRunner().invoke(app, ["score", str(run / "run"), "-o", str(run / "cli"), "--roi", str(run / "masks")])
    assert cli.exit_code == 4, cli.output  # the bad mask is listed; the maps are all scored
    assert "two.png" in cli.output and "empty region" in cli.output and "Traceback" not in cli.output
    assert len(_rows(run / "cli" / "scores.csv")) == 4
    # a failed grid page write leaves nothing behind: pages wait in hidden files until close()
    grid = GridWriter(run / "grid", ["a"], rows_per_page=1, tile=64)
    grid.add(np.zeros((8, 8, 1), np.float32), {"a": np.ones((8, 8))}, ["x"])
    assert not list((run / "grid").glob("grid-*.png"))
    grid.discard()
    assert not list((run / "grid").iterdir())


def test_metric_parameter_typos_are_usage_errors(run):
    from typer.testing import CliRunner

    from xaicli.cli import app

    base = ["score", str(run / "run"), "-o", str(run / "o"), "--roi", str(run / "masks")]
    result = CliRunner().invoke(app, [*base, "--metric-param", "pointing-hit.tolerence=2"])
    assert result.exit_code == 2, result.output
    assert "'pointing-hit' has no parameter 'tolerence'" in result.output and "tolerance" in result.output
    result = CliRunner().invoke(app, [*base, "--metric-param", "pointing-hits.tolerance=2"])
    assert result.exit_code == 5 and "pointing-hit" in result.output, result.output
    assert not (run / "o").exists()
    result = CliRunner().invoke(app, [*base, "--metric-param", "pointing-hit.tolerance=2"])
    assert result.exit_code == 0, result.output


def test_score_consistency_takes_the_truth_from_class_folders(tmp_path):
    """maps.csv from `explain` has no truth column: folder-per-class gives it, else a clear warning."""
    from typer.testing import CliRunner

    from xaicli.cli import app

    rng = np.random.default_rng(0)
    rows = []
    for cls in ("cat", "dog"):
        for i in range(3):
            image = tmp_path / "images" / cls / f"{cls}{i}.png"
            write_png(image, np.full((8, 8, 1), 0.5, np.float32))
            write_npy(tmp_path / "run" / f"{cls}{i}.npy", rng.random((8, 8)).astype(np.float32))
            predicted = cls if i < 2 else ("dog" if cls == "cat" else "cat")  # one miss per class
            rows.append({"image": str(image), "method": "m", "target": "class 0", "prediction": f"{predicted} (0.900)",
                         "predicted": predicted, "confidence": 0.9,
                         "map": f"{cls}{i}.npy", "overlay": "", "seconds": 0.1})
    write_csv(tmp_path / "run" / "maps.csv", rows)
    result = CliRunner().invoke(app, ["score", str(tmp_path / "run"), "--metrics", "consistency,entropy"])
    assert result.exit_code == 0, result.output
    table = {r["class"]: r for r in _rows(tmp_path / "run" / "consistency.csv")}
    assert table["cat"]["n"] == "2" and table["dog"]["n"] == "2"  # the correct ones only
    assert math.isfinite(float(table["(all)"]["consistency"]))
    assert [r["truth"] for r in _rows(tmp_path / "run" / "scores.csv")] == ["cat"] * 3 + ["dog"] * 3
    # images not in class folders: NaN, and said so
    flat = []
    for row in rows:
        image = tmp_path / "flat-images" / Path(row["image"]).name
        write_png(image, np.full((8, 8, 1), 0.5, np.float32))
        write_npy(tmp_path / "flat" / row["map"], np.load(tmp_path / "run" / row["map"]))
        flat.append(dict(row, image=str(image)))
    write_csv(tmp_path / "flat" / "maps.csv", flat)
    result = CliRunner().invoke(app, ["score", str(tmp_path / "flat"), "--metrics", "consistency,entropy"])
    assert result.exit_code == 0, result.output
    assert "warning: consistency needs each image's true class" in result.output


def test_corrupt_map_files_say_what_is_wrong(tmp_path):
    (tmp_path / "junk.npy").write_bytes(b"hello world, not numpy")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "good.npy", np.zeros((4, 4), np.float32))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "good.npy").read_bytes()[:100])
    expected = {"junk.npy": "not a NumPy .npy or .npz file", "objects.npy": "holds Python objects",
                "cut.npy": "corrupt or truncated"}
    for name, reason in expected.items():
        with pytest.raises(InputError, match=reason) as caught:
            load_map(tmp_path / name)
        assert "allow_pickle" not in str(caught.value)
