"""``xaicli report`` and what the runs keep for it, without a browser: the kind of each run, the
run files, the mean curves, the outlines and colour scale of the pictures and the grid, the RISE
display, reports of score, train and consistency-study runs, and a de-identification report that
names no input."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import read_rows as rows
from helpers import run_cli as invoke

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
FAST = ["--steps", "4", "--deletion-steps", "5", "--batch-size", "4"]


def images_data(html: Path) -> dict:
    text = html.read_text(encoding="utf-8")
    return json.loads(re.search(r'<script type="application/json" id="images-data">(.*?)</script>', text, re.S)[1])


@pytest.fixture(scope="module")
def tiny(tiny_data):
    return tiny_data


@pytest.fixture(scope="module")
def compared(tiny, tmp_path_factory):
    """A compare run that saved its maps, without --report."""
    out = tmp_path_factory.mktemp("compared") / "out"
    invoke("compare", tiny / "test", "--model", tiny / "model.keras", "--methods", "gradcam,ig", "--roi", tiny / "masks",
           "--output", out, "--save-maps", "--fail-if", "ig.Entropy>2", *FAST)
    return out


def test_run_file_records_options_model_and_verdict_but_no_secret(compared, tiny):
    record = json.loads((compared / "run-compare.json").read_text())
    assert record["command"] == "compare" and record["xaicli"]
    assert record["settings"]["method"] == ["gradcam,ig"] and record["settings"]["fail_if"] == ["ig.Entropy>2"]
    assert not {"overwrite", "report", "as_json", "quiet", "resume"} & set(record["settings"])
    assert record["model"]["class_names"] == ["normal", "spot"] and record["model"]["cam_layer"] == "conv2"
    verdict = record["verdict"]
    assert verdict["gate_failures"] == [] and verdict["images"] == 6
    assert verdict["directions"]["PointingHit"] == "higher" and verdict["directions"]["Deletion"] == "lower"
    assert verdict["directions"]["Entropy"] is None


def test_mean_curves_are_the_mean_of_the_image_curves(compared):
    """The AUC is linear in the curve: the area of each mean curve is the mean of scores.csv's AUCs."""
    from xaicli.metrics.faithfulness import auc

    curves = rows(compared / "curves.csv")
    scores = rows(compared / "scores.csv")
    assert {(r["method"], r["metric"]) for r in curves} == {
        (m, c) for m in ("gradcam", "ig", "random") for c in ("Deletion", "Insertion")}
    for method in ("gradcam", "ig", "random"):
        for column in ("Deletion", "Insertion"):
            curve = [r for r in curves if r["method"] == method and r["metric"] == column]
            assert [int(r["step"]) for r in curve] == list(range(6)) and float(curve[-1]["fraction"]) == 1.0
            assert all(r["n"] == "6" for r in curve)
            mean_auc = np.mean([float(r[column]) for r in scores if r["method"] == method])
            assert auc(np.array([float(r["mean"]) for r in curve])) == pytest.approx(mean_auc, rel=1e-5)


def test_report_of_a_run_that_saved_maps_and_its_overwrite_rule(compared):
    invoke("report", compared)
    data = images_data(compared / "report.html")
    assert len(data["rows"]) == 6 and data["pictured"] == ["gradcam", "ig"]
    strips = [r["pic"]["strip"] for r in data["rows"]]
    assert all((compared / s).is_file() for s in strips) and len(set(strips)) == 6
    assert data["rows"][0]["pic"]["tiles"] == ["image", "gradcam", "ig"]  # the image still where it was
    assert data["rows"][0]["pic"]["outlines"] == {}  # maps.csv knows no regions
    again = invoke("report", compared, code=6)
    assert "exists already" in again.output and len(again.output.strip().splitlines()) == 1
    invoke("report", compared, "--overwrite")


def test_the_kind_of_a_run_and_a_folder_that_is_no_run(tmp_path):
    from xaicli.report.load import load

    for kind, names in (("dicom-anonymize", ["anonymize-report.json"]), ("consistency-study", ["study.csv"]),
                        ("compare", ["scores.csv", "predictions.csv"]), ("score", ["scores.csv"]),
                        ("predict", ["predictions.csv"]), ("train", ["history.csv"])):
        folder = tmp_path / kind
        folder.mkdir()
        for name in names:
            (folder / name).write_text("")
        assert load(folder).kind == kind
    both = tmp_path / "compare"
    (both / "run-score.json").write_text(json.dumps({"command": "score"}))
    assert load(both).kind == "score" and load(both).record == {"command": "score"}  # what ran says
    (tmp_path / "empty").mkdir()
    result = invoke("report", tmp_path / "empty", code=3)
    assert "not the output folder of a run" in result.output and len(result.output.strip().splitlines()) <= 3
    invoke("report", tmp_path / "missing", code=3)


def test_outlines_run_along_the_pixel_edges():
    from xaicli.report.keep import outline_path

    mask = np.zeros((24, 24), bool)
    mask[9:13, 5:9] = True  # pixels 5..8 x 9..12: edges at 5 and 9, 9 and 13
    points = [tuple(map(float, p.split())) for p in re.findall(r"[\d.]+ [\d.]+", outline_path(mask))]
    xs, ys = zip(*points, strict=True)
    assert min(xs) == pytest.approx(5, abs=0.13) and max(xs) == pytest.approx(9, abs=0.13)
    assert min(ys) == pytest.approx(9, abs=0.13) and max(ys) == pytest.approx(13, abs=0.13)
    ring = np.zeros((32, 32), bool)
    ring[4:28, 4:28] = True
    ring[12:20, 12:20] = False
    assert outline_path(ring).count("M") == 2  # the hole is outlined too


