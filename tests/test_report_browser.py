"""``--report`` pages of a compare, a predict and a dicom-anonymize run, opened in headless Chromium:
no console error, no request off the run folder, the key elements, the numbers against the run's
CSV and JSON files, one image clicked into, and a screenshot in the test's folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from browser import chromium, open_report
from helpers import read_rows as rows
from helpers import run_cli, write_dicom

from xaicli.report.view import fmt

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
FAST = ["--steps", "8", "--masks", "64", "--param", "rise.grid_size=4", "--samples", "40", "--segmentation", "grid",
        "--param", "lime.grid_size=4", "--deletion-steps", "6", "--batch-size", "4"]
METHODS = ["gradcam", "ig", "lime", "rise"]


@pytest.fixture(scope="module")
def browser():
    with chromium() as opened:
        yield opened


@pytest.fixture(scope="module")
def compare_run(tiny_data, tmp_path_factory):
    tiny, out = tiny_data, tmp_path_factory.mktemp("compare") / "out"
    # one gate that fails (a PointingHit is never negative) and one that passes
    run_cli("compare", str(tiny / "test"), "--model", str(tiny / "model.keras"), "--methods", ",".join(METHODS),
           "--roi", str(tiny / "masks"), "--output", str(out), *FAST, "--report",
           "--fail-if", "gradcam.PointingHit>=0", "--fail-if", "ig.Entropy>2", code=8)
    return out


def detail_facts(page) -> dict[str, str]:
    """The facts over an opened image: name -> value as shown."""
    return dict(page.eval_on_selector_all("#detail-facts .fact", "fs => fs.map(f => [f.children[0].textContent, "
                                                                 "f.children[1].textContent])"))


def table_cells(page, selector: str) -> list[list[dict[str, str]]]:
    """Each body row of a table as its cells' text and data-value."""
    return page.eval_on_selector_all(f"{selector} tbody tr", """rows => rows.map(r => [...r.cells].map(
        c => ({text: c.textContent.trim(), value: c.dataset.value === undefined ? null : c.dataset.value})))""")


