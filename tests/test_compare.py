"""``xaicli compare`` and ``xaicli score`` end to end through the CLI, on a tiny model and folder."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import CLASSES, tiny_classifier
from typer.testing import CliRunner

from xaicli.cli import app
from xaicli.io import read_image


def _all(rows):
    """The summary rows of the whole set (summary.csv also holds one row per group and method)."""
    return [r for r in rows if r["Group"] == "all"]


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Folder-per-class 24x24 grey images (a bright spot for 'spot'), lesion masks, a tiny CNN."""
    root = tmp_path_factory.mktemp("tiny")
    tiny_classifier(root)
    (root / "test" / "spot" / "broken.png").write_bytes(b"not a png")
    return root


FAST = ["--steps", "8", "--masks", "64", "--param", "rise.grid_size=4", "--samples", "40",
        "--segmentation", "grid", "--param", "lime.grid_size=4", "--deletion-steps", "6", "--batch-size", "4"]


def test_compare_end_to_end_writes_every_output(tiny):
    out = tiny / "out"
    args = ["compare", str(tiny / "test"), "--model", str(tiny / "model.keras"), "--methods", "gradcam,ig,lime,rise",
            "--roi", str(tiny / "masks"), "--output", str(out), "--rows-per-page", "4", "--save-maps", "--sanity", *FAST]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 4, result.output  # the broken file is listed, the rest processed
    assert "broken.png" in result.output

    pages = sorted(out.glob("grid-[0-9]*.png"))
    assert [p.name for p in pages] == ["grid-001.png", "grid-002.png"]  # 6 images, 4 per page
    page = read_image(pages[0])
    assert page.shape[1] > 5 * 160 and page.shape[0] > 4 * 160  # 5 columns, 4 rows of 160 px tiles
    _check_gradcam_column(np.round(page * 255).astype(np.uint8), tiny, out)

    scores = _rows(out / "scores.csv")
    methods = ["gradcam", "ig", "lime", "rise", "random"]
    assert len(scores) == 6 * len(methods)
    assert list(scores[0])[:7] == ["image", "method", "target", "prediction", "truth", "region", "normalization"]
    for column in ("RoiRatio", "BackgroundRatio", "Entropy", "PointingHit", "Deletion", "Insertion",
                   "RandSpearman", "RandSSIM", "seconds"):
        assert column in scores[0]
    # normal images have an empty lesion mask: region metrics NaN and reported, not scored as hits
    normal = [r for r in scores if "/normal/" in r["image"].replace("\\", "/")]
    assert normal and all(r["PointingHit"] == "nan" and r["region"] == "empty region" for r in normal)
    assert all(r["region"] == "ok" for r in scores if "/spot/" in r["image"].replace("\\", "/"))
    assert "3 image(s) without a region" in result.output and "empty region" in result.output
    # the region metrics recomputed from the saved maps and the lesion masks, with the mass each
    # method's normalisation counts (positive part, magnitude, or above the minimum)
    saved = {(m["image"], m["method"]): np.load(out / "maps" / m["map"]) for m in _rows(out / "maps" / "maps.csv")}
    spot = [r for r in scores if "/spot/" in r["image"].replace("\\", "/") and r["method"] != "random"]
    counted = {"positive": lambda m: np.maximum(m, 0), "abs": np.abs, "minmax": lambda m: m - m.min()}
    assert {r["normalization"] for r in spot} <= set(counted) and any(r["normalization"] != "positive" for r in spot)
    for r in spot:
        mass = counted[r["normalization"]](saved[r["image"], r["method"]].astype(np.float64))
        region = read_image(tiny / "masks" / "spot" / Path(r["image"]).name)[:, :, 0] > 0.5
        assert float(r["RoiRatio"]) == pytest.approx(mass[region].sum() / mass.sum(), rel=1e-4, abs=1e-6)
        assert float(r["BackgroundRatio"]) == pytest.approx(mass[~region].sum() / mass.sum(), rel=1e-4, abs=1e-6)
        p = mass[mass > 0] / mass.sum()
        assert float(r["Entropy"]) == pytest.approx(-(p * np.log(p)).sum() / np.log(mass.size), rel=1e-4)
        assert math.isfinite(float(r["Deletion"])) and math.isfinite(float(r["RandSpearman"]))

    summary = _all(_rows(out / "summary.csv"))
    assert [r["Method"] for r in summary] == methods
    assert list(summary[0])[:8] == ["Method", "RoiRatio", "BackgroundRatio", "Entropy", "PointingHit",
                                    "Deletion", "Insertion", "RandSpearman"]
    assert "SecondsPerImage" in summary[0] and "RoiRatio_n" in summary[0]
    assert all(r["RoiRatio_n"] == "3" and r["Images"] == "6" for r in summary)
    # each method's maps are scored with its own normalisation: IG's signed attributions by magnitude
    assert {r["Method"]: r["Normalization"] for r in summary} == {
        "gradcam": "positive", "ig": "abs", "lime": "positive", "rise": "abs", "random": "positive"}
    gradcam = [float(r["Entropy"]) for r in scores if r["method"] == "gradcam"]
    assert float(summary[0]["Entropy"]) == pytest.approx(np.mean(gradcam), rel=1e-4)

    predictions = _rows(out / "predictions.csv")
    assert list(predictions[0]) == ["file", "predicted", "confidence", "true", "correct"]
    assert len(predictions) == 6 and {r["true"] for r in predictions} == set(CLASSES)

    consistency = _rows(out / "consistency.csv")
    assert {"method", "class", "consistency", "n", "normalization"} <= set(consistency[0])
    assert {r["method"] for r in consistency} == {"gradcam", "ig", "lime", "rise"}

    maps = _rows(out / "maps" / "maps.csv")
    assert len(maps) == 6 * 4 and (out / "maps" / maps[0]["map"]).is_file()

    # a second run refuses to overwrite; --overwrite replaces
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 6 and "exists already" in again.output


