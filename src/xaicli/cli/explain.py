"""``xaicli explain``: saliency maps for images, with one or several methods."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from xaicli.cli import options as opt

# shortcut option -> explainer parameter it sets (on every chosen method that has the parameter)
SHORTCUTS = {
    "layer": "layer",
    "steps": "steps",
    "baseline": "baseline",
    "samples": ("n_samples", "num_samples"),
    "masks": "n_masks",
    "segmentation": "segmentation",
    "seed": "seed",
}


def _value(text: str) -> Any:
    """A --param value: int, float, None, a comma list, or the string itself."""
    if text.lower() in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def method_params(methods: list[str], options: dict[str, Any], params: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """The chosen methods with their parameters, from ``--method`` and the shortcut options."""
    from xaicli import plugins
    from xaicli.errors import UsageError

    def accepts(name: str, key: str) -> bool:
        return plugins.accepts("explainers", name, key)

    names: list[str] = []
    for item in methods:
        names.extend(part.strip() for part in item.split(",") if part.strip())
    if not names:
        raise UsageError("name at least one method with --method (e.g. --method gradcam)")
    for name in names:
        plugins.entry("explainers", name)  # unknown name -> PluginError listing what exists
    chosen: list[tuple[str, dict[str, Any]]] = [(name, {}) for name in dict.fromkeys(names)]
    for option, value in options.items():
        if value is None or value == []:
            continue
        keys = SHORTCUTS[option]
        keys = keys if isinstance(keys, tuple) else (keys,)
        used = False
        for name, p in chosen:
            for key in keys:
                if accepts(name, key):
                    p[key] = value
                    used = True
        if not used:
            raise UsageError(f"--{option} applies to none of the methods chosen ({', '.join(n for n, _ in chosen)})")
    for item in params:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param needs NAME=VALUE or METHOD.NAME=VALUE, not {item!r}")
        method, dot, key = key.strip().rpartition(".")
        targets = [(n, p) for n, p in chosen if not dot or n == method]
        if dot and not targets:
            raise UsageError(f"--param {item!r}: method {method!r} is not among the chosen methods")
        applied = False
        for name, p in targets:
            if accepts(name, key) or dot:
                p[key] = _value(raw.strip())
                applied = True
        if not applied:
            raise UsageError(f"--param {item!r}: no chosen method has a parameter {key!r}")
    return chosen


def explain(
    inputs: opt.Inputs,
    model: opt.OptionalModel = None,
    method: opt.Methods = None,
    output: opt.Output = Path("xaicli-explanations"),
    target: Annotated[str, typer.Option(metavar="TARGET", help="What to explain: predicted, a class index or name, output:K (regression), class:C (segmentation).")] = "predicted",
    target_mask: Annotated[Path | None, typer.Option(metavar="MASK", help="Segmentation: explain the output summed over this mask (a file, or a folder of masks named like the images) instead of the predicted mask.")] = None,
    layer: Annotated[list[str] | None, typer.Option("--layer", metavar="LAYER", help="CAM methods: layer name or path (backbone/Conv_1), repeatable, or all-conv (default: the model's CAM layer).")] = None,
    steps: Annotated[int | None, typer.Option(metavar="N", help="ig: integration steps (default 50).")] = None,
    baseline: Annotated[str | None, typer.Option(metavar="NAME|FILE", help="ig: black, white, blur, noise or an image file (default black).")] = None,
    samples: Annotated[int | None, typer.Option(metavar="N", help="smoothgrad/vargrad: noisy samples (50); lime: perturbed samples (1000).")] = None,
    masks: Annotated[int | None, typer.Option(metavar="N", help="rise: number of random masks (default 4000).")] = None,
    segmentation: Annotated[str | None, typer.Option(metavar="NAME", help="lime: slic, quickshift, felzenszwalb or grid (default slic).")] = None,
    seed: Annotated[int | None, typer.Option(metavar="N", help="Random seed of the sampling methods (default 0).")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", metavar="[METHOD.]NAME=VALUE", help="Any method parameter (repeatable), e.g. -p rise.grid_size=8; see docs/explainers.md.")] = None,
    score: Annotated[str, typer.Option(metavar="probability|logit", help="What a class target weighs: probability (the model's softmax/sigmoid output) or logit (the score before it, as in the Grad-CAM paper).")] = "probability",
    batch_size: opt.BatchSize = 16,
    map_format: Annotated[str, typer.Option("--format", metavar="npy|npz", help="Raw map format (float32).")] = "npy",
    colormap: Annotated[str, typer.Option(metavar="NAME", help="Overlay colormap: jet, turbo, inferno, viridis, magma, hot, gray.")] = "jet",
    alpha: Annotated[float, typer.Option(metavar="A", help="Overlay heatmap weight in [0, 1].")] = 0.45,
    max_size: opt.MaxSize = 1024,
    precision: opt.Precision = "fp32",
    at_model_size: Annotated[bool, typer.Option("--at-model-size", help="Write the maps at the model's input resolution, not the image's.")] = False,
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
    engine: opt.Engine = "local",
    address: opt.Address = None,
    resume: opt.Resume = False,
) -> None:
    """Explain a model's predictions: per image and method a raw map, an overlay PNG, and maps.csv."""
    from xaicli.cli.progress import Progress
    from xaicli.cli.render import err_console, out_console, table
    from xaicli.errors import EXIT_INPUT, PartialFailure
    from xaicli.io import to_json
    from xaicli.pipeline.explain import explain as run_explain

    model, inputs = opt.model_and_inputs(model, list(inputs))
    options = {"layer": list(layer or []) or None, "steps": steps, "baseline": baseline, "samples": samples,
               "masks": masks, "segmentation": segmentation, "seed": seed}
    methods = method_params(opt.split_methods(method), options, list(param or []))
    loaded = opt.load(model, task=task, class_names=class_names, preprocessing=preprocessing, input_shape=input_shape,
                      allow_unsafe=allow_unsafe, output_index=output_index)
    console = err_console() if as_json else out_console()
    with Progress(err_console(), "explain", quiet=quiet) as progress:
        result = run_explain(loaded, inputs, methods, output, target=target, target_mask=target_mask, score=score,
                             batch_size=batch_size, map_format=map_format, colormap=colormap, alpha=alpha,
                             overwrite=overwrite, frame=frame, max_size=max_size, precision=precision,
                             map_resolution="model" if at_model_size else "image", progress=progress,
                             engine=engine, address=address, resume=resume)
    failures = result.failures
    if as_json:
        doc = {"model": str(model), "task": loaded.info.task, "images": result.images,
               "explained": result.explained, "output": str(output), "maps": result.maps,
               "outputs": result.outputs, "warnings": result.warnings,
               "failures": [{"file": f, "reason": r} for f, r in failures]}
        sys.stdout.write(to_json(doc) + "\n")
        sys.stdout.flush()
    elif result.rows:
        limit = len(result.rows)
        shown = [(Path(r["image"]).name, r["method"] + (f" [{r['layer']}]" if r["layer"] else ""), r["prediction"],
                  r["target"], r["seconds"], "" if r["completeness_gap"] == "" else f"{r['completeness_gap']:+.2%}")
                 for r in result.rows]
        title = f"Explanations ({result.maps} maps of {result.explained} images{', first ' + str(limit) if result.maps > limit else ''})"
        console.print(table(title, ["image", "method", "prediction", "target", "s/image", "IG gap"], shown))
        console.print(f"  maps and overlays: {output}/   index: {output / 'maps.csv'}")
    render_input_warnings(result.warnings)
    if failures:
        error = PartialFailure(f"{len(failures)} of {result.images} file(s) could not be explained"
                               + ("" if result.maps else "; nothing was explained"), failures)
        if not result.maps:
            error.exit_code = EXIT_INPUT
        raise error


def render_input_warnings(warnings: list[tuple[str, str]]) -> None:
    """Per input, what a person should know (an image far larger or smaller than the model's input)."""
    from xaicli.cli.render import err_console

    for where, message in warnings[:10]:
        err_console().print(f"[yellow]warning: {where}: {message}[/yellow]", highlight=False)
    if len(warnings) > 10:
        err_console().print(f"[yellow]warning: ... and {len(warnings) - 10} more such inputs[/yellow]")


EXAMPLES = """Examples:

  xaicli explain --model sample_data/models/chest/model.keras sample_data/chest/test/nodule -m gradcam,ig

  xaicli explain --model m.keras scans/ -m gradcam --layer all-conv -o out/layers

  xaicli explain --model m.keras img.png -m rise --masks 1000 -p rise.grid_size=8
"""
