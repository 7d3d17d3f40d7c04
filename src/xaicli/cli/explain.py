"""``xaicli explain``: saliency maps for images, with one or several methods."""

from __future__ import annotations

import json
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
    from xaicli import plugins
    from xaicli.engine.explain import accepts
    from xaicli.errors import UsageError

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


def _mask_lookup(path: Path):
    """A function from an image file to its target mask: one file for all, or a folder."""
    from xaicli.errors import InputError
    from xaicli.io import iter_image_files

    if path.is_file():
        return lambda image: path
    if not path.is_dir():
        raise InputError(f"{path}: no such mask file or folder")
    masks = iter_image_files([path])

    def find(image: Path) -> Path | None:
        stem = image.stem
        same = [m for m in masks if m.stem == stem]
        if same:
            return same[0]
        # DRIVE-like naming: 21_training.tif <-> 21_manual1.gif (same leading id)
        prefix = stem.split("_")[0] + "_"
        close = [m for m in masks if m.stem.startswith(prefix)]
        return close[0] if len(close) == 1 else None

    return find


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
) -> None:
    """Explain MODEL's predictions on INPUTS: per image and method a raw map, an overlay PNG, and maps.csv."""
    from xaicli.cli.render import err_console, out_console, table
    from xaicli.errors import EXIT_INPUT, InputError, OutputError, PartialFailure, UsageError
    from xaicli.io import COLORMAPS, iter_image_files

    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {batch_size}")
    if score not in ("probability", "logit"):
        raise UsageError(f"--score must be probability or logit, not {score!r}")
    if map_format not in ("npy", "npz"):
        raise UsageError(f"--format must be npy or npz, not {map_format!r}")
    if colormap not in COLORMAPS:
        raise UsageError(f"--colormap must be one of {', '.join(COLORMAPS)}, not {colormap!r}")
    if not 0.0 <= alpha <= 1.0:
        raise UsageError(f"--alpha must lie in [0, 1], not {alpha}")
    options = {"layer": list(layer or []) or None, "steps": steps, "baseline": baseline, "samples": samples,
               "masks": masks, "segmentation": segmentation, "seed": seed}
    methods = method_params(list(method), options, list(param or []))
    files = iter_image_files(inputs)
    if not files:
        raise InputError(f"no image files found in {', '.join(str(p) for p in inputs)}")
    index = output / "maps.csv"
    if index.exists() and not overwrite:
        raise OutputError(f"{index}: exists already (pass --overwrite to replace it)")
    mask_fn = _mask_lookup(target_mask) if target_mask is not None else None

    from xaicli.engine.explain import explain_files, output_names, write_index, write_result
    from xaicli.models.io import load_model

    names = [n.strip() for n in class_names.split(",") if n.strip()] if class_names else None
    loaded = load_model(model, task=task, class_names=names, preprocessing=preprocessing,
                        input_shape=input_shape, allow_unsafe=allow_unsafe)
    console = err_console() if as_json else out_console()
    rows: list[dict[str, Any]] = []
    failures: list[tuple[str, str]] = []
    summary: list[dict[str, Any]] = []
    results = explain_files(loaded, files, methods, target=target, target_mask=mask_fn,
                            batch_size=batch_size, names=output_names(files, inputs), score=score)
    for result in results:
        if not result.ok:
            failures.append((str(result.file), result.error or "failed"))
            continue
        written = write_result(result, output, fmt=map_format, colormap=colormap, alpha=alpha, overwrite=overwrite)
        rows.extend(written)
        summary.extend(written)
    if rows:
        write_index(rows, output, overwrite=overwrite)
    if as_json:
        doc = {"model": str(model), "task": loaded.info.task, "images": len(files),
               "explained": len(files) - len(failures), "output": str(output), "maps": summary,
               "failures": [{"file": f, "reason": r} for f, r in failures]}
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
        sys.stdout.flush()
    elif rows:
        limit = 60
        shown = [(Path(r["image"]).name, r["method"] + (f" [{r['layer']}]" if r["layer"] else ""), r["prediction"],
                  r["target"], r["seconds"], "" if r["completeness_gap"] == "" else f"{r['completeness_gap']:+.2%}")
                 for r in rows[:limit]]
        title = f"Explanations ({len(rows)} maps of {len(files) - len(failures)} images{', first ' + str(limit) if len(rows) > limit else ''})"
        console.print(table(title, ["image", "method", "prediction", "target", "s/image", "IG gap"], shown))
        console.print(f"  maps and overlays: {output}/   index: {output / 'maps.csv'}")
    if failures:
        error = PartialFailure(f"{len(failures)} of {len(files)} file(s) could not be explained"
                               + ("" if rows else "; nothing was explained"), failures)
        if not rows:
            error.exit_code = EXIT_INPUT
        raise error
