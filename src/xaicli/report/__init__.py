"""``xaicli report``: one page a person reads, from the output folder of any run.

``RUN/report.html`` is one self-contained HTML file (styles, script and plots inside it; the small
per-image pictures beside it under ``RUN/report/``): no network, it opens from ``file://``. One
concern per module: :mod:`~xaicli.report.load` reads a run folder and tells its kind,
:mod:`~xaicli.report.runfile` records a run's settings and verdict (``run-<command>.json``),
:mod:`~xaicli.report.keep` keeps the per-image pictures as a run passes, :mod:`~xaicli.report.view`
(with :mod:`~xaicli.report.explained`, :mod:`~xaicli.report.images`,
:mod:`~xaicli.report.modelruns`, :mod:`~xaicli.report.deid`) builds what the page shows,
:mod:`~xaicli.report.figures` draws the plots and :mod:`~xaicli.report.render` lays it out with
Jinja2 templates (``templates/``).
"""

from __future__ import annotations

import os
from pathlib import Path

from xaicli.report.load import KINDS
from xaicli.report.render import REPORT_FILE
from xaicli.report.runfile import RUN_FILE, record_run

__all__ = ["KINDS", "REPORT_FILE", "RUN_FILE", "record_run", "write_report"]


def write_report(run_dir: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``RUN_DIR/report.html`` for the run in ``run_dir`` (any of :data:`KINDS`); returns it."""
    from xaicli.io import check_outputs
    from xaicli.report import render, view
    from xaicli.report.load import load

    run = load(run_dir)
    check_outputs([run.folder / REPORT_FILE], overwrite)  # before the pictures and plots are made
    run.overwrite = overwrite
    return render.write(view.build(run), run.folder, overwrite=overwrite)
