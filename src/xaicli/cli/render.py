"""Rendering for people: rich tables and the red error line. Scripts read the CSV/JSON outputs."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from xaicli.errors import PartialFailure, XaicliError


@functools.lru_cache(maxsize=1)
def err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def out_console() -> Console:
    return Console(highlight=False)


def print_error(error: XaicliError) -> None:
    console = err_console()
    console.print(f"[bold red]error:[/bold red] [red]{_escape(error.message)}[/red]")
    if isinstance(error, PartialFailure) or hasattr(error, "failures"):
        for item, reason in getattr(error, "failures", []):
            console.print(f"  [red]- {_escape(item)}: {_escape(reason)}[/red]")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(str(text))


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    result = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        result.add_column(column, justify="left" if column in columns[:1] else "right")
    for row in rows:
        result.add_row(*(_cell(value) for value in row))
    return result


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "-" if value != value else f"{value:.4g}"  # NaN: nothing to show
    return _escape(str(value))
