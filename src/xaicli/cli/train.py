"""``xaicli train``."""

from __future__ import annotations

import typer

from xaicli.errors import UsageError


def train(inputs: list[str] = typer.Argument(None)) -> None:
    """Not implemented yet."""
    raise UsageError("xaicli train is not implemented yet")