def test_compare_report(browser, compare_run, tmp_path):
    out = compare_run
    opened = open_report(browser, out / "report.html")
    page = opened.page
    assert page.title().startswith("Comparison of 4 method(s) on 6 image(s)")
    # the verdict comes first: the failed gate, then every warning of warnings.csv
    assert page.eval_on_selector("main > section", "s => s.id") == "verdict"
    recorded = json.loads((out / "run-compare.json").read_text())["verdict"]["gate_failures"]
    assert len(recorded) == 1 and page.inner_text("#gates li") == recorded[0]
    assert "1 gate(s) failed" in page.inner_text("#gates h3")
    warnings = [w["message"] for w in rows(out / "warnings.csv")]
    shown = page.eval_on_selector_all("#warnings li", "items => items.map(i => i.textContent)")
    assert len(shown) == len(warnings) and all(w in s for w, s in zip(warnings, shown, strict=True))

    # the summary: every mean as summary.csv has it, the direction of each column, random last
    summary = [r for r in rows(out / "summary.csv") if r["Group"] == "all"]
    heads = page.eval_on_selector_all("#summary-table thead th", "hs => hs.map(h => [h.dataset.key, h.textContent])")
    assert dict(heads)["PointingHit"].endswith("\u2191") and dict(heads)["BackgroundRatio"].endswith("\u2193")
    assert "\u2191" not in dict(heads)["Entropy"] and "\u2193" not in dict(heads)["Entropy"]
    body = table_cells(page, "#summary-table")
    assert [r[0]["text"] for r in body] == [r["Method"] for r in summary] == [*METHODS, "random"]
    for cells, expected in zip(body, summary, strict=True):
        for (key, _), cell in zip(heads[1:-1], cells[1:-1], strict=True):
            assert cell["value"] == expected[key] and cell["text"] == fmt(expected[key]), (expected["Method"], key)

    # the model's quality: accuracy and the confusion matrix from predictions.csv
    predictions = rows(out / "predictions.csv")
    accuracy = sum(int(r["correct"]) for r in predictions) / len(predictions)
    assert float(page.get_attribute("#quality-accuracy", "data-value")) == pytest.approx(accuracy)
    matrix = table_cells(page, "#confusion-matrix")
    for cells in matrix:
        for j, cell in enumerate(cells[1:]):
            predicted = [r for r in predictions if r["true"] == cells[0]["text"]]
            assert int(cell["value"]) == sum(r["predicted"] == matrix[j][0]["text"] for r in predicted)
    assert page.get_attribute("#curves-figure", "src").startswith("data:image/svg+xml;base64,")
    assert [r[0]["text"] for r in table_cells(page, "#timing-table")] == METHODS

    # the per-image rows: all of them, then filtered by outcome, then sorted by a score
    assert page.inner_text("#row-count") == f"{len(predictions)} of {len(predictions)} images"
    wrong = sum(r["correct"] == "0" for r in predictions)
    page.select_option("#filter-outcome", "0")
    assert page.inner_text("#row-count") == f"{wrong} of {len(predictions)} images"
    page.select_option("#filter-outcome", "")
    page.select_option("#metric", label="RoiRatio \u2191")
    page.click("#image-head button[data-sort*=ig]")  # a score sorts from the largest, images without one last
    scores = [r for r in rows(out / "scores.csv") if r["method"] == "ig" and r["RoiRatio"] != "nan"]
    best = max(scores, key=lambda r: float(r["RoiRatio"]))
    first = page.locator(".image-row").first
    assert first.locator("[data-method=ig]").inner_text() == fmt(best["RoiRatio"])

    # one image: every method's overlay with its colour scale, the region outline, the prediction
    first.click()
    page.wait_for_selector("dialog#detail[open]")
    assert page.inner_text("#detail-title").endswith(best["image"])
    cards = page.locator("#detail-maps figure")
    assert cards.count() == 1 + len(METHODS)
    assert page.locator("#detail-maps figure .scale .bar").count() == len(METHODS)
    view = next(json.loads(line) for line in (out / "report" / "views.jsonl").read_text().splitlines()
                if json.loads(line)["file"] == best["image"])
    assert page.get_attribute("#detail-maps figure:nth-child(2) path.line", "d") == view["outlines"]["Roi"]
    prediction = next(r for r in predictions if r["file"] == best["image"])
    facts = detail_facts(page)
    assert facts["predicted"] == prediction["predicted"] and facts["confidence"] == fmt(prediction["confidence"])
    # the pictures, one strip per image beside the page: the image and each overlay at its size
    assert first.locator("img").evaluate("i => i.complete && i.naturalWidth") == (1 + len(METHODS)) * 24
    frames = page.eval_on_selector_all("#detail-maps .frame", "fs => fs.map(f => f.style.backgroundImage)")
    assert len(set(frames)) == 1 and f"report/{view['strip']}" in frames[0]
    page.screenshot(path=str(tmp_path / "compare-image.png"))
    page.keyboard.press("Escape")
    page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
    assert opened.problems == []


@pytest.fixture(scope="module")
def predict_run(tiny_data, tmp_path_factory):
    tiny, out = tiny_data, tmp_path_factory.mktemp("predict") / "out"
    run_cli("predict", str(tiny / "model.keras"), str(tiny / "test"), "--output", str(out), "--report")
    return out


