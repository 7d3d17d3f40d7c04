"""``xaicli train``: fit a model plugin on a labelled folder; every option also from ``--config``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from xaicli.errors import InputError, UsageError


def apply_config(ctx: typer.Context, config: Path | None, values: dict[str, Any]) -> dict[str, Any]:
    """Options left at their default take the YAML file's value (keys as the option names,
    with dashes or underscores); options given on the command line win. Every value is converted
    with its option's type; a value of the wrong type is a usage error naming the file and key."""
    if config is None:
        return values
    import yaml

    try:
        loaded = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise InputError(f"{config}: no such config file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{config}: not a readable YAML file ({' '.join(str(exc).split())[:160]})") from None
    if not isinstance(loaded, dict):
        raise InputError(f"{config}: the YAML file must hold a mapping of option: value")
    import inspect

    types = _option_types()
    defaults = {name: getattr(param.default, "default", param.default)
                for name, param in inspect.signature(train).parameters.items()}
    settable = [k for k in values if k not in ("config", "data")]
    result = dict(values)
    for key, value in loaded.items():
        name = str(key).replace("-", "_")
        if name == "data":
            raise UsageError(f"{config}: 'data' is the command's argument, not an option; give the "
                             "training folder on the command line")
        if name not in settable:
            raise UsageError(f"{config}: unknown option {key!r}; known: {', '.join(k.replace('_', '-') for k in settable)}")
        converted = _convert(config, str(key), types.get(name), defaults.get(name), value)
        source = ctx.get_parameter_source(name)
        if source is None or getattr(source, "name", "") in ("DEFAULT", "DEFAULT_MAP"):
            result[name] = converted
    return result


def _option_types() -> dict[str, Any]:
    import typing

    return typing.get_type_hints(train)


