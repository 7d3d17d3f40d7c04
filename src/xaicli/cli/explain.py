"""``xaicli explain``."""

from __future__ import annotations

import typer

from xaicli.errors import UsageError


def explain(inputs: list[str] = typer.Argument(None)) -> None:
    """Not implemented yet."""
    raise UsageError("xaicli explain is not implemented yet")
