"""Headless Chromium for the report tests: Playwright driving the operating system's Chromium
(Debian's ``chromium`` package; no browser download). A missing Chromium fails the tests: CI
installs it, and a report nobody opened is not tested."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("XAICLI_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: install the OS package (Debian: apt-get install chromium), "
                    "or point XAICLI_CHROMIUM at a Chromium executable")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Opened:
    """A report open in a page, with what went wrong while it loaded and ran."""

    page: Any
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    requests: list[str] = field(default_factory=list)  # anything not read from the run folder

    @property
    def problems(self) -> list[str]:
        return self.errors + [f"request to {url}" for url in self.requests]


def open_report(browser: Any, path: Path, *, width: int = 1400, height: int = 1000) -> Opened:
    """``path`` opened from ``file://`` and run until the page says it is ready."""
    page = browser.new_page(viewport={"width": width, "height": height})
    opened = Opened(page)
    page.on("console", lambda message: opened.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: opened.errors.append(str(error)))
    page.on("request", lambda request: None if request.url.startswith(("file://", "data:"))
            else opened.requests.append(request.url))
    page.goto(path.resolve().as_uri())
    page.wait_for_selector("body[data-ready=true]")
    return opened