def test_grid_pages_name_the_model_outline_the_region_and_show_the_scale(tmp_path):
    from xaicli.io import read_image
    from xaicli.io.grid import GridWriter

    image = np.full((32, 32, 1), 0.4, np.float32)
    mask = np.zeros((32, 32), bool)
    mask[8:16, 8:16] = True  # 16 px wide in a 64 px cell
    saliency = np.zeros((32, 32), np.float32)
    saliency[20:28, 20:28] = 1.0

    def page(title, regions):
        grid = GridWriter(tmp_path / f"{len(title)}-{bool(regions)}", ["a"], tile=64, title=title, colormap="jet")
        grid.add(image, {"a": saliency}, ["x.png", "pred: spot (0.93)"], regions)
        return read_image(grid.close()[0])

    plain = page("", None)
    named, outlined = page("model chest/model.keras: simple-cnn", None), page("model chest/model.keras: simple-cnn",
                                                                               {"lesion": mask})
    assert named.shape[0] > plain.shape[0]  # the title line
    # the outline, on the image cell and on the overlay: the same 16 px square in each, a cell apart
    rows = named.shape[0] - 80  # above the legend (which names the region on the outlined page)
    changed = np.flatnonzero(np.abs(outlined[:rows] - named[:rows]).max(axis=(0, 2)) > 0.1)
    clusters = np.split(changed, np.flatnonzero(np.diff(changed) > 10) + 1)
    assert len(clusters) == 2 and all(len(c) <= 16 + 6 for c in clusters)
    assert clusters[1][0] - clusters[0][0] == 64 + 2  # a tile and the gap
    # the colour bar under the rows: from blue (0) on its left to red (max) on its right
    bar = next(row for row in plain[::-1] if np.ptp(row[:, 0] - row[:, 2]) > 1.0)
    coloured = np.flatnonzero(np.abs(bar[:, 0] - bar[:, 2]) > 0.3)
    assert bar[coloured[0], 2] > bar[coloured[0], 0] and bar[coloured[-1], 0] > bar[coloured[-1], 2]


def test_rise_tiles_on_the_faces_show_where_the_score_moves():
    """Centred RISE maps of the faces model are almost all negative: their positive part is a blank
    tile, their magnitude (the declared display) is not."""
    import xaicli
    from xaicli.io import normalize_map
    from xaicli.plugins import load

    assert load("explainers", "rise").display == "abs"
    model = xaicli.load_model(SAMPLE / "models" / "faces" / "model.keras")
    files = sorted((SAMPLE / "faces" / "test").glob("*.jpg"))[:3]
    results = xaicli.explain(model, files, methods=[("rise", {"n_masks": 500})])
    for result in results:
        shown = normalize_map(result["rise"], mode="abs")
        assert shown.std() > 0.1 and (shown > 0.5).mean() > 0.02  # structure, not a tint
    blank = [normalize_map(r["rise"], mode="positive") for r in results]
    assert min(b.std() for b in blank) < 0.05  # what the grid showed before


def test_score_report_with_curves(compared, tiny):
    out = compared.parent / "rescored"
    invoke("score", compared / "maps", "--model", tiny / "model.keras", "--roi", tiny / "masks", "--output", out,
           "--deletion-steps", "5", "--report")
    assert json.loads((out / "run-score.json").read_text())["command"] == "score"
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="summary-table"' in html and 'id="curves-figure"' in html
    data = images_data(out / "report.html")
    assert len(data["rows"]) == 6 and all(r["pic"]["tiles"][1:] == ["gradcam", "ig"] for r in data["rows"])


def test_train_and_consistency_study_reports(tiny, tmp_path):
    model = tmp_path / "model"
    invoke("train", tiny / "test", "--output", model, "--epochs", "2", "--batch-size", "4", "--param", "depth=1",
           "--param", "filters=2", "--validation-split", "0.5", "--report")
    html = (model / "report.html").read_text(encoding="utf-8")
    history = rows(model / "history.csv")
    assert 'id="history"' in html and 'id="confusion-matrix"' in html and "data:image/png;base64," in html
    assert html.count('<tr>') >= len(history) and f'data-value="{history[-1]["loss"]}"' in html
    study = tmp_path / "study"
    invoke("consistency-study", tiny / "test", tiny / "test", "--out", study, "--depths", "1", "--lambdas", "0",
           "--epochs", "1", "--batch-size", "4", "--report")
    html = (study / "report.html").read_text(encoding="utf-8")
    line = rows(study / "study.csv")[0]
    assert 'id="study-table"' in html and f'data-value="{line["test_accuracy"]}"' in html
    assert html.count("data:image/png;base64,") == 2  # the scatter and the class-mean maps


def test_deidentification_report_in_the_mirror_layout_names_no_input(tmp_path):
    inputs = tmp_path / "in"
    shutil.copytree(SAMPLE / "dicom", inputs)
    (inputs / "Jane Doe notes.txt").write_text("not DICOM")
    out = tmp_path / "out"
    invoke("dicom-anonymize", inputs, "--output", out, "--layout", "mirror", "--key", "k", "--report")
    assert not list(out.glob("run-*.json"))  # a de-identified tree gets nothing but the report
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "not a DICOM file" in html and "mirror layout" in html and "Jane Doe" not in html
