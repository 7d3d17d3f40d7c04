"""The command-line interface: a thin Typer layer over the engine. Only this package imports
typer and rich; no module here imports TensorFlow at import time (``xaicli --help`` stays fast)."""

from xaicli.cli.app import app, main

__all__ = ["app", "main"]
