"""The options every command shares, defined once (``Annotated`` aliases, as fastapi-cli does), so a
name means the same thing everywhere: ``--output/--out/-o`` the output folder, ``--model`` the model
file, ``-m/--method`` the explainer (repeatable, comma lists accepted), ``--json``, ``--quiet``,
``--overwrite``, ``--batch-size``, ``--frame``, ``--max-size``.

Old spellings keep working for one release with a deprecation line (:func:`deprecated`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

MODEL_HELP = "Model file: .keras from `xaicli train`, any .keras/.h5, or a SavedModel folder."

Output = Annotated[Path, typer.Option("--output", "--out", "-o", metavar="DIR", help="Output folder.")]
Model = Annotated[Path, typer.Option("--model", metavar="MODEL", help=MODEL_HELP)]
OptionalModel = Annotated[Path | None, typer.Option("--model", metavar="MODEL", help=MODEL_HELP)]
Methods = Annotated[list[str] | None, typer.Option(
    "--method", "--methods", "-m", metavar="METHOD[,METHOD]",
    help="Explainer (repeat, or comma-separate): gradcam, gradcam++, scorecam, saliency, gradient-x-input, "
         "smoothgrad, smoothgrad-squared, vargrad, ig, occlusion, rise, lime; `xaicli plugins` lists all.")]
Inputs = Annotated[list[Path], typer.Argument(
    metavar="INPUT...", help="Image files and folders (PNG/JPEG/BMP/TIFF/GIF/DICOM), searched recursively.")]
Json = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary to stdout.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines or bars (errors and warnings still show).")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]
Report = Annotated[bool, typer.Option("--report", help="Also write OUT/report.html: one page to read the run "
                                                       "(see `xaicli report`).")]
BatchSize = Annotated[int, typer.Option("--batch-size", metavar="N",
                                        help="Images (and perturbations) per model call: bounds memory.")]
Frame = Annotated[str | None, typer.Option(
    "--frame", metavar="N|first|middle|all",
    help="Multi-frame DICOM and TIFF (and animated GIF): which frame to read (0-based), or all (one input per frame). "
         "Default: such files are refused.")]
MaxSize = Annotated[int, typer.Option(
    "--max-size", metavar="PX", help="Maps and overlays are written at most this many pixels on their long side "
                                     "(aspect kept; 0: the input's own size).")]
Precision = Annotated[str, typer.Option(
    "--precision", metavar="fp32|bf16|mixed|auto",
    help="Arithmetic of the explanations: fp32 (default); bf16 or mixed (bfloat16: several times faster on CPUs "
         "with bfloat16 units, slower elsewhere); auto (bfloat16 only where a probe on the first batch measured it "
         "faster with maps that agree with fp32's). Predictions stay fp32.")]
Engine = Annotated[str, typer.Option(
    "--engine", metavar="local|ray",
    help="Where the per-image work runs: local (this process) or ray (a Ray cluster; pip install 'xaicli[ray]'; "
         "see docs/scale-out.md).")]
Address = Annotated[str | None, typer.Option(
    "--address", metavar="HOST:PORT", help="--engine ray: the cluster to join (host:6379, ray://host:10001, auto; "
                                           "default: start a local Ray).")]
Resume = Annotated[bool, typer.Option(
    "--resume", help="Continue an interrupted run into the same output folder: finished images are kept, the rest computed.")]
AllowUnsafe = Annotated[bool, typer.Option("--allow-unsafe", help="Load a model that carries Python code (runs that code!).")]
OutputIndex = Annotated[str | None, typer.Option(
    "--output-index", "--output-name", metavar="K|NAME",
    help="A model with several outputs: the one to predict and explain (its index or its name).")]


Task = Annotated[str | None, typer.Option("--task", metavar="TASK", help="Foreign model: classification, regression or segmentation.")]
ClassNames = Annotated[str | None, typer.Option("--class-names", metavar="A,B,...", help="Foreign model: class names, in output order.")]
Preprocessing = Annotated[str | None, typer.Option("--preprocessing", metavar="NAME", help="Foreign model: unit, symmetric, caffe or standardize.")]
InputShape = Annotated[str | None, typer.Option("--input-shape", metavar="H,W,C", help="Foreign model: its input size when the model does not fix it.")]


def load(model: Path, *, task: str | None = None, class_names: str | None = None, preprocessing: str | None = None,
         input_shape: str | None = None, allow_unsafe: bool = False, output_index: str | None = None):
    """The model of a command, with the foreign-model options every model-taking command has."""
    from xaicli.models.io import load_model

    names = [n.strip() for n in class_names.split(",") if n.strip()] if class_names else None
    return load_model(model, task=task, class_names=names, preprocessing=preprocessing, input_shape=input_shape,
                      allow_unsafe=allow_unsafe, output=output_index)


def deprecated(old: str, new: str) -> None:
    """One line on stderr: the old spelling still works in this release."""
    from xaicli.cli.render import err_console

    err_console().print(f"[yellow]deprecated: {old} -> use {new} (the old spelling goes in the next release)[/yellow]")


def looks_like_model(path: Path | str | None) -> bool:
    """A model file or SavedModel folder (to recognise the old positional MODEL argument)."""
    if path is None:
        return False
    path = Path(path)
    if path.is_dir():
        return (path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists()
    return path.suffix.lower() in (".keras", ".h5", ".hdf5")


def model_and_inputs(model: Path | None, inputs: list[Path]) -> tuple[Path, list[Path]]:
    """``--model M INPUT...``; the old ``MODEL INPUT...`` still works, with a deprecation line."""
    from xaicli.errors import UsageError

    if model is None and inputs and looks_like_model(inputs[0]):
        deprecated("MODEL as the first argument", f"--model {inputs[0]}")
        model, inputs = inputs[0], inputs[1:]
    if model is None:
        raise UsageError("name the model with --model MODEL")
    if not inputs:
        raise UsageError("name at least one image file or folder")
    return model, inputs


def split_methods(methods: list[str] | None) -> list[str]:
    """``-m gradcam -m ig,lime`` -> ``["gradcam", "ig", "lime"]``; the old ``-m MODEL`` of
    ``compare``/``score`` comes back apart (see :func:`model_from_methods`)."""
    names: list[str] = []
    for item in methods or []:
        names.extend(part.strip() for part in str(item).split(",") if part.strip())
    return list(dict.fromkeys(names))


def model_from_methods(model: Path | None, methods: list[str]) -> tuple[Path | None, list[str]]:
    """``compare -m model.keras`` meant the model until this release: keep it working, with a line."""
    files = [m for m in methods if looks_like_model(m)]
    if files and model is None:
        deprecated(f"-m {files[0]} for the model", f"--model {files[0]} (-m now names a method)")
        return Path(files[0]), [m for m in methods if m != files[0]]
    return model, methods
