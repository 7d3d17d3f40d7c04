"""``xaicli-telegram MODEL --token-file FILE``: run the chat bot until interrupted."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False,
                  context_settings={"help_option_names": ["-h", "--help"]})


@app.command()
def run(
    model: str = typer.Argument(..., help="Model file to answer with ([NAME=]PATH), e.g. sample_data/models/chest/model.keras."),
    token_file: Path = typer.Option(..., "--token-file", help="File holding the bot token (from @BotFather; mode 600)."),
    method: str = typer.Option("gradcam", help="Method whose overlay is sent back."),
    allowed_chat: list[int] = typer.Option(None, "--allowed-chat", help="Answer only this chat id (repeatable; default: everyone who writes)."),
    max_upload_mb: float = typer.Option(20.0, help="Largest file accepted, in MiB (the Bot API's download limit is 20)."),
    max_pixels: int = typer.Option(4096 * 4096, help="Largest image accepted, in pixels."),
    base_url: str = typer.Option(None, help="Bot API base URL (a local Bot API server; default Telegram's)."),
    base_file_url: str = typer.Option(None, help="Bot API file base URL (with --base-url)."),
    log_level: str = typer.Option("info", help="Log level."),
) -> None:
    """Answer photos and image documents with the predicted class and the overlay."""
    from xaicli.errors import XaicliError

    try:
        _run(model, token_file, method, allowed_chat or [], max_upload_mb, max_pixels, base_url, base_file_url, log_level)
    except XaicliError as error:  # one red line and its exit code, as xaicli's own commands
        typer.secho(f"error: {error.message}", fg="red", err=True)
        raise typer.Exit(error.exit_code) from None


def _run(model: str, token_file: Path, method: str, allowed_chat: list[int], max_upload_mb: float, max_pixels: int,
         base_url: str | None, base_file_url: str | None, log_level: str) -> None:
    from xaicli.models.io import load_model
    from xaicli.serve.config import Limits, ServeConfig, model_specs, parse_methods
    from xaicli.serve.core import InferenceCore
    from xaicli.serve.security import read_token
    from xaicli_telegram.bot import ImageBot, quiet_http_logs

    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_http_logs()
    token = read_token(token_file).decode("utf-8")
    specs = model_specs([model])
    config = ServeConfig(methods=parse_methods(method), limits=Limits(max_bytes=int(max_upload_mb * 2**20), max_pixels=max_pixels))
    core = InferenceCore({name: load_model(path) for name, path in specs.items()}, config)
    bot = ImageBot(core, method=method, allowed_chats=allowed_chat)
    application = bot.build(token, base_url=base_url, base_file_url=base_file_url)
    typer.echo(f"xaicli-telegram: answering with {', '.join(specs)} ({method}); Ctrl-C stops", err=True)
    application.run_polling(drop_pending_updates=False, allowed_updates=["message"])


def main() -> None:
    from xaicli._quiet import quiet_tensorflow

    quiet_tensorflow()
    app(prog_name="xaicli-telegram")
