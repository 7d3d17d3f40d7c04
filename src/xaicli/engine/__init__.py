"""Plain-Python engine functions the CLI calls (no typer, no rich)."""