def _check_gradcam_column(page, tiny, out):
    """Page 1's first four images (the broken file is left out): each row shows the image, then in
    the first method column the overlay of that image's own Grad-CAM map (saved by --save-maps)."""
    import cv2

    from xaicli.io import overlay

    def find(tile, outline):
        big = cv2.resize(tile, (160, 160), interpolation=cv2.INTER_NEAREST)  # 24 px enlarged to the tile
        scores = cv2.matchTemplate(page.astype(np.float32), big.astype(np.float32), cv2.TM_SQDIFF)
        _, _, (x, y), _ = cv2.minMaxLoc(scores)
        differs = np.abs(page[y : y + 160, x : x + 160].astype(int) - big).max(axis=2)
        return y, x, int(differs[~outline].max()), int(differs[outline].max()) if outline.any() else 0

    def outline_of(path):
        """The band the region's outline is drawn on (its edge, a few pixels either side), at the tile's size."""
        mask = path.parent.parent.parent / "masks" / path.parent.name / path.name
        if not mask.is_file():
            return np.zeros((160, 160), bool)
        region = cv2.resize((read_image(mask)[:, :, 0] > 0.5).astype(np.uint8), (160, 160), interpolation=cv2.INTER_NEAREST)
        band = np.ones((9, 9), np.uint8)
        return cv2.dilate(region, band).astype(bool) & ~cv2.erode(region, band).astype(bool)

    maps = {m["image"]: m["map"] for m in _rows(out / "maps" / "maps.csv") if m["method"] == "gradcam"}
    files = [tiny / "test" / "normal" / f"normal_{i}.png" for i in range(3)] + [tiny / "test" / "spot" / "spot_0.png"]
    cells = []
    for path in files:
        image = read_image(path)
        saliency = np.load(out / "maps" / next(v for k, v in maps.items() if k.endswith(path.name)))
        outline = outline_of(path)
        plain = find(np.repeat(np.round(image * 255).astype(np.uint8), 3, axis=2), outline)
        shown = find(overlay(image, saliency, mode="positive"), outline)
        assert plain[2] == 0 and shown[2] == 0, path.name  # both drawn, pixel for pixel, but for the outline
        assert (plain[3] > 0) == outline.any() and (shown[3] > 0) == outline.any(), path.name  # outlined: the lesion
        # in the image's row, in the first method column: the very next cell right of the image
        assert plain[0] == shown[0] and plain[1] + 160 <= shown[1] < plain[1] + 2 * 160
        cells.append(shown)
    assert len({c[1] for c in cells}) == 1 and [c[0] for c in cells] == sorted(c[0] for c in cells)