def test_predict_report(browser, predict_run, tmp_path):
    out = predict_run
    opened = open_report(browser, out / "report.html")
    page = opened.page
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert page.title().startswith("Predictions on 6 image(s)")
    assert float(page.get_attribute("#quality-accuracy", "data-value")) == evaluation["accuracy"]
    expected = rows(out / "confusion-matrix.csv")
    shown = table_cells(page, "#confusion-matrix")
    assert [[c["text"] for c in r] for r in shown] == [list(r.values()) for r in expected]
    report = {r["class"]: r for r in rows(out / "classification-report.csv")}
    for cells in table_cells(page, "#classification-report"):
        line = report[cells[0]["text"]]
        assert [c["text"] for c in cells[1:]] == [fmt(line[k]) for k in ("precision", "recall", "f1", "support")]

    predictions = rows(out / "predictions.csv")
    assert page.inner_text("#row-count") == f"{len(predictions)} of {len(predictions)} images"
    page.select_option("#filter-true", "spot")
    assert page.locator(".image-row").count() == sum(r["true"] == "spot" for r in predictions)
    row = page.locator(".image-row").first
    number = int(row.get_attribute("data-n"))
    row.click()
    page.wait_for_selector("dialog#detail[open]")
    expected_row = predictions[number - 1]
    assert page.inner_text("#detail-title").endswith(expected_row["file"])
    facts = detail_facts(page)
    assert facts["p(spot)"] == fmt(expected_row["p_spot"]) and facts["true"] == "spot"
    assert row.locator("img").evaluate("i => i.complete && i.naturalWidth") == 24
    assert page.locator("#detail-maps .frame").count() == 1
    page.screenshot(path=str(tmp_path / "predict-image.png"))
    page.keyboard.press("Escape")
    page.screenshot(path=str(tmp_path / "predict.png"), full_page=True)
    assert opened.problems == []


@pytest.fixture(scope="module")
def deid_run(tmp_path_factory):
    """The shipped series, a burned-in ultrasound (quarantined) and a text file (skipped)."""
    import numpy as np

    root = tmp_path_factory.mktemp("deid")
    inputs = root / "in"
    shutil.copytree(SAMPLE / "dicom", inputs)
    write_dicom(inputs / "us.dcm", np.zeros((8, 8), np.uint16), Modality="US", PatientID="SECRET-ID-4711")
    (inputs / "notes.txt").write_text("not a DICOM file")
    out = root / "out"
    run_cli("dicom-anonymize", str(inputs), "--output", str(out), "--key", "report-test", "--report", code=4)
    return inputs, out


def test_dicom_anonymize_report(browser, deid_run, tmp_path):
    from xaicli.anonymize.checker import read_any
    from xaicli.anonymize.identities import identifying_values

    inputs, out = deid_run
    opened = open_report(browser, out / "report.html")
    page = opened.page
    report = json.loads((out / "anonymize-report.json").read_text())
    outcome = {r[0]["text"]: int(r[1]["value"]) for r in table_cells(page, "#outcome-table")}
    assert outcome["files"] == report["files"] == 7 and outcome["de-identified"] == report["deidentified"] == 5
    assert outcome["quarantined (burned-in text)"] == len(report["quarantined"]) == 1
    assert outcome["skipped (not DICOM)"] == len(report["skipped"]) == 1
    reasons = table_cells(page, "#reasons-table")
    assert {(r[0]["text"], r[1]["text"], r[2]["text"]) for r in reasons} == {
        ("quarantined (burned-in text)", report["quarantined"][0]["reason"], "1"),
        ("skipped (not DICOM)", report["skipped"][0]["reason"], "1")}
    assert reasons[0][3]["text"].startswith("input-")  # inputs by their number
    audit = rows(out / "anonymize-audit.csv")
    counts = {r[1]["text"]: int(r[2]["text"]) for r in table_cells(page, "#actions-table")}
    assert counts == {code: sum(a["action"] == code for a in audit) for code in {a["action"] for a in audit}}

    # no value of any input, anywhere on the page: its text and its HTML
    values = set()
    for path in inputs.iterdir():
        ds, _ = read_any(path)
        if ds is not None:
            values |= {v for v in identifying_values(ds, ()) if len(v) >= 4}
    assert "secret-id-4711" in values and len(values) > 10  # (lower case)
    html = (out / "report.html").read_text(encoding="utf-8").lower()
    text = page.inner_text("body").lower()
    assert [v for v in values if v.lower() in html or v.lower() in text] == []
    page.screenshot(path=str(tmp_path / "dicom-anonymize.png"), full_page=True)
    assert opened.problems == []
    # and the de-identifier's own leak check reads the page too: clean, then caught when planted
    run_cli("dicom-anonymize", "--check", str(out), "--against", str(inputs))
    planted = tmp_path / "planted"
    shutil.copytree(out, planted)
    with open(planted / "report.html", "a", encoding="utf-8") as handle:
        handle.write("<!-- SECRET-ID-4711 -->")
    run_cli("dicom-anonymize", "--check", str(planted), "--against", str(inputs), code=4)
