"""``xaicli serve``: predictions and saliency maps over HTTP, with a web page (docs/serve.md)."""

from __future__ import annotations

from pathlib import Path

import typer

MODEL_SPEC = "[NAME=]MODEL: the default name is the file's stem, or its folder's for .../NAME/model.keras"


def serve(
    models: list[str] = typer.Argument(None, metavar="[MODEL...]", help=f"Model file(s) to serve, as --model ({MODEL_SPEC})."),
    model: list[str] = typer.Option(None, "--model", metavar="[NAME=]MODEL", help=f"Model file to serve (repeatable; {MODEL_SPEC})."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (127.0.0.1: this machine only)."),
    port: int = typer.Option(8000, help="Port to listen on."),
    methods: str = typer.Option(None, help="Methods served, comma-separated, or 'all' (default: gradcam,gradcam++,saliency,gradient-x-input,ig)."),
    token_file: Path = typer.Option(None, "--token-file", help="Require 'Authorization: Bearer TOKEN' with the token in this file (mode 600)."),
    max_upload_mb: float = typer.Option(32.0, help="Largest upload accepted, in MiB (per file)."),
    max_pixels: int = typer.Option(4096 * 4096, help="Largest image accepted, in pixels (rows x columns, read before decoding)."),
    max_batch: int = typer.Option(16, help="Images per model call at most (concurrent requests are batched)."),
    max_wait_ms: float = typer.Option(5.0, help="How long the worker waits for more requests to fill a batch."),
    queue_size: int = typer.Option(64, help="Requests waiting at most; beyond that the service answers 503 with Retry-After."),
    timeout: float = typer.Option(60.0, help="Seconds a request may take (upload, then answer) before 408/504."),
    ttl: float = typer.Option(300.0, help="Seconds after which an upload's temporary folder is removed in any case."),
    temp_dir: Path = typer.Option(None, help="Where the service's private temporary folder is made (default: the system's)."),
    max_connections: int = typer.Option(64, help="Open connections at most (beyond: 503)."),
    log_level: str = typer.Option("info", help="Log level: debug, info, warning, error."),
) -> None:
    """Serve models over HTTP: POST /predict and /explain (multipart 'image'), GET / (a web page), /health, /ready, /docs."""
    import importlib.util

    from xaicli.errors import UsageError

    models = [*(model or []), *(models or [])]
    if not models:
        raise UsageError("give the model(s) to serve: --model MODEL (repeatable)", parameter="model")

    missing = [m for m in ("fastapi", "uvicorn", "python_multipart", "jinja2") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"xaicli serve needs {', '.join(missing)}: pip install 'xaicli[serve]'")
    from xaicli.models.io import load_model
    from xaicli.serve.config import Limits, ServeConfig, model_specs, parse_methods
    from xaicli.serve.core import InferenceCore
    from xaicli.serve.server import serve as run

    limits = Limits(max_bytes=int(max_upload_mb * 2**20), max_pixels=max_pixels)
    config = ServeConfig(host=host, port=port, limits=limits, methods=parse_methods(methods), max_batch=max_batch,
                         max_wait=max_wait_ms / 1000.0, queue_size=queue_size, request_timeout=timeout, ttl=ttl,
                         temp_dir=temp_dir, token_file=token_file, max_connections=max_connections)
    if token_file is not None:  # a bad token file is one red line now, not a failed start later
        from xaicli.serve.security import read_token

        read_token(token_file)
    # Loaded here, so that a bad model file is one line and its exit code; the service's lifespan
    # then holds them (loaded once) and warms them up.
    loaded = {name: load_model(path) for name, path in model_specs(models).items()}
    typer.echo(f"serving {', '.join(loaded)} on http://{host}:{port}/ (Ctrl-C stops)", err=True)
    if host not in ("127.0.0.1", "localhost", "::1") and token_file is None:
        typer.secho(f"warning: {host} is reachable from other machines and no --token-file is set: anyone who "
                    "reaches it can send images", fg="yellow", err=True)
    run(InferenceCore(loaded, config), log_level=log_level)
