"""``xaicli predict``: predictions for files and folders, with the evaluation when truth is known."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer


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
    model: Path = typer.Argument(..., help="Model file (.keras from `xaicli train`, any .keras/.h5, or a SavedModel folder)."),
    inputs: list[Path] = typer.Argument(..., help="Image files and folders (PNG/JPEG/TIFF/DICOM), searched recursively."),
    output: Path = typer.Option(Path("xaicli-predictions"), "--output", "-o", help="Output folder for predictions.csv, masks, evaluation."),
    batch_size: int = typer.Option(32, help="Images per model call."),
    labels: Path = typer.Option(None, help="Regression truth: CSV with a file column and a value column."),
    label_column: str = typer.Option(None, help="The value column of --labels."),
    pattern: str = typer.Option(None, help="Regression truth from file names, e.g. '{age}_*' or 'utkface'."),
    masks: Path = typer.Option(None, help="Segmentation truth: mask folder (default: DRIVE's 1st_manual/)."),
    normal_class: str = typer.Option(None, help="The 'no finding' class for the missed-pathology count (default: the model's)."),
    threshold: float = typer.Option(0.5, help="Segmentation: foreground probability threshold."),
    task: str = typer.Option(None, help="Foreign model: classification, regression or segmentation."),
    class_names: str = typer.Option(None, help="Foreign model: comma-separated class names, in output order."),
    preprocessing: str = typer.Option(None, help="Foreign model: unit, symmetric, caffe or standardize."),
    input_shape: str = typer.Option(None, help="Foreign model: H,W,C when the model does not fix it."),
    allow_unsafe: bool = typer.Option(False, "--allow-unsafe", help="Load a model that carries Python code (runs that code!)."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary to stdout."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    report: bool = typer.Option(False, "--report", help="Also write OUTPUT/report.html: one page to read the run (see `xaicli report`)."),
) -> None:
    """Predict INPUTS with MODEL: writes predictions.csv (and masks); evaluates when truth is known."""
    from xaicli.cli.render import err_console, out_console, table
    from xaicli.errors import EXIT_INPUT, PartialFailure, UsageError
    from xaicli.models.io import load_model
    from xaicli.pipeline import predict as engine

    if batch_size < 1:
        raise UsageError(f"batch size must be >= 1, not {batch_size}")
    if not 0.0 < threshold < 1.0:
        raise UsageError(f"threshold must lie in (0, 1), not {threshold}")
    names = [n.strip() for n in class_names.split(",") if n.strip()] if class_names else None
    loaded = load_model(model, task=task, class_names=names, preprocessing=preprocessing,
                        input_shape=input_shape, allow_unsafe=allow_unsafe)
    console = err_console() if as_json else out_console()
    result = engine.predict(loaded, list(inputs), output, batch_size=batch_size, overwrite=overwrite,
                            labels=labels, label_column=label_column, pattern=pattern, masks=masks,
                            normal_class=normal_class, threshold=threshold, report=report)
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
