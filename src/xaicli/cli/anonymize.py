"""``xaicli dicom-anonymize``."""

from __future__ import annotations

import typer

from xaicli.errors import UsageError


def dicom_anonymize(inputs: list[str] = typer.Argument(None)) -> None:
    """Not implemented yet."""
    raise UsageError("xaicli dicom-anonymize is not implemented yet")
