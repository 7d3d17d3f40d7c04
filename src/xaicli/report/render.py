"""Rendering a :class:`~xaicli.report.view.Page` to one HTML file with Jinja2.

The templates (``templates/``, shipped inside the package) lay out the page; its stylesheet and its
script are included inline, so ``report.html`` needs no network and opens from ``file://``. Every
value is HTML-escaped by the engine (``autoescape``); the per-image rows travel as one JSON document
(``tojson``, which escapes ``<``, ``>`` and ``&`` for a ``<script>`` element). The file is written
atomically and never replaces an earlier report unless told to.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from xaicli.report.view import Page

REPORT_FILE = "report.html"


@functools.cache
def environment() -> Any:
    import jinja2
    import markupsafe

    env = jinja2.Environment(loader=jinja2.PackageLoader("xaicli.report", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    # the stylesheet and the script go into the page as they are (they are no templates)
    env.globals["asset"] = lambda name: markupsafe.Markup(env.loader.get_source(env, name)[0])
    return env


def render(page: Page) -> str:
    return environment().get_template("report.html.j2").render(page=page)


def write(page: Page, folder: Path, *, overwrite: bool = False) -> Path:
    from xaicli.io import write_bytes

    return write_bytes(Path(folder) / REPORT_FILE, render(page).encode("utf-8"), overwrite=overwrite)
