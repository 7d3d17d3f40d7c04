"""``xaicli plugins``: every discovered model, explainer, metric and region source."""

from __future__ import annotations

import json

import typer

from xaicli import plugins as registry


def plugins(
    kind: str = typer.Argument(None, help="Only this kind: models, explainers, metrics or rois."),
    check: bool = typer.Option(
        True, "--check/--no-check", help="Import each plugin to find broken ones (--no-check: metadata only, instant)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
) -> None:
    """List the plugins xaicli found, with the package and version that provides each.

    A plugin that fails to import is shown as broken, with its error; the others still work.
    Set XAICLI_DISABLE_PLUGIN_AUTOLOAD=1 to see (and use) the built-ins only.
    """
    from xaicli.cli.render import out_console, table

    kinds = [kind] if kind else list(registry.GROUPS)
    rows = []
    for each in kinds:
        if check:
            results = registry.check(each)
        else:
            results = [(entry, None) for entry in registry.available(each).values()]
        for entry, error in results:
            status = "not checked" if not check else ("ok" if error is None else f"broken: {error}")
            rows.append(
                {"kind": each, "name": entry.name, "package": entry.package, "version": entry.version,
                 "builtin": entry.builtin, "status": status, "target": entry.target}
            )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    console = out_console()
    columns = ["kind", "name", "package", "version", "status"]
    rendered = table(None, columns, ([r[c] for c in columns] for r in rows))
    for row_index, row in enumerate(rows):
        if row["status"].startswith("broken"):
            rendered.rows[row_index].style = "red"
    console.print(rendered)
    if registry._autoload_disabled():
        console.print(f"[yellow]third-party plugins disabled by {registry.AUTOLOAD_ENV}[/yellow]")
