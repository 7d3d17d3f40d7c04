"""The page at ``/`` in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright): a
person chooses a shipped chest image, sees the prediction and the overlay with its colour scale,
switches the method, drops a DICOM file; no console error, no request leaves the service."""

from __future__ import annotations

import base64

import pytest
from serve_helpers import CHEST_MODEL, CHEST_TEST, ROOT, running_service

import xaicli

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def service():
    with running_service({"chest": xaicli.load_model(CHEST_MODEL)}) as running:
        yield running


@pytest.fixture()
def page(service):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 720})
            page.problems = []
            page.requests = []
            page.on("console", lambda m: m.type in ("error", "warning") and page.problems.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: page.problems.append(f"page error: {e}"))
            page.on("request", lambda r: page.requests.append(r.url))
            yield page
        finally:
            browser.close()


def test_upload_a_shipped_image_see_the_prediction_and_the_overlay(service, page, tmp_path):
    from playwright.sync_api import expect

    image = CHEST_TEST / "nodule" / "test_0016.png"
    page.goto(service.url + "/")
    expect(page.locator("#methods button[aria-pressed=true]")).to_have_text("gradcam")
    page.set_input_files("#file", str(image))
    expect(page.locator("#label")).to_contain_text("nodule")
    overlay = page.locator("#overlay")
    expect(overlay).to_have_attribute("data-method", "gradcam")
    src = overlay.get_attribute("src")
    assert src.startswith("data:image/png;base64,") and base64.b64decode(src.split(",", 1)[1])[:4] == b"\x89PNG"
    assert page.evaluate("document.getElementById('overlay').naturalWidth") == 64
    assert page.evaluate("document.getElementById('colorbar').naturalWidth") == 256  # the colour scale is drawn
    expect(page.locator("#probabilities tr")).to_have_count(4)
    page.screenshot(path=str(tmp_path / "gradcam.png"), full_page=True)

    page.click("#methods button[data-method=ig]")
    expect(overlay).to_have_attribute("data-method", "ig")
    expect(page.locator("#explained")).to_contain_text("ig")
    assert overlay.get_attribute("src") != src
    page.screenshot(path=str(tmp_path / "ig.png"), full_page=True)
    assert (tmp_path / "gradcam.png").stat().st_size > 10_000
    assert page.problems == []
    assert all(url.startswith(service.url) or url.startswith("data:") for url in page.requests), page.requests
    assert service.uploads() == []


def test_drop_a_dicom_file_and_a_bad_file_shows_the_services_message(service, page, tmp_path):
    from playwright.sync_api import expect

    page.goto(service.url + "/")

    def drop(data: bytes, name: str) -> None:
        transfer = page.evaluate_handle(
            """([bytes, name]) => { const t = new DataTransfer();
                 t.items.add(new File([new Uint8Array(bytes)], name)); return t; }""", [list(data), name])
        page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})

    drop((ROOT / "sample_data" / "dicom" / "IM0004.dcm").read_bytes(), "IM0004.dcm")
    expect(page.locator("#label")).to_contain_text("cavity")
    page.screenshot(path=str(tmp_path / "dicom.png"), full_page=True)
    assert page.problems == []
    drop(b"just some text", "notes.txt")
    expect(page.locator("#error")).to_contain_text("image: not an image")
    assert "Kowalczyk" not in page.content()
    # Chromium reports the refused upload's 415 itself; the page's own code logs nothing
    assert page.problems == ["error: Failed to load resource: the server responded with a status of 415 "
                             "(Unsupported Media Type)"]
    assert service.uploads() == []