def test_compare_json_and_score_rescore(tiny):
    out = tiny / "json"
    result = CliRunner().invoke(app, ["compare", str(tiny / "test" / "spot"), "--model", str(tiny / "model.keras"),
                                      "--methods", "gradcam,saliency", "--layer", "all-conv",
                                      "--roi", f"masks:{tiny / 'masks'}",
                                      "--output", str(out), "--json", "--save-maps", "--no-random-baseline", *FAST[-4:]])
    assert result.exit_code == 4, result.output
    payload = json.loads(result.stdout)
    assert payload["images"] == 3 and payload["methods"] == ["gradcam", "saliency"]
    # several Grad-CAM layers: the combined map is "gradcam", each layer "gradcam@layer", right after it
    assert [row["Method"] for row in _all(payload["summary"])] == ["gradcam", "gradcam@conv1", "gradcam@conv2", "saliency"]
    assert payload["failures"][0]["file"].endswith("broken.png")
    assert "broken.png" not in payload["failures"][0]["reason"]  # the path is not repeated in the reason

    scored = CliRunner().invoke(app, ["score", str(out / "maps"), "--roi", str(tiny / "masks"), "--json",
                                      "--model", str(tiny / "model.keras"), "--deletion-steps", "6"])
    assert scored.exit_code == 0, scored.output
    rescored = json.loads(scored.stdout)
    assert rescored["maps_scored"] == 12
    rows = _rows(out / "maps" / "scores.csv")
    assert len(rows) == 12 and {"RoiRatio", "PointingHit", "Deletion", "Insertion"} <= set(rows[0])
    # the same maps, region and model give the same numbers as compare computed
    by_compare = {(r["image"], r["method"]): r for r in _rows(out / "scores.csv")}
    for r in rows:
        first = by_compare[(r["image"], r["method"])]
        for column in ("RoiRatio", "Entropy", "PointingHit", "Deletion"):
            assert float(r[column]) == pytest.approx(float(first[column]), rel=1e-4, abs=1e-6)
    assert [r["Method"] for r in _all(_rows(out / "maps" / "summary.csv"))] == [
        "gradcam", "gradcam@conv1", "gradcam@conv2", "saliency"]


def test_compare_usage_errors(tiny):
    runner = CliRunner()
    base = ["compare", str(tiny / "test"), "--model", str(tiny / "model.keras"), "--output", str(tiny / "x")]
    r = runner.invoke(app, [*base, "--methods", "gradcam", "--metrics", "roi-ratio"])
    assert r.exit_code == 2 and "region of interest" in r.output
    r = runner.invoke(app, [*base, "--methods", "gradcm"])
    assert r.exit_code == 5 and "did you mean 'gradcam'" in r.output
    r = runner.invoke(app, [*base, "--methods", "gradcam", "--param", "rise.n_masks=5"])
    assert r.exit_code == 2
    r = runner.invoke(app, [*base, "--methods", "gradcam", "--roi", "box:1,2"])
    assert r.exit_code == 2
    r = runner.invoke(app, ["score", str(tiny / "nowhere")])
    assert r.exit_code == 3


