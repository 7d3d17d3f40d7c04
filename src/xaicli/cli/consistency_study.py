"""``xaicli consistency-study``: the Grad-CAM consistency experiment in one command."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from xaicli.errors import UsageError


def _numbers(text: str, kind: type, option: str) -> list:
    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{option} takes comma-separated numbers, not {text!r}") from None


def consistency_study(
    ctx: typer.Context,
    train_dir: Path = typer.Argument(..., help="Training folder, one sub-folder per class."),
    test_dir: Path = typer.Argument(..., help="Test folder, one sub-folder per class."),
    out: Path = typer.Option(Path("consistency-study"), "--output", "--out", "-o", metavar="DIR", help="Output folder."),
    depths: str = typer.Option("2,3,4", help="simple-cnn depths, comma-separated."),
    lambdas: str = typer.Option("0,1", help="Regulariser weights, comma-separated (0 = plain training)."),
    epochs: int = typer.Option(30, help="Epochs per model (batch-normalised CNNs need a few dozen on small data before their inference statistics settle)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per training step."),
    learning_rate: float = typer.Option(1e-3, "--learning-rate", help="Nadam learning rate."),
    schedule: str = typer.Option("linear", help="Lambda curriculum: linear or step."),
    warmup: int = typer.Option(1, help="Epochs with lambda = 0 before the curriculum starts."),
    decay: float = typer.Option(0.9, help="Decay of the moving average of the class-mean maps."),
    seed: int = typer.Option(0, help="Seed for weights, split and shuffling."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
    report: bool = typer.Option(False, "--report", help="Also write OUT/report.html: one page to read the study (see `xaicli report`)."),
) -> None:
    """Train simple-cnn at several depths with and without the Grad-CAM consistency regulariser.

    For each depth x lambda: train on TRAIN_DIR, then measure test accuracy and L_CAM (the
    consistency metric of the Grad-CAM maps of correctly classified test images, lower = more
    consistent) on TEST_DIR. Writes study.csv, accuracy-vs-consistency.png and
    class-mean-maps.png into --out.
    """
    from xaicli.cli.render import err_console, out_console, table
    from xaicli.training.study import run_study

    console = err_console()
    rows = run_study(
        train_dir, test_dir, out,
        depths=_numbers(depths, int, "--depths"), lambdas=_numbers(lambdas, float, "--lambdas"),
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, schedule=schedule,
        warmup=warmup, decay=decay, seed=seed, overwrite=overwrite,
        on_status=None if quiet else (lambda message: console.print(f"[dim]{message}[/dim]")),
    )
    from xaicli.cli.report import finish

    finish("consistency-study", out, ctx.params, report=report, overwrite=overwrite)
    if as_json:
        typer.echo(json.dumps([r.as_csv() for r in rows], indent=2))
        return
    out_console().print(table(
        "Grad-CAM consistency study (L_CAM: lower = more consistent)",
        ["depth", "lambda", "test accuracy", "L_CAM", "correct / n"],
        ([r.depth, r.lam, r.accuracy, r.consistency, f"{r.n_correct} / {r.n_test}"] for r in rows),
    ))
    out_console().print(f"wrote {out / 'study.csv'}, {out / 'accuracy-vs-consistency.png'}, {out / 'class-mean-maps.png'}")
