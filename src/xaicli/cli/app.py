"""The ``xaicli`` Typer application, and the one place user errors become exit codes."""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from xaicli import __version__
from xaicli.errors import EXIT_INTERRUPTED, XaicliError


class XaicliGroup(TyperGroup):
    """Turns XaicliError into one red line and its exit code, for the real CLI and test runners."""

    def invoke(self, ctx):
        from xaicli.cli.render import err_console, print_error

        try:
            return super().invoke(ctx)
        except XaicliError as error:
            print_error(with_option_names(error, self.get_command(ctx, ctx.invoked_subcommand or "")))
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            err_console().print("[red]interrupted[/red]")
            raise typer.Exit(EXIT_INTERRUPTED) from None


def with_option_names(error: XaicliError, command) -> XaicliError:
    """The engine words its errors in Python API terms (``batch_size must be ...``); on the command
    line the parameter is named as the option the user typed (``--batch-size must be ...``)."""
    import re

    name = error.parameter
    if not name or command is None or not name.isidentifier():
        return error
    option = next((p for p in command.params if p.name == name and getattr(p, "opts", None)
                   and p.param_type_name == "option"), None)
    if option is None:
        return error
    flag = max(option.opts, key=len)
    error.message = re.sub(rf"(?<![-\w/.]){re.escape(name)}(?![\w/-])", flag, error.message, count=1)
    return error


app = typer.Typer(
    cls=XaicliGroup,
    name="xaicli",
    help="Train, run and explain convolutional image models; de-identify DICOM files.",
    no_args_is_help=True,
    add_completion=False,
    # Locals in a traceback could print image paths, arrays or DICOM values: never show them.
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"xaicli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Train, run and explain convolutional image models; de-identify DICOM files.

    Exit codes: 0 ok, 1 internal error, 2 usage, 3 bad input, 4 some inputs failed,
    5 plugin error, 6 output exists or cannot be written, 7 model error, 130 interrupted.
    """


def _register() -> None:
    from xaicli.cli import (
        anonymize,
        compare,
        consistency_study,
        explain,
        plugins_cmd,
        predict,
        report,
        score,
        train,
    )

    app.command("train")(train.train)
    app.command("predict")(predict.predict)
    app.command("explain")(explain.explain)
    app.command("score")(score.score)
    app.command("compare")(compare.compare)
    app.command("dicom-anonymize")(anonymize.dicom_anonymize)
    app.command("consistency-study")(consistency_study.consistency_study)
    app.command("report")(report.report)
    app.command("plugins")(plugins_cmd.plugins)


_register()


def main() -> None:
    """Console-script entry point."""
    from xaicli._quiet import quiet_tensorflow

    quiet_tensorflow()
    app(prog_name="xaicli")