def test_compare_reports_images_without_a_face(tiny):
    out = tiny / "faces"
    result = CliRunner().invoke(app, ["compare", str(tiny / "test" / "normal"), "--model", str(tiny / "model.keras"),
                                      "--methods", "gradcam", "--roi", "face:ellipse", "--output", str(out),
                                      "--metrics", "roi-ratio,pointing-hit,entropy", "--save-maps"])
    assert result.exit_code == 0, result.output
    assert "3 image(s) without a region" in result.output and "no face found" in result.output
    rows = _rows(out / "scores.csv")
    assert all(r["FaceRatio"] == "nan" and r["region"] == "no face found" for r in rows)
    saved = {m["image"]: np.load(out / "maps" / m["map"]) for m in _rows(out / "maps" / "maps.csv")}
    for r in (r for r in rows if r["method"] == "gradcam"):  # the map-only metric is still scored
        mass = np.maximum(saved[r["image"]].astype(np.float64), 0)
        p = mass[mass > 0] / mass.sum()
        assert float(r["Entropy"]) == pytest.approx(-(p * np.log(p)).sum() / np.log(mass.size), rel=1e-4)
    summary = _all(_rows(out / "summary.csv"))
    assert summary[0]["FaceRatio_n"] == "0" and summary[0]["Entropy_n"] == "3"


def _good_copy(tiny, dest):
    """The tiny test folder without its broken file."""
    for cls in CLASSES:
        (dest / cls).mkdir(parents=True, exist_ok=True)
        for f in sorted((tiny / "test" / cls).glob(f"{cls}_*.png")):
            (dest / cls / f.name).write_bytes(f.read_bytes())
    return dest


def test_compare_empty_regions_are_reported_not_failed(tiny, tmp_path):
    """Normal images' empty lesion masks: status "empty region", listed, NaN, and exit code 0."""
    data = _good_copy(tiny, tmp_path / "good")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["compare", str(data), "--model", str(tiny / "model.keras"), "--methods", "gradcam",
                                      "--roi", str(tiny / "masks"), "--output", str(out), "--json",
                                      "--metrics", "roi-ratio,pointing-hit,entropy"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert sorted(item["reason"] for item in payload["no_region"]) == ["empty region"] * 3
    assert all("/normal/" in item["file"].replace("\\", "/") for item in payload["no_region"])
    assert payload["failures"] == []
    rows = _rows(out / "scores.csv")
    assert {r["region"] for r in rows if "/normal/" in r["image"].replace("\\", "/")} == {"empty region"}
    summary = {r["Method"]: r for r in _all(_rows(out / "summary.csv"))}
    assert summary["gradcam"]["RoiRatio_n"] == "3" and summary["gradcam"]["Images"] == "6"


def test_compare_fixed_box_outside_the_images_is_refused(tiny, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["compare", str(_good_copy(tiny, tmp_path / "good")), "--model",
                                      str(tiny / "model.keras"), "--methods", "gradcam", "--roi", "box:100,100,200,200",
                                      "--output", str(out)])
    assert result.exit_code == 2, result.output
    assert "box:100,100,200,200 lies entirely outside" in result.output and "24x24" in result.output
    assert "Traceback" not in result.output
    assert not list(out.glob("*.csv")) and not list(out.glob("grid-[0-9]*.png"))  # nothing half written


def test_compare_bad_mask_file_is_listed_and_the_rest_processed(tiny, tmp_path):
    masks = tmp_path / "badmasks"
    for cls in CLASSES:
        (masks / cls).mkdir(parents=True)
        for f in sorted((tiny / "masks" / cls).glob("*.png")):
            (masks / cls / f.name).write_bytes(f.read_bytes())
    (masks / "spot" / "spot_1.png").write_bytes(b"\x89PNG\r\n\x1a\n junk")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["compare", str(_good_copy(tiny, tmp_path / "good")), "--model",
                                      str(tiny / "model.keras"), "--methods", "gradcam", "--roi", str(masks),
                                      "--output", str(out), "--rows-per-page", "1",
                                      "--metrics", "roi-ratio,pointing-hit,entropy"])
    assert result.exit_code == 4, result.output
    assert "spot_1.png" in result.output and "badmasks" in result.output
    rows = _rows(out / "scores.csv")
    assert len({r["image"] for r in rows}) == 6  # every image processed, the bad mask's too
    bad = [r for r in rows if r["image"].endswith("spot_1.png")]
    assert bad and all(r["region"] == "unreadable region" and r["RoiRatio"] == "nan" for r in bad)
    assert len(list(out.glob("grid-[0-9]*.png"))) == 6


