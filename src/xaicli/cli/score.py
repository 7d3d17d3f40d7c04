"""``xaicli score``."""

from __future__ import annotations

import typer

from xaicli.errors import UsageError


def score(inputs: list[str] = typer.Argument(None)) -> None:
    """Not implemented yet."""
    raise UsageError("xaicli score is not implemented yet")
