"""``xaicli compare``: explain a folder with several methods, score and draw them side by side."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def compare(
    ctx: typer.Context,
    inputs: list[Path] = typer.Argument(..., help="Image files and folders (searched recursively)."),
    model: Path = typer.Option(..., "--model", "-m", help="Model file (.keras from `xaicli train`, any .keras/.h5, or a SavedModel folder)."),
    methods: str = typer.Option("gradcam,ig,lime,rise", "--methods", help="Comma-separated explainer plugins, in grid order."),
    layer: list[str] = typer.Option(None, "--layer", help="CAM methods: layer name or path, repeatable, or all-conv (default: the last conv layer); each layer gets its own row (gradcam@layer)."),
    steps: int = typer.Option(None, help="ig: integration steps (default 50)."),
    samples: int = typer.Option(None, help="smoothgrad/vargrad: noisy samples (50); lime: perturbed samples (1000)."),
    masks: int = typer.Option(None, help="rise: number of random masks (default 4000)."),
    segmentation: str = typer.Option(None, help="lime: quickshift, slic, felzenszwalb or grid (default quickshift)."),
    param: list[str] = typer.Option(None, "--param", "-p", help="Any method parameter NAME=VALUE or METHOD.NAME=VALUE (repeatable), e.g. -p rise.grid_size=8; as in `xaicli explain`."),
    roi: list[str] = typer.Option(None, "--roi", help="Region of interest: a mask folder, masks:DIR, face-masks:DIR, face[:box|ellipse], box:X0,Y0,X1,Y1 or ellipse:CX,CY,RX,RY; repeat as NAME=SPEC for several (columns per region: lesionRatio, tagLift, ...)."),
    roi_label: str = typer.Option(None, help="Name of the region in column names (default: Face for faces, else Roi)."),
    metrics: str = typer.Option(None, "--metrics", help="Comma-separated metric plugins (default: roi-ratio, background-ratio, entropy, pointing-hit with --roi, deletion, insertion, lift with --roi, consistency for classifiers; the randomisation metrics with --sanity). Better is higher for RoiRatio, PointingHit, Lift, Insertion, Reliability; lower for BackgroundRatio, Deletion, RandSpearman, RandSSIM, Consistency; Entropy has no better direction."),
    normalization: list[str] = typer.Option(None, help="Map mass for metrics and overlays: positive (positive part), abs (magnitude) or minmax (minus the minimum); for all methods, or METHOD=MODE (repeatable). Default: each method's own (abs for ig and gradient-x-input, positive otherwise)."),
    group_by: list[str] = typer.Option(None, "--group-by", help="Summaries per group: true, predicted, outcome (correct/incorrect), error (regression bands), folder, folder:N, none (repeatable; default: true, predicted, outcome for classifiers, error for regression)."),
    fail_if: list[str] = typer.Option(None, "--fail-if", help="Gate (repeatable): METHOD.COLUMN<VALUE (or <=, >, >=, ==, !=), optionally @GROUP, e.g. 'gradcam.PointingHit<0.8' or 'ig.RoiLift<2@true=nodule'; a failed gate exits with code 8."),
    deletion_steps: int = typer.Option(None, help="Deletion/insertion: steps of the curves (default 50)."),
    tolerance: int = typer.Option(None, help="Pointing-hit tolerance in pixels (default: half the map's native cell; 0 with the pointing-hit-strict metric)."),
    metric_param: list[str] = typer.Option(None, "--metric-param", help="Metric parameter METRIC.KEY=VALUE (repeatable), e.g. insertion.blur_sigma=3."),
    sanity: bool = typer.Option(False, "--sanity", help="Randomisation sanity check: also explain with a weight-randomised copy of the model and score the similarity (low is good)."),
    random_baseline: bool = typer.Option(True, "--random-baseline/--no-random-baseline", help="Score a random map per image as the chance reference row."),
    target: str = typer.Option(None, help="What to explain: predicted (default), a class index or name, output:K."),
    score: str = typer.Option("probability", help="What a class target weighs: probability or logit (before the softmax/sigmoid; see docs/explainers.md)."),
    labels: Path = typer.Option(None, help="Regression truth: CSV with a file column and a value column."),
    label_column: str = typer.Option(None, help="The value column of --labels."),
    pattern: str = typer.Option(None, help="Regression truth from file names, e.g. '{age}_*' or 'utkface' (recognised by itself)."),
    output: Path = typer.Option(Path("xaicli-compare"), "--output", "--out", "-o", help="Output folder."),
    batch_size: int = typer.Option(16, help="Images (and perturbations) per model call."),
    rows_per_page: int = typer.Option(8, help="Images per grid page."),
    tile: int = typer.Option(160, help="Grid cell size in pixels."),
    colormap: str = typer.Option("jet", help="Overlay colormap: jet, turbo, inferno, viridis, magma, hot, gray."),
    alpha: float = typer.Option(0.45, help="Overlay heatmap weight in [0, 1]."),
    save_maps: bool = typer.Option(False, "--save-maps", help="Also write every raw map and overlay under OUT/maps/ with maps.csv (for `xaicli score`)."),
    seed: int = typer.Option(0, help="Seed of the random reference maps and the randomised model."),
    allow_unsafe: bool = typer.Option(False, "--allow-unsafe", help="Load a model that carries Python code (runs that code!)."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary to stdout."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    report: bool = typer.Option(False, "--report", help="Also write OUT/report.html: one page to read the run (see `xaicli report`)."),
) -> None:
    """Compare explainers on INPUTS: grid PNG, per-image scores, per-method summary, predictions."""
    from xaicli.cli.explain import method_params
    from xaicli.cli.render import err_console, out_console
    from xaicli.cli.score import (
        metric_params,
        progress_bar,
        render_summary,
        report_problems,
    )
    from xaicli.cli.verdicts import raise_gates, render_groups, render_model, render_warnings
    from xaicli.errors import EXIT_INPUT, PartialFailure, UsageError
    from xaicli.io import to_json
    from xaicli.pipeline.compare import compare as engine_compare
    from xaicli.pipeline.scoring import parse_list
    from xaicli.rois import parse_regions

    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {batch_size}")
    if score not in ("probability", "logit"):
        raise UsageError(f"--score must be probability or logit, not {score!r}")
    # the same method options and --param syntax as `xaicli explain`
    chosen = method_params(parse_list(methods), {"layer": layer, "steps": steps, "samples": samples,
                                                  "masks": masks, "segmentation": segmentation}, param or [])
    regions = parse_regions(roi, roi_label)
    from xaicli.models.io import load_model

    loaded = load_model(model, allow_unsafe=allow_unsafe)
    console = err_console() if as_json else out_console()
    bar, update = progress_bar(err_console(), f"explaining with {len(chosen)} method(s)")
    with bar:
        result = engine_compare(
            loaded, list(inputs), chosen, output,
            roi=regions, metrics=metrics, normalization=normalizations(normalization), group_by=group_by,
            fail_if=fail_if,
            metric_params=metric_params(deletion_steps, tolerance, metric_param), target=target, score=score,
            batch_size=batch_size, sanity=sanity, random_baseline=random_baseline, labels=labels,
            label_column=label_column, pattern=pattern, rows_per_page=rows_per_page, tile=tile,
            colormap=colormap, alpha=alpha, save_maps=save_maps, overwrite=overwrite, seed=seed, report=report,
            progress=update,
        )
    if as_json:
        payload = {
            "model": str(model), "task": loaded.info.task, "images": result.images, "methods": result.methods,
            "region": result.region, "normalization": result.normalization, "truth_source": result.truth_source,
            "directions": {c: {True: "higher", False: "lower"}.get(d) for c, d in result.directions.items()},
            result.quality_name or "quality": result.quality,
            "summary": result.summary, "warnings": result.warnings, "gates": result.gate_failures,
            "consistency": result.consistency, "outputs": result.outputs,
            "no_region": [{"file": f, "reason": r} for f, r in result.no_region],
            "failures": [{"file": f, "reason": r} for f, r in result.failures],
        }
        sys.stdout.write(to_json(payload) + "\n")
    else:
        modes = sorted(set(result.normalization.values()))
        title = (f"Comparison on {result.images} image(s), normalization "
                 + (modes[0] if len(modes) == 1 else ", ".join(f"{m} {k}" for m, k in result.normalization.items()))
                 + (f", region {result.region}" if result.region else "") + ": means per method")
        render_model(console, result, loaded.info.task)
        render_summary(console, title, [r for r in result.summary if r["Group"] == "all"], result.summary_columns)
        render_groups(console, result)
        if result.consistency:
            from xaicli.cli.render import table

            overall = [(r["method"], r["consistency"], r["n"]) for r in result.consistency if r["class"] == "(all)"]
            console.print(table("Consistency L_CAM of each method's maps (lower = more consistent)",
                                ["Method", "L_CAM", "n"], overall))
        report_problems(console, result.no_region)
        for key, path in result.outputs.items():
            shown = ", ".join(path) if isinstance(path, list) else path
            console.print(f"  {key}: {shown}")
    from xaicli.cli.report import finish

    finish("compare", output, ctx.params, report=report, overwrite=overwrite, result=result, model=model)
    render_warnings(err_console(), result.warnings)
    raise_gates(result.gate_failures)
    if result.failures:
        error = PartialFailure(f"{len(result.failures)} input(s) failed ({result.images} image(s) processed)",
                               result.failures)
        if not result.images:
            error.exit_code = EXIT_INPUT
        raise error


def normalizations(values: list[str] | None) -> str | dict[str, str] | None:
    """``--normalization abs`` (every method) or ``--normalization rise=minmax`` (one method)."""
    from xaicli.errors import UsageError

    per_method: dict[str, str] = {}
    for value in values or []:
        method, sep, mode = value.partition("=")
        if not sep:
            if len(values) > 1:
                raise UsageError("--normalization takes one MODE for all methods, or METHOD=MODE items")
            return value.strip()
        per_method[method.strip()] = mode.strip()
    return per_method or None
