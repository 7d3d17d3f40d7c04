"""Rendering a comparison's verdict for people: the model's quality and predictions, the summary
per group, the warnings, and the gates (the one place a failed gate becomes its error)."""

from __future__ import annotations

import math
from typing import Any

from xaicli.cli.render import table

#: the column whose per-group means are shown by group, first that the run has
HEADLINE = ("Lift", "Ratio", "PointingHit", "Deletion", "Entropy")


def render_model(console: Any, result: Any, task: str) -> None:
    """The age study's predictions table (first rows) and the model's quality on the images."""
    rows = result.predictions
    if rows:
        columns = [c for c in rows[0] if c != "file"]
        shown = [(i + 1, *(row.get(c, "") for c in columns)) for i, row in enumerate(rows)]
        title = f"Predictions (first {len(rows)})" if len(rows) < result.images else "Predictions"
        console.print(table(title, ["#", *columns], shown))
    if result.quality_name and not math.isnan(result.quality):
        console.print(f"{result.quality_name} on the explained images with a known truth: {result.quality:.4g}")


def headline(columns: list[str]) -> str | None:
    for suffix in HEADLINE:
        found = [c for c in columns if c.endswith(suffix) and not c.endswith(("_std", "_n"))]
        if found:
            return found[0]
    return None


def render_groups(console: Any, result: Any) -> None:
    """One headline column's mean per group (rows) and method (columns), with the group's size."""
    groups = list(dict.fromkeys(r["Group"] for r in result.summary))
    column = headline(result.summary_columns)
    if len(groups) < 2 or column is None:
        return
    methods = list(dict.fromkeys(r["Method"] for r in result.summary))
    cells = {(r["Group"], r["Method"]): r for r in result.summary}
    quality = [result.quality_name] if result.quality_name else []
    body = []
    for group in groups:
        any_row = next(r for r in result.summary if r["Group"] == group)
        body.append([group, any_row["Images"], *(any_row.get(q) for q in quality),
                     *(cells.get((group, m), {}).get(column, "") for m in methods)])
    direction = {True: "higher is better", False: "lower is better"}.get(result.directions.get(column), "")
    rendered = table(f"{column} by group ({direction})" if direction else f"{column} by group",
                     ["Group", "Images", *quality, *methods], body)
    headers = ["Group", "Images", *quality, *methods]
    widths = [max(len(g) for g in groups + ["Group"])] + [max(len(h), 7) for h in headers[1:]]
    for column, width in zip(rendered.columns, widths, strict=True):
        column.no_wrap, column.min_width = True, width
    # read as a whole: never squeeze the names to fit a narrow (or piped) console
    console.print(rendered, width=max(console.width, sum(w + 3 for w in widths) + 1), crop=False)


def render_warnings(console: Any, warnings: list[dict[str, Any]]) -> None:
    for warning in warnings:
        console.print(f"[yellow]warning: {_escape(warning['message'])}[/yellow]")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(str(text))


def raise_gates(failures: list[str]) -> None:
    """A failed gate is the run's verdict: exit code 8, one line per failure."""
    if failures:
        from xaicli.errors import GateFailure

        raise GateFailure(f"{len(failures)} gate(s) failed", [("gate", f) for f in failures])
