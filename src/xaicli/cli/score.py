"""``xaicli score``: metrics for the maps an ``xaicli explain`` run wrote."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from xaicli.cli import options as opt


def parse_value(text: str) -> Any:
    """``3`` -> 3, ``0.5`` -> 0.5, ``true`` -> True, anything else stays a string."""
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def parse_params(items: list[str] | None, option: str) -> dict[str, dict[str, Any]]:
    """``["rise.masks=500", "lime.num_samples=200"]`` -> ``{"rise": {"masks": 500}, ...}``."""
    from xaicli.errors import UsageError

    params: dict[str, dict[str, Any]] = {}
    for item in items or []:
        name, dot, rest = item.partition(".")
        key, equals, value = rest.partition("=")
        if not (dot and equals and name and key):
            raise UsageError(f"{option} {item!r}: write NAME.KEY=VALUE, e.g. {option} rise.masks=500")
        params.setdefault(name.strip(), {})[key.strip()] = parse_value(value)
    return params


def metric_params(steps: int | None, tolerance: int | None, extra: list[str] | None) -> dict[str, dict[str, Any]]:
    params = parse_params(extra, "--metric-param")
    if steps is not None:
        for name in ("deletion", "insertion"):
            params.setdefault(name, {}).setdefault("steps", steps)
    if tolerance is not None:
        params.setdefault("pointing-hit", {}).setdefault("tolerance", tolerance)
    return params


def render_summary(console: Any, title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """The per-method means as a rich table (the age study's shape), with n where it differs."""
    from xaicli.cli.render import table

    means = [c for c in columns if c not in ("Method", "Images", "Normalization", "Group", "Accuracy", "MAE", "Dice")
             and not c.endswith(("_std", "_n"))]
    shown = [c for c in means if any(not _nan(r.get(c)) for r in rows)]
    body = [[r["Method"], *(_cell(r.get(c)) for c in shown), r.get("Images", "")] for r in rows]
    headers = ["Method", *shown, "Images"]
    result = table(title, headers, body)
    widths = [max(len(h), 7) for h in headers]
    widths[0] = max([len(h) for h in headers[:1]] + [len(str(r["Method"])) for r in rows])
    for column, width in zip(result.columns, widths, strict=True):
        column.no_wrap = True
        column.min_width = width
    # The table is read as a whole: never squeeze its headers to fit a narrow (or piped) console.
    console.print(result, width=max(console.width, sum(w + 3 for w in widths) + 1), crop=False)


def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell(value: Any) -> Any:
    if _nan(value):
        return "-"
    return float(value) if isinstance(value, (int, float)) else value


def report_problems(console: Any, no_region: list[tuple[str, str]]) -> None:
    """Images without a region, grouped by reason (e.g. the normal images' empty lesion masks)."""
    if not no_region:
        return
    console.print(f"[yellow]{len(no_region)} image(s) without a region (their region metrics are NaN):[/yellow]")
    groups: dict[str, list[str]] = {}
    for file, reason in no_region:
        groups.setdefault(reason, []).append(file)
    for reason, files in groups.items():
        if len(files) <= 3:
            for file in files:
                console.print(f"[yellow]  - {file}: {reason}[/yellow]")
        else:
            console.print(f"[yellow]  - {reason}: {len(files)} images ({', '.join(files[:3])}, ...; "
                          "see the region column of scores.csv)[/yellow]")


def score(
    ctx: typer.Context,
    run: Annotated[Path, typer.Argument(metavar="RUN", help="An `xaicli explain` output folder (or its maps.csv).")],
    model: opt.OptionalModel = None,
    roi: Annotated[list[str] | None, typer.Option("--roi", metavar="[NAME=]SPEC", help="Region of interest: a mask folder, masks:DIR, face-masks:DIR, face[:box|ellipse], box:X0,Y0,X1,Y1 or ellipse:CX,CY,RX,RY; repeat as NAME=SPEC for several.")] = None,
    roi_label: Annotated[str | None, typer.Option(metavar="NAME", help="Name of the region in column names (default: Face for faces, else Roi).")] = None,
    metrics: Annotated[str | None, typer.Option("--metrics", metavar="METRIC[,METRIC]", help="Metric plugins (default: the region metrics and entropy; deletion and insertion with --model). See `xaicli plugins metrics`.")] = None,
    normalization: Annotated[list[str] | None, typer.Option(metavar="[METHOD=]MODE", help="Map mass: positive (positive part), abs (magnitude) or minmax (minus the minimum); for all methods, or METHOD=MODE (repeatable). Default: each map's own display, as maps.csv records it.")] = None,
    fail_if: Annotated[list[str] | None, typer.Option("--fail-if", metavar="GATE", help="Gate (repeatable): METHOD.COLUMN<VALUE (or <=, >, >=, ==, !=), e.g. 'gradcam.PointingHit<0.8'; a failed gate exits with code 8.")] = None,
    deletion_steps: Annotated[int | None, typer.Option(metavar="N", help="Deletion/insertion: steps of the curves (default 50).")] = None,
    tolerance: Annotated[int | None, typer.Option(metavar="PX", help="Pointing-hit tolerance in pixels (default: half the map's native cell).")] = None,
    metric_param: Annotated[list[str] | None, typer.Option("--metric-param", metavar="METRIC.KEY=VALUE", help="Metric parameter (repeatable), e.g. deletion.baseline=blur.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "--out", "-o", metavar="DIR", help="Folder for scores.csv and summary.csv (default: the run folder).")] = None,
    batch_size: opt.BatchSize = 16,
    allow_unsafe: opt.AllowUnsafe = False,
    as_json: opt.Json = False,
    quiet: opt.Quiet = False,
    overwrite: opt.Overwrite = False,
    report: opt.Report = False,
) -> None:
    """Score the maps of an `xaicli explain` run: writes scores.csv (image x method) and summary.csv."""
    from xaicli.cli.compare import normalizations
    from xaicli.cli.progress import Progress
    from xaicli.cli.render import err_console, out_console
    from xaicli.cli.verdicts import raise_gates
    from xaicli.errors import EXIT_INPUT, PartialFailure
    from xaicli.pipeline.score import score_run
    from xaicli.rois import parse_regions

    regions = parse_regions(roi, roi_label)
    loaded = None
    if model is not None:
        from xaicli.models.io import load_model

        loaded = load_model(model, allow_unsafe=allow_unsafe)
    console = err_console() if as_json else out_console()
    with Progress(err_console(), "score", unit="maps", quiet=quiet) as update:
        result = score_run(run, output, metrics=metrics, roi=regions, normalization=normalizations(normalization),
                           loaded=loaded, fail_if=fail_if,
                           params=metric_params(deletion_steps, tolerance, metric_param), batch_size=batch_size,
                           overwrite=overwrite, progress=update)
    if as_json:
        payload = {"maps_scored": result.rows, "region": result.region, "normalization": result.normalization,
                   "gates": result.gate_failures,
                   "summary": result.summary, "consistency": result.consistency, "outputs": result.outputs,
                   "no_region": [{"file": f, "reason": r} for f, r in result.no_region],
                   "failures": [{"item": f, "reason": r} for f, r in result.failures],
                   "warnings": result.warnings}
        from xaicli.io import to_json

        sys.stdout.write(to_json(payload) + "\n")
    else:
        render_summary(console, f"Scores ({result.rows} maps, normalization: {result.normalization}"
                       + (f", region: {result.region})" if result.region else ")"), result.summary, result.summary_columns)
        report_problems(console, result.no_region)
        for key, path in result.outputs.items():
            console.print(f"  {key}: {path}")
    from xaicli.cli.report import finish

    finish("score", Path(result.outputs["scores"]).parent, ctx.params, report=report, overwrite=overwrite,
           result=result, model=model)
    for warning in result.warnings:
        err_console().print(f"[yellow]warning: {warning}[/yellow]")
    raise_gates(result.gate_failures)
    if result.failures:
        error = PartialFailure(f"{len(result.failures)} map(s) or region(s) could not be scored "
                               f"({result.rows} map(s) scored)", result.failures)
        if not result.rows:
            error.exit_code = EXIT_INPUT
        raise error