def test_a_failed_compare_leaves_no_grid_page_to_block_its_rerun(tiny, tmp_path, monkeypatch):
    from xaicli.errors import InputError
    from xaicli.pipeline import scoring as score

    data = _good_copy(tiny, tmp_path / "good")
    out = tmp_path / "out"
    args = ["compare", str(data), "--model", str(tiny / "model.keras"), "--methods", "gradcam",
            "--output", str(out), "--rows-per-page", "1", "--metrics", "entropy", "--no-random-baseline"]
    original, calls = score.Scorer.score, []

    def failing(self, saliency, context, *mode, **curves):
        calls.append(1)
        if len(calls) == 4:  # after three grid pages are full
            raise InputError("simulated failure half way")
        return original(self, saliency, context, *mode, **curves)

    monkeypatch.setattr(score.Scorer, "score", failing)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 3 and "simulated failure" in result.output
    assert not list(out.glob("grid-[0-9]*.png")) and not list(out.glob(".*"))  # no page, no temporary file
    monkeypatch.setattr(score.Scorer, "score", original)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("grid-[0-9]*.png"))) == 6


def test_compare_on_logits_marks_the_target_and_checks_the_choice(tiny, tmp_path):
    runner = CliRunner()
    good = tmp_path / "good"
    _good_copy(tiny, good)
    out = tmp_path / "logit"
    r = runner.invoke(app, ["compare", str(good), "--model", str(tiny / "model.keras"), "--methods", "gradcam,saliency",
                            "--score", "logit", "--sanity", "--output", str(out), "--deletion-steps", "6"])
    assert r.exit_code == 0, r.output
    rows = _rows(out / "scores.csv")
    assert rows and all(row["target"].endswith("(logit)") for row in rows if row["method"] != "random")
    bad = runner.invoke(app, ["compare", str(good), "--model", str(tiny / "model.keras"), "--score", "logits",
                              "--output", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--score" in bad.output


REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("data,model,roi,columns", [
    ("chest/test", "chest", "sample_data/chest/masks/lesion/test", ["RoiRatio", "BackgroundRatio", "Entropy", "PointingHit"]),
    ("faces/test", "faces", "face-masks:sample_data/faces/masks/test", ["FaceRatio", "BackgroundRatio", "Entropy", "PointingHit"]),
])
def test_compare_on_the_shipped_sample_data(tmp_path, data, model, roi, columns):
    """The signature command on (a slice of) the shipped data and model: the age study's table
    shape, and Grad-CAM pointing into the known evidence (lesions; faces carry the age)."""
    import os

    root = REPO / "sample_data" / data
    images = sorted(p for p in root.rglob("*") if p.suffix in (".png", ".jpg"))
    picked = [str(p) for p in images[:: max(1, len(images) // 8)]][:8]  # 8 images across the classes
    out = tmp_path / "out"
    cwd = os.getcwd()
    os.chdir(REPO)  # the ROI paths are given as a user types them, from the repository root
    try:
        result = CliRunner().invoke(app, ["compare", *picked, "--model", str(REPO / f"sample_data/models/{model}/model.keras"),
                                          "--methods", "gradcam,ig,lime,rise", "--roi", roi, "--output", str(out),
                                          "--steps", "16", "--masks", "500", "--samples", "100", "--deletion-steps", "10"])
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    summary = _all(_rows(out / "summary.csv"))
    assert [r["Method"] for r in summary] == ["gradcam", "ig", "lime", "rise", "random"]
    assert list(summary[0])[1:5] == columns
    assert {"Deletion", "Insertion", "SecondsPerImage"} <= set(summary[0])
    by_method = {r["Method"]: r for r in summary}
    assert float(by_method["gradcam"]["PointingHit"]) > float(by_method["random"]["PointingHit"])
    assert float(by_method["gradcam"][columns[0]]) > float(by_method["random"][columns[0]])
    assert (out / "grid-001.png").is_file() and len(_rows(out / "predictions.csv")) == len(picked)
    if model == "faces":
        assert list(_rows(out / "predictions.csv")[0]) == ["file", "predicted", "true", "abs_error"]
