"""``xaicli report RUN_DIR``: one page a person reads, from the output folder of any run; and the
end of every run that records itself (``--report``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def report(
    run_dir: Path = typer.Argument(..., help="The output folder of a compare, score, predict, train, consistency-study or dicom-anonymize run."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing RUN_DIR/report.html."),
) -> None:
    """Write RUN_DIR/report.html: the run's verdict, tables, plots and per-image maps, in one page."""
    from xaicli.cli.render import out_console
    from xaicli.report import write_report

    out_console().print(f"report: {write_report(run_dir, overwrite=overwrite)}")


def finish(command: str, output: Path, settings: dict[str, Any], *, report: bool, overwrite: bool,
           result: Any = None, model: Any = None) -> None:
    """A run's last step: its options (``settings``: the command's ``ctx.params``) and verdict in
    OUTPUT/run-<command>.json and, with ``--report``, its page (``xaicli.report``)."""
    from xaicli.cli.render import err_console
    from xaicli.report import record_run, write_report

    record_run(output, command, settings, result, model=model, overwrite=overwrite)
    if report:
        err_console().print(f"report: {write_report(output, overwrite=overwrite)}")
