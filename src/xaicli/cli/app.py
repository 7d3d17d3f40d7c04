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
            print_notes(error)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt as interrupt:
            err_console().print("[red]interrupted[/red]")
            print_notes(interrupt)
            raise typer.Exit(EXIT_INTERRUPTED) from None


def print_notes(error: BaseException) -> None:
    """What the run added to an error on its way out (how to resume it)."""
    from rich.markup import escape

    from xaicli.cli.render import err_console

    for note in getattr(error, "__notes__", ()):
        err_console().print(f"  {escape(note)}")


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


EXIT_CODES = ("Exit codes: 0 ok, 1 internal error (a bug: traceback shown), 2 usage, 3 bad input, "
              "4 some inputs failed (the rest processed), 5 plugin error, 6 output exists or cannot be written, "
              "7 model error, 8 a --fail-if gate failed, 130 interrupted. See docs/exit-codes.md.")

#: one example (or two) per command, shown at the end of its --help
EXAMPLES = {
    "train": ["xaicli train sample_data/chest/train --model simple-cnn --epochs 10 --batch-size 8 -o out/chest-model",
              "xaicli train data/ --config train.yaml --json"],
    "predict": ["xaicli predict --model sample_data/models/chest/model.keras sample_data/chest/test -o out/pred"],
    "explain": ["xaicli explain --model sample_data/models/chest/model.keras sample_data/chest/test/nodule -m gradcam,ig",
                "xaicli explain --model m.keras scan.dcm -m gradcam --layer all-conv -o out/layers"],
    "score": ["xaicli score out/explained --roi masks/ --model m.keras --fail-if 'gradcam.PointingHit<0.8'"],
    "compare": ["xaicli compare sample_data/chest/test --model sample_data/models/chest/model.keras -m gradcam,ig,lime,rise "
                "--roi sample_data/chest/masks/lesion/test -o out/chest-compare --report",
                "xaicli compare images/ --model m.keras -m gradcam --roi lesion=masks/ --fail-if 'gradcam.RoiLift<2'"],
    "dicom-anonymize": ["xaicli dicom-anonymize sample_data/dicom -o out/deid && xaicli dicom-anonymize --check out/deid "
                        "--against sample_data/dicom"],
    "consistency-study": ["xaicli consistency-study sample_data/chest/train sample_data/chest/test -o out/study "
                          "--depths 2,3 --epochs 20"],
    "report": ["xaicli report out/chest-compare", "xaicli report out/chest-model --overwrite"],
    "plugins": ["xaicli plugins explainers", "xaicli plugins --no-check --json"],
    "serve": ["xaicli serve --model sample_data/models/chest/model.keras --port 8000",
              "xaicli serve --model chest=a.keras --model faces=b.keras --token-file token.txt"],
}


def epilog(name: str) -> str:
    # "\b" keeps click from re-wrapping the paragraph: the examples stay one line each, to copy
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in EXAMPLES.get(name, [])) + "\n\n" + EXIT_CODES


app = typer.Typer(
    cls=XaicliGroup,
    name="xaicli",
    help="Train, run and explain convolutional image models; de-identify DICOM files.",
    epilog=EXIT_CODES,
    rich_markup_mode=None,
    no_args_is_help=True,
    add_completion=True,
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
        serve,
        train,
    )

    for name, function in (("train", train.train), ("predict", predict.predict), ("explain", explain.explain),
                           ("score", score.score), ("compare", compare.compare),
                           ("dicom-anonymize", anonymize.dicom_anonymize),
                           ("consistency-study", consistency_study.consistency_study),
                           ("report", report.report), ("plugins", plugins_cmd.plugins),
                           ("serve", serve.serve)):
        app.command(name, epilog=epilog(name))(function)


def _plain_placeholders() -> None:
    """Typer 0.2x writes ``{model}`` and ``<path>``, ``<bool>``, ``<list[str]>`` into help; a person
    reads ``MODEL``, the option's metavar (``--batch-size N``), and nothing after a flag."""
    from typer import core

    def usage(self) -> str:
        name = self.metavar or self.name.upper()
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 and not name.endswith("...") else "")

    def option_type(self, ctx) -> str | None:
        if self.is_flag or self.count:
            return None
        return self.metavar or self.name.upper()

    core.TyperArgument._usage_display_name = usage
    core.TyperArgument.display_type_rich = lambda self, ctx: None
    core.TyperOption.display_type_rich = option_type


_plain_placeholders()
_register()


def main() -> None:
    """Console-script entry point."""
    from xaicli._quiet import quiet_tensorflow

    quiet_tensorflow()
    app(prog_name="xaicli")

