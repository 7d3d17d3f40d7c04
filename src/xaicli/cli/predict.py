"""``xaicli predict``: predictions for files and folders, with the evaluation when truth is known."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from xaicli.cli import options as opt


def render_evaluation(console: Any, task: str, report: dict[str, Any], title: str = "Evaluation") -> None:
    """Print an evaluation report (classification report + confusion matrix, MAE/RMSE, Dice/IoU)."""
    from xaicli.cli.render import table

    if task == "classification":
        rows = [(r["class"], r["precision"], r["recall"], r["f1"], r["support"]) for r in report["per_class"]]
        for label in ("macro_avg", "weighted_avg"):
            avg = report[label]
            rows.append((label.replace("_", " "), avg["precision"], avg["recall"], avg["f1"], report["n"]))
        console.print(table(f"{title}: accuracy {report['accuracy']:.4f} on {report['n']} images",
                            ["class", "precision", "recall", "f1", "support"], rows))
        names = report["class_names"]
        console.print(table("Confusion matrix (rows: true, columns: predicted)", ["true \\ predicted", *names],
                            [(name, *row) for name, row in zip(names, report["confusion_matrix"], strict=True)]))
        if "missed_pathologies" in report:
            console.print(f"pathology predicted as '{report['normal_class']}': {report['missed_pathologies']} "
                          f"({report['missed_pathology_rate']:.1%} of pathology images)")
    elif task == "regression":
        console.print(table(f"{title} ({report['n']} images)", ["metric", "value"],
                            [("MAE", report["mae"]), ("RMSE", report["rmse"]),
                             ("MAE of a constant mean", report["mae_constant_mean"])]))
    else:
        console.print(table(f"{title} ({report['n']} images)", ["metric", "mean per image", "pooled"],
                            [("Dice", report["dice"], report["dice_pooled"]), ("IoU", report["iou"], report["iou_pooled"])]))


def predict(
    ctx: typer.Context,
    inputs: opt.Inputs,
    model: opt.OptionalModel = None,
    output: opt.Output = Path("xaicli-predictions"),
    batch_size: opt.BatchSize = 32,
    labels: Annotated[Path | None, typer.Option(metavar="CSV", help="Regression truth: CSV with a file column and a value column.")] = None,
    label_column: Annotated[str | None, typer.Option(metavar="NAME", help="The value column of --labels.")] = None,
    pattern: Annotated[str | None, typer.Option(metavar="PATTERN", help="Regression truth from file names, e.g. '{age}_*' or 'utkface'.")] = None,
    masks: Annotated[Path | None, typer.Option(metavar="DIR", help="Segmentation truth: mask folder (default: DRIVE's 1st_manual/).")] = None,
    normal_class: Annotated[str | None, typer.Option(metavar="CLASS", help="The 'no finding' class for the missed-pathology count (default: the model's).")] = None,
    threshold: Annotated[float, typer.Option(metavar="P", help="Segmentation: foreground probability threshold.")] = 0.5,
    frame: opt.Frame = None,
    output_index: opt.OutputIndex = None,
    task: opt.Task = None,
    class_names: opt.ClassNames = None,
    preprocessing: opt.Preprocessing = None,
    input_shape: opt.InputShape = None,
    allow_unsafe: opt.AllowUnsafe = False,
    as_json: opt.Json = False,
    quiet: opt.Quiet = False,
    overwrite: opt.Overwrite = False,
    report: opt.Report = False,
    engine: opt.Engine = "local",
    address: opt.Address = None,
    resume: opt.Resume = False,
) -> None:
    """Predict with a model: predictions.csv (and masks); the evaluation when the truth is known."""
    from xaicli.cli.progress import Progress
    from xaicli.cli.render import err_console, out_console, table
    from xaicli.errors import EXIT_INPUT, PartialFailure, UsageError
    from xaicli.pipeline import predict as composition

    model, inputs = opt.model_and_inputs(model, list(inputs))
    if batch_size < 1:
        raise UsageError(f"batch size must be >= 1, not {batch_size}")
    if not 0.0 < threshold < 1.0:
        raise UsageError(f"threshold must lie in (0, 1), not {threshold}")
    loaded = opt.load(model, task=task, class_names=class_names, preprocessing=preprocessing, input_shape=input_shape,
                      allow_unsafe=allow_unsafe, output_index=output_index)
    console = err_console() if as_json else out_console()
    with Progress(err_console(), "predict", quiet=quiet) as progress:
        result = composition.predict(loaded, inputs, output, batch_size=batch_size, overwrite=overwrite,
                                     labels=labels, label_column=label_column, pattern=pattern, masks=masks,
                                     normal_class=normal_class, threshold=threshold, frame=frame, progress=progress,
                                     engine=engine, address=address, resume=resume, report=report)
    from xaicli.cli.report import finish

    finish("predict", output, ctx.params, report=report, overwrite=overwrite, result=result, model=model)
    if as_json:
        summary = {
            "model": str(model), "task": loaded.info.task, "images": result.n_inputs,
            "predicted": result.predicted, "failures": [{"file": f, "reason": r} for f, r in result.failures],
            "truth_source": result.truth_source, "evaluation": result.evaluation, "outputs": result.outputs,
        }
        from xaicli.io import to_json

        sys.stdout.write(to_json(summary) + "\n")
        sys.stdout.flush()
    else:
        shown = [c for c in result.columns if not c.startswith("p_") and c != "true_mask"]
        rows = [[row.get(c, "") for c in shown] for row in result.rows]
        title = f"Predictions ({result.predicted} images{', first ' + str(len(rows)) if result.predicted > len(rows) else ''})"
        console.print(table(title, shown, rows))
        if result.evaluation is not None:
            render_evaluation(console, loaded.info.task, result.evaluation, title=f"Evaluation (truth: {result.truth_source})")
        else:
            console.print("truth unknown for these images: no evaluation")
        for key, path in result.outputs.items():
            console.print(f"  {key}: {path}")
    if result.failures:
        error = PartialFailure(f"{len(result.failures)} of {result.n_inputs} file(s) could not be processed"
                               + ("" if result.predicted else "; nothing was predicted"), result.failures)
        if not result.predicted:
            error.exit_code = EXIT_INPUT
        raise error
