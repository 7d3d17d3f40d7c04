"""``xaicli predict``."""

from __future__ import annotations

import typer

from xaicli.errors import UsageError


def predict(inputs: list[str] = typer.Argument(None)) -> None:
    """Not implemented yet."""
    raise UsageError("xaicli predict is not implemented yet")