def _convert(config: Path, key: str, kind: Any, default: Any, value: Any) -> Any:
    """A YAML value as its option's type (int, float, bool, text, path; ``param`` a mapping or list)."""

    def wrong(what: str) -> UsageError:
        return UsageError(f"{config}: option {key!r} must be {what}, not {value!r}")

    if value is None:
        if default is not None:
            raise wrong("a value")
        return None
    if kind is None:
        return value
    if getattr(kind, "__origin__", None) is list:  # --param: KEY=VALUE items, or a mapping in YAML
        if isinstance(value, dict):
            if any(isinstance(v, (dict, list)) for v in value.values()):
                raise wrong("a mapping of KEY: VALUE (e.g. {depth: 4})")
            return {str(k): v for k, v in value.items()}
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) and "=" in i for i in items):
            raise wrong("a mapping of KEY: VALUE (e.g. {depth: 4}) or a list of KEY=VALUE")
        return items
    if isinstance(value, list) and key.replace("-", "_") in ("augment", "input_size"):
        if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
            raise wrong("a list of names" if key == "augment" else "N or [H, W]")
        return ("," if key == "augment" else "x").join(str(v) for v in value)
    if isinstance(value, (dict, list)):
        raise wrong("one value")
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "on", "1"):
            return True
        if text in ("false", "no", "off", "0"):
            return False
        raise wrong("true or false")
    if kind is int:
        if isinstance(value, bool):
            raise wrong("an integer")
        if isinstance(value, float):
            if not value.is_integer():
                raise wrong("an integer")
            return int(value)
        try:
            return int(str(value).strip())
        except ValueError:
            raise wrong("an integer") from None
    if kind is float:
        if isinstance(value, bool):
            raise wrong("a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise wrong("a number") from None
        if number != number:  # NaN
            raise wrong("a number")
        return number
    if isinstance(value, bool):
        raise wrong("text" if kind is str else "a path")
    return Path(str(value)) if kind is Path else str(value)


def _params(items: list[str] | dict | None) -> dict[str, str]:
    if isinstance(items, dict):
        return {str(k): v for k, v in items.items()}
    params = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param takes KEY=VALUE (e.g. depth=4), not {item!r}")
        params[key.strip()] = value.strip()
    return params


def train(
    ctx: typer.Context,
    data: Path = typer.Argument(..., help="Training folder: class sub-folders, UTKFace-named images, or DRIVE layout."),
    output: Path = typer.Option(Path("xaicli-model"), "--output", "--out", "-o", metavar="DIR", help="Output folder: model.keras, history.csv, training-curve.png, validation.json."),
    task: str = typer.Option(None, metavar="TASK", help="classification, regression or segmentation (default: from the folder layout)."),
    model: str = typer.Option(None, "--model", metavar="PLUGIN", help="Model plugin to train (see `xaicli plugins models`); default simple-cnn, unet for segmentation."),
    old_model: str = typer.Option(None, "-m", hidden=True, help="Deprecated spelling of --model."),
    param: list[str] = typer.Option(None, "--param", "-p", help="Model parameter KEY=VALUE, repeatable (e.g. depth=4, width=0.125)."),
    input_size: str = typer.Option(None, help="Model input size N or HxW (default: the images' size)."),
    color: str = typer.Option(None, help="grayscale or rgb (default: from the images)."),
    epochs: int = typer.Option(10, help="Training epochs."),
    batch_size: int = typer.Option(32, help="Batch size."),
    optimizer: str = typer.Option("nadam", help="nadam (as in the chest X-ray study), adam, sgd or rmsprop."),
    learning_rate: float = typer.Option(1e-3, help="Learning rate."),
    validation_split: float = typer.Option(0.2, help="Share held out for validation (stratified by class)."),
    augment: str = typer.Option(None, help="Comma list of flip, vflip, shift, rotate, zoom."),
    seed: int = typer.Option(0, help="Random seed (split, shuffling, initial weights)."),
    labels: Path = typer.Option(None, help="Regression: CSV with a file column and a value column."),
    label_column: str = typer.Option(None, help="Regression: the value column of --labels (default: the other column)."),
    pattern: str = typer.Option(None, help="Regression: filename pattern, e.g. '{age}_*'; 'utkface' is built in."),
    masks: Path = typer.Option(None, help="Segmentation: mask folder (masks matched by file stem or leading number)."),
    normal_class: str = typer.Option(None, help="Classification: the 'no finding' class, for the missed-pathology count."),
    cam_consistency: float = typer.Option(None, "--cam-consistency", help="Classification: add the Grad-CAM consistency regulariser with this final lambda (docs/cam-consistency.md)."),
    cam_layer: str = typer.Option(None, "--cam-layer", help="Layer of the regulariser's Grad-CAM (default: the model's CAM layer)."),
    cam_schedule: str = typer.Option("linear", "--cam-schedule", help="lambda curriculum after the warm-up: linear (from 0 in equal steps to lambda at the last epoch) or step (lambda at once)."),
    cam_warmup: int = typer.Option(0, "--cam-warmup", help="Epochs trained with lambda = 0 before the curriculum starts."),
    cam_decay: float = typer.Option(0.9, "--cam-decay", help="Decay of the moving class-mean maps, in [0, 1)."),
    restore_best: bool = typer.Option(True, "--restore-best/--last-epoch", help="Keep the weights of the epoch with the lowest validation loss (default), or those of the last epoch."),
    config: Path = typer.Option(None, "--config", metavar="YAML", help="YAML file with any of these options (command-line values win)."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary to stdout (with usable: false and the reasons when the model is not usable)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-epoch lines or progress bar."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    report: bool = typer.Option(False, "--report", help="Also write OUTPUT/report.html: one page to read the run (see `xaicli report`)."),
) -> None:
    """Train a model on DATA and write a self-describing model file, its history and curves."""
    from xaicli.cli.progress import Progress
    from xaicli.cli.render import err_console, out_console
    from xaicli.training import train as engine

    if old_model is not None:
        from xaicli.cli.options import deprecated

        deprecated(f"-m {old_model}", f"--model {old_model} (-m names a method in the other commands)")
        model = model or old_model
    values = apply_config(ctx, config, dict(
        data=data, output=output, task=task, model=model, param=param, input_size=input_size, color=color,
        epochs=epochs, batch_size=batch_size, optimizer=optimizer, learning_rate=learning_rate,
        validation_split=validation_split, augment=augment, seed=seed, labels=labels, label_column=label_column,
        pattern=pattern, masks=masks, normal_class=normal_class, cam_consistency=cam_consistency,
        cam_layer=cam_layer, cam_schedule=cam_schedule, cam_warmup=cam_warmup, cam_decay=cam_decay,
        restore_best=restore_best, config=config, overwrite=overwrite, report=report,
    ))
    console = err_console()
    epochs_total = int(values["epochs"])
    with Progress(console, "train", unit="epochs", quiet=quiet) as progress:

        def on_epoch(epoch: int, total: int, logs: dict[str, float]) -> None:
            if not quiet:
                text = "  ".join(f"{k} {v:.4g}" for k, v in logs.items() if k != "learning_rate")
                console.print(f"epoch {epoch}/{total}  {text}", highlight=False)
            progress(epoch, total)

        result = engine.train(
            values["data"], values["output"], task=values["task"], model=values["model"],
            params=_params(values["param"]), input_size=values["input_size"], color=values["color"],
            epochs=epochs_total, batch_size=int(values["batch_size"]), optimizer=str(values["optimizer"]),
            learning_rate=float(values["learning_rate"]), validation_split=float(values["validation_split"]),
            augment=values["augment"], seed=int(values["seed"]), labels=values["labels"],
            label_column=values["label_column"], pattern=values["pattern"], masks=values["masks"],
            normal_class=values["normal_class"],
            cam_consistency=None if values["cam_consistency"] is None else float(values["cam_consistency"]),
            cam_layer=values["cam_layer"], cam_schedule=str(values["cam_schedule"]),
            cam_warmup=int(values["cam_warmup"]), cam_decay=float(values["cam_decay"]),
            restore_best=bool(values["restore_best"]), overwrite=bool(values["overwrite"]),
            on_epoch=on_epoch, on_status=None if quiet else (lambda m: console.print(m, highlight=False)),
        )
    for warning in result.warnings:
        console.print(f"[yellow]warning: {warning}: the model is not usable as it is (more epochs, "
                      "more data, another --learning-rate or --batch-size)[/yellow]")
    if as_json:
        from xaicli.io import to_json

        doc = {"model": str(result.model_path), "task": result.info.task, "architecture": result.info.architecture,
               "input_shape": list(result.info.input_shape), "cam_layer": result.info.cam_layer,
               "n_train": result.n_train, "n_val": result.n_val, "best_epoch": result.best_epoch,
               "usable": result.usable, "warnings": result.warnings, "validation": result.validation,
               "history": result.history, "outputs": result.outputs,
               "failures": [{"file": f, "reason": r} for f, r in result.failures]}
        typer.echo(to_json(doc))
    else:
        out = out_console()
        from xaicli.cli.predict import render_evaluation

        out.print(f"model: {result.model_path}  ({result.info.architecture}, {result.info.task}, "
                  f"input {'x'.join(map(str, result.info.input_shape))}, CAM layer {result.info.cam_layer}"
                  + (f", weights of epoch {result.best_epoch}" if result.best_epoch else "") + ")")
        out.print(f"trained on {result.n_train} images, validated on {result.n_val}")
        if result.validation is not None:
            render_evaluation(out, result.info.task, result.validation, title="Validation report")
        else:
            out.print("no validation split (--validation-split 0): no validation report")
        for key, path in result.outputs.items():
            out.print(f"  {key}: {path}")
    from xaicli.cli.report import finish

    finish("train", values["output"], values, report=bool(values["report"]), overwrite=bool(values["overwrite"]),
           result=result, model=result.model_path)
    if result.failures:
        from xaicli.errors import PartialFailure

        raise PartialFailure(f"{len(result.failures)} image(s) could not be read and were left out of training", result.failures)
