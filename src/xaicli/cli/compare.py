"""``xaicli compare``: explain a folder with several methods, score and draw them side by side."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from xaicli.cli import options as opt


def compare(
    ctx: typer.Context,
    inputs: opt.Inputs,
    model: opt.OptionalModel = None,
    method: opt.Methods = None,
    layer: Annotated[list[str] | None, typer.Option("--layer", metavar="LAYER", help="CAM methods: layer name or path, repeatable, or all-conv (default: the model's CAM layer); each layer gets its own row (gradcam@layer).")] = None,
    steps: Annotated[int | None, typer.Option("--steps", metavar="N", help="ig: integration steps (default 50).")] = None,
    samples: Annotated[int | None, typer.Option("--samples", metavar="N", help="smoothgrad/vargrad: noisy samples (50); lime: perturbed samples (1000).")] = None,
    masks: Annotated[int | None, typer.Option("--masks", metavar="N", help="rise: number of random masks (default 4000).")] = None,
    segmentation: Annotated[str | None, typer.Option("--segmentation", metavar="NAME", help="lime: slic, quickshift, felzenszwalb or grid (default slic).")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", metavar="[METHOD.]NAME=VALUE", help="Any method parameter (repeatable), e.g. -p rise.grid_size=8; as in `xaicli explain`.")] = None,
    roi: Annotated[list[str] | None, typer.Option("--roi", metavar="[NAME=]SPEC", help="Region of interest: a mask folder, masks:DIR, face-masks:DIR, face[:box|ellipse], box:X0,Y0,X1,Y1 or ellipse:CX,CY,RX,RY; repeat as NAME=SPEC for several (columns per region: lesionRatio, tagLift, ...).")] = None,
    roi_label: Annotated[str | None, typer.Option("--roi-label", metavar="NAME", help="Name of the region in column names (default: Face for faces, else Roi).")] = None,
    metrics: Annotated[str | None, typer.Option("--metrics", metavar="METRIC[,METRIC]", help="Metric plugins (default: roi-ratio, background-ratio, entropy, pointing-hit with --roi, deletion, insertion, lift with --roi, consistency for classifiers; the randomisation metrics with --sanity). Better is higher for RoiRatio, PointingHit, Lift, Insertion, Reliability; lower for BackgroundRatio, Deletion, RandSpearman, RandSSIM, Consistency; Entropy has no better direction.")] = None,
    normalization: Annotated[list[str] | None, typer.Option("--normalization", metavar="[METHOD=]MODE", help="Map mass for metrics and overlays: positive (positive part), abs (magnitude) or minmax (minus the minimum); for all methods, or METHOD=MODE (repeatable). Default: each method's own (abs for ig and gradient-x-input, positive otherwise).")] = None,
    group_by: Annotated[list[str] | None, typer.Option("--group-by", metavar="KIND", help="Summaries per group: true, predicted, outcome (correct/incorrect), error (regression bands), folder, folder:N, none (repeatable; default: true, predicted, outcome for classifiers, error for regression).")] = None,
    fail_if: Annotated[list[str] | None, typer.Option("--fail-if", metavar="GATE", help="Gate (repeatable): METHOD.COLUMN<VALUE (or <=, >, >=, ==, !=), optionally @GROUP, e.g. 'gradcam.PointingHit<0.8' or 'ig.RoiLift<2@true=nodule'; a failed gate exits with code 8.")] = None,
    deletion_steps: Annotated[int | None, typer.Option("--deletion-steps", metavar="N", help="Deletion/insertion: steps of the curves (default 50).")] = None,
    tolerance: Annotated[int | None, typer.Option("--tolerance", metavar="PX", help="Pointing-hit tolerance in pixels (default: half the map's native cell; 0 with the pointing-hit-strict metric).")] = None,
    metric_param: Annotated[list[str] | None, typer.Option("--metric-param", metavar="METRIC.KEY=VALUE", help="Metric parameter (repeatable), e.g. insertion.blur_sigma=3.")] = None,
    sanity: Annotated[bool, typer.Option("--sanity", help="Randomisation sanity check: also explain with a weight-randomised copy of the model and score the similarity (low is good).")] = False,
    random_baseline: Annotated[bool, typer.Option("--random-baseline/--no-random-baseline", help="Score a random map per image as the chance reference row.")] = True,
    target: Annotated[str | None, typer.Option("--target", metavar="TARGET", help="What to explain: predicted (default), a class index or name, output:K.")] = None,
    score: Annotated[str, typer.Option("--score", metavar="probability|logit", help="What a class target weighs: probability or logit (before the softmax/sigmoid; see docs/explainers.md).")] = "probability",
    labels: Annotated[Path | None, typer.Option("--labels", metavar="CSV", help="Regression truth: CSV with a file column and a value column.")] = None,
    label_column: Annotated[str | None, typer.Option("--label-column", metavar="NAME", help="The value column of --labels.")] = None,
    pattern: Annotated[str | None, typer.Option("--pattern", metavar="PATTERN", help="Regression truth from file names, e.g. '{age}_*' or 'utkface' (recognised by itself).")] = None,
    output: opt.Output = Path("xaicli-compare"),
    batch_size: opt.BatchSize = 16,
    rows_per_page: Annotated[int, typer.Option("--rows-per-page", metavar="N", help="Images per grid page.")] = 8,
    tile: Annotated[int, typer.Option("--tile", metavar="PX", help="Grid cell size in pixels.")] = 160,
    colormap: Annotated[str, typer.Option("--colormap", metavar="NAME", help="Overlay colormap: jet, turbo, inferno, viridis, magma, hot, gray.")] = "jet",
    alpha: Annotated[float, typer.Option("--alpha", metavar="A", help="Overlay heatmap weight in [0, 1].")] = 0.45,
    save_maps: Annotated[bool, typer.Option("--save-maps", help="Also write every raw map and overlay under OUT/maps/ with maps.csv (for `xaicli score`).")] = False,
    max_size: opt.MaxSize = 1024,
    precision: opt.Precision = "fp32",
    frame: opt.Frame = None,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Seed of the random reference maps and the randomised model.")] = 0,
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
    """Compare explainers: the grid, per-image scores, the summary per group and method, warnings and gates."""
    from xaicli.cli.explain import method_params
    from xaicli.cli.progress import Progress
    from xaicli.cli.render import err_console, out_console
    from xaicli.cli.score import metric_params, render_summary, report_problems
    from xaicli.cli.verdicts import raise_gates, render_groups, render_model, render_warnings
    from xaicli.errors import EXIT_INPUT, PartialFailure
    from xaicli.io import to_json
    from xaicli.pipeline.compare import compare as engine_compare
    from xaicli.rois import parse_regions

    model, names = opt.model_from_methods(model, opt.split_methods(method))
    model, inputs = opt.model_and_inputs(model, list(inputs))
    # the same method options and --param syntax as `xaicli explain`
    chosen = method_params(names or ["gradcam", "ig", "lime", "rise"],
                           {"layer": layer, "steps": steps, "samples": samples, "masks": masks,
                            "segmentation": segmentation}, param or [])
    regions = parse_regions(roi, roi_label)
    loaded = opt.load(model, task=task, class_names=class_names, preprocessing=preprocessing, input_shape=input_shape,
                      allow_unsafe=allow_unsafe, output_index=output_index)
    console = err_console() if as_json else out_console()
    with Progress(err_console(), "compare", quiet=quiet) as progress:
        result = engine_compare(
            loaded, inputs, chosen, output,
            roi=regions, metrics=metrics, normalization=normalizations(normalization), group_by=group_by,
            fail_if=fail_if,
            metric_params=metric_params(deletion_steps, tolerance, metric_param), target=target, score=score,
            batch_size=batch_size, sanity=sanity, random_baseline=random_baseline, labels=labels,
            label_column=label_column, pattern=pattern, rows_per_page=rows_per_page, tile=tile,
            colormap=colormap, alpha=alpha, save_maps=save_maps, overwrite=overwrite, seed=seed,
            max_size=max_size, precision=precision, frame=frame, progress=progress,
            engine=engine, address=address, resume=resume, report=report,
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
