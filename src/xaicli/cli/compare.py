"""``xaicli compare``."""

from __future__ import annotations

import typer

from xaicli.errors import UsageError


def compare(inputs: list[str] = typer.Argument(None)) -> None:
    """Not implemented yet."""
    raise UsageError("xaicli compare is not implemented yet")
