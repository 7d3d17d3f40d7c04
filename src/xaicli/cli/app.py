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
            print_error(error)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            err_console().print("[red]interrupted[/red]")
            raise typer.Exit(EXIT_INTERRUPTED) from None


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
    app.command("plugins")(plugins_cmd.plugins)


_register()


def quiet_tensorflow() -> None:
    """Keep TensorFlow's start-up chatter (oneDNN notes, "no CUDA driver", retracing warnings) out
    of the terminal; a value the user set in ``TF_CPP_MIN_LOG_LEVEL`` wins."""
    import logging
    import os
    import sys

    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    # TensorFlow >= 2.17 logs through absl before absl's logging is initialised, which ignores
    # TF_CPP_MIN_LOG_LEVEL and writes straight to file descriptor 2: silence it for the import.
    sys.meta_path.insert(0, _QuietTensorFlowImport())


class _QuietTensorFlowImport:
    """Import hook: the first ``import tensorflow`` runs with fd 2 sent to a buffer, replayed only
    if the import fails (so a broken installation still shows why)."""

    def find_spec(self, name, path=None, target=None):
        import importlib.util
        import sys

        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once, and the real finders do the finding
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader:
    def __init__(self, inner) -> None:
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module) -> None:
        import os
        import sys
        import tempfile

        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as buffer:
            os.dup2(buffer.fileno(), 2)
            try:
                self.inner.exec_module(module)
            except BaseException:
                os.dup2(saved, 2)
                buffer.seek(0)
                os.write(2, buffer.read())
                raise
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)


def main() -> None:
    """Console-script entry point."""
    quiet_tensorflow()
    app(prog_name="xaicli")

