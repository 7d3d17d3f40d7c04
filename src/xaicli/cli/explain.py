"""``xaicli explain``: saliency maps for images, with one or several methods."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

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
    model: Path = typer.Argument(..., help="Model file (.keras from `xaicli train`, any .keras/.h5, or a SavedModel folder)."),
    inputs: list[Path] = typer.Argument(..., help="Image files and folders (PNG/JPEG/TIFF/GIF/DICOM), searched recursively."),
    method: list[str] = typer.Option(..., "--method", "-m", help="Explainer (repeat or comma-separate): gradcam, gradcam++, scorecam, saliency, gradient-x-input, smoothgrad, smoothgrad-squared, vargrad, ig, occlusion, rise, lime; `xaicli plugins` lists all."),
    output: Path = typer.Option(Path("xaicli-explanations"), "--output", "-o", help="Output folder: maps, overlays and maps.csv."),
    target: str = typer.Option("predicted", help="What to explain: predicted, a class index or name, output:K (regression), class:C (segmentation)."),
    target_mask: Path = typer.Option(None, help="Segmentation: explain the output summed over this mask (a file, or a folder of masks named like the images) instead of the predicted mask."),
    layer: list[str] = typer.Option(None, "--layer", help="CAM methods: layer name or path (backbone/Conv_1), repeatable, or all-conv (default: the last conv layer)."),
    steps: int = typer.Option(None, help="ig: integration steps (default 50)."),
    baseline: str = typer.Option(None, help="ig: black, white, blur, noise or an image file (default black)."),
    samples: int = typer.Option(None, help="smoothgrad/vargrad: noisy samples (50); lime: perturbed samples (1000)."),
    masks: int = typer.Option(None, help="rise: number of random masks (default 4000)."),
    segmentation: str = typer.Option(None, help="lime: quickshift, slic, felzenszwalb or grid (default quickshift)."),
    seed: int = typer.Option(None, help="Random seed of the sampling methods (default 0)."),
    param: list[str] = typer.Option(None, "--param", "-p", help="Any method parameter: NAME=VALUE or METHOD.NAME=VALUE (e.g. rise.grid_size=8); see docs/explainers.md."),
    score: str = typer.Option("probability", help="What a class target weighs: probability (the model's softmax/sigmoid output) or logit (the score before it, as in the Grad-CAM paper)."),
    batch_size: int = typer.Option(16, help="Images per batch and perturbations per model call (bounds memory)."),
    map_format: str = typer.Option("npy", "--format", help="Raw map format: npy or npz (float32, the image's resolution)."),
    colormap: str = typer.Option("jet", help="Overlay colormap: jet, turbo, inferno, viridis, magma, hot, gray."),
    alpha: float = typer.Option(0.45, help="Overlay heatmap weight in [0, 1]."),
    task: str = typer.Option(None, help="Foreign model: classification, regression or segmentation."),
    class_names: str = typer.Option(None, help="Foreign model: comma-separated class names, in output order."),
    preprocessing: str = typer.Option(None, help="Foreign model: unit, symmetric, caffe or standardize."),
    input_shape: str = typer.Option(None, help="Foreign model: H,W,C when the model does not fix it."),
    allow_unsafe: bool = typer.Option(False, "--allow-unsafe", help="Load a model that carries Python code (runs that code!)."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary to stdout."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    engine: str = typer.Option("local", "--engine", help="Where the per-image work runs: local (this process) or ray (a Ray cluster; needs the ray extra of xaicli; see docs/scale-out.md)."),
    address: str = typer.Option(None, "--address", help="--engine ray: the cluster to join (host:6379, ray://host:10001, auto; default: start a local Ray)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run into the same output folder: finished images are kept, the rest computed."),
) -> None:
    """Explain MODEL's predictions on INPUTS: per image and method a raw map, an overlay PNG, and maps.csv."""
    from xaicli.cli.render import err_console, out_console, table
    from xaicli.errors import EXIT_INPUT, PartialFailure, UsageError
    from xaicli.io import to_json

    if score not in ("probability", "logit"):
        raise UsageError(f"--score must be probability or logit, not {score!r}")
    options = {"layer": list(layer or []) or None, "steps": steps, "baseline": baseline, "samples": samples,
               "masks": masks, "segmentation": segmentation, "seed": seed}
    methods = method_params(list(method), options, list(param or []))

    from xaicli.models.io import load_model
    from xaicli.pipeline.explain import explain as run_explain

    names = [n.strip() for n in class_names.split(",") if n.strip()] if class_names else None
    loaded = load_model(model, task=task, class_names=names, preprocessing=preprocessing,
                        input_shape=input_shape, allow_unsafe=allow_unsafe)
    console = err_console() if as_json else out_console()
    result = run_explain(loaded, inputs, methods, output, target=target, target_mask=target_mask, score=score,
                         batch_size=batch_size, map_format=map_format, colormap=colormap, alpha=alpha,
                         overwrite=overwrite, engine=engine, address=address, resume=resume)
    failures = result.failures
    if as_json:
        doc = {"model": str(model), "task": loaded.info.task, "images": result.images,
               "explained": result.explained, "output": str(output), "maps": result.maps,
               "outputs": result.outputs, "failures": [{"file": f, "reason": r} for f, r in failures]}
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
    if failures:
        error = PartialFailure(f"{len(failures)} of {result.images} file(s) could not be explained"
                               + ("" if result.maps else "; nothing was explained"), failures)
        if not result.maps:
            error.exit_code = EXIT_INPUT
        raise error
