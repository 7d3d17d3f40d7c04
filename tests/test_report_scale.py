"""A report of 1,000 images: its size on disk and the time it takes to open in Chromium, measured
and printed (run with ``-s`` to read them; docs/report.md records them), not asserted. What is
asserted is what keeps it fast: the page draws a screenful of rows, not a thousand."""

from __future__ import annotations

import json
import time

from browser import chromium, open_report
from helpers import tiny_classifier
from typer.testing import CliRunner

from xaicli.cli import app

IMAGES = 1000
METHODS = "gradcam,saliency,gradient-x-input,ig"  # four maps per image, cheap ones


def test_a_report_of_1000_images(tmp_path):
    tiny_classifier(tmp_path, per_class=IMAGES // 2, size=16)
    out = tmp_path / "compare"
    started = time.perf_counter()
    result = CliRunner().invoke(app, [
        "compare", str(tmp_path / "test"), "--model", str(tmp_path / "model.keras"), "--methods", METHODS,
        "--steps", "4", "--roi", str(tmp_path / "masks"), "--output", str(out), "--deletion-steps", "4",
        "--batch-size", "64", "--rows-per-page", "100", "--report"])
    assert result.exit_code == 0, result.output
    run_seconds = time.perf_counter() - started
    html = (out / "report.html").stat().st_size
    pictures = [p for p in (out / "report").rglob("*") if p.is_file()]
    with chromium() as browser:
        started = time.perf_counter()
        opened = open_report(browser, out / "report.html")
        load_seconds = time.perf_counter() - started
        page = opened.page
        timing = page.evaluate("() => { const t = performance.getEntriesByType('navigation')[0]; "
                               "return {domContentLoaded: t.domContentLoadedEventEnd, load: t.loadEventEnd}; }")
        assert page.inner_text("#row-count") == f"{IMAGES} of {IMAGES} images"
        drawn = page.locator(".image-row").count()
        assert 0 < drawn < 60  # a screenful (and a margin), not every row
        page.eval_on_selector("#viewport", "v => v.scrollTo(0, v.scrollHeight)")
        page.wait_for_selector(f".image-row[data-n='{IMAGES}']")
        assert page.locator(".image-row").count() < 60
        assert opened.problems == []
    figures = {"images": IMAGES, "methods": METHODS, "compare_seconds": round(run_seconds, 1), "html_bytes": html,
               "picture_files": len(pictures), "picture_bytes": sum(p.stat().st_size for p in pictures),
               "open_seconds": round(load_seconds, 2), "dom_content_loaded_ms": round(timing["domContentLoaded"]),
               "load_ms": round(timing["load"]), "rows_drawn": drawn}
    print("\nreport of 1000 images:", json.dumps(figures))
    (tmp_path / "figures.json").write_text(json.dumps(figures, indent=2))
