"""``score``: metrics for the maps an ``explain`` run wrote, read back from its ``maps.csv``.

The index (columns ``image, method, layer, target, target_index, prediction, predicted, confidence,
map, ...``; ``map`` relative to the CSV's folder; NPY, or NPZ holding ``map``) becomes one record
per image (an image's maps are listed together) carrying its maps; the records are scored as
``compare`` scores them and go to the same sink: ``scores.csv`` (image x method) and
``summary.csv`` (the means per method), ``consistency.csv`` with a dataset metric. With the model,
the deletion/insertion curves re-create each image's target from its ``target_index`` field.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.api import RegionSource, Target
from xaicli.errors import InputError, XaicliError
from xaicli.io import Source
from xaicli.pipeline.curves import CurveSink
from xaicli.pipeline.record import MethodMap, Record, method_key
from xaicli.pipeline.scoring import (
    SECONDS,
    Region,
    Scorer,
    default_metrics,
    describe_regions,
    model_function,
    parse_list,
)
from xaicli.pipeline.sinks import ScoreSink
from xaicli.pipeline.verdicts import Gate, run_gates
from xaicli.predictions import Prediction


@dataclass
class ScoreResult:
    rows: int
    columns: list[str]
    summary: list[dict[str, Any]]
    summary_columns: list[str]
    outputs: dict[str, str]
    failures: list[tuple[str, str]]
    no_region: list[tuple[str, str]]
    consistency: list[dict[str, Any]] = field(default_factory=list)
    normalization: dict[str, str] = field(default_factory=dict)
    region: str | None = None
    warnings: list[str] = field(default_factory=list)
    gate_failures: list[str] = field(default_factory=list)


def find_maps_csv(run: str | os.PathLike[str]) -> Path:
    path = Path(run)
    if path.is_dir():
        path = path / "maps.csv"
    if not path.is_file():
        raise InputError(f"{path}: no such maps index (run `xaicli explain` first, or name its maps.csv)")
    return path


def read_maps_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read the maps index ({exc})") from None
    if not rows:
        raise InputError(f"{path}: the maps index has no rows")
    missing = [c for c in ("image", "method", "map") if c not in rows[0]]
    if missing:
        raise InputError(f"{path}: the maps index lacks the column(s) {', '.join(missing)}")
    return rows


def _resolve(value: str, base: Path) -> Path:
    path = Path(value)
    if path.is_absolute() or path.exists():
        return path
    return base / path


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _prediction(row: dict[str, str]) -> Prediction:
    """The prediction fields ``explain`` wrote (no label is parsed back)."""
    predicted = (row.get("predicted") or "").strip()
    confidence = _number(row.get("confidence"))
    numeric = math.isfinite(_number(predicted))
    task = "classification" if math.isfinite(confidence) or (predicted and not numeric) else "regression" if numeric else "?"
    return Prediction(task, np.zeros(0, np.float32), label=predicted, confidence=confidence,
                      value=_number(predicted), shown=row.get("prediction", ""))


def _groups(rows: list[dict[str, str]]) -> Iterator[list[dict[str, str]]]:
    group: list[dict[str, str]] = []
    for row in rows:
        if group and row["image"] != group[0]["image"]:
            yield group
            group = []
        group.append(row)
    if group:
        yield group


def score_run(
    run: str | os.PathLike[str],
    output_dir: str | os.PathLike[str] | None = None,
    *,
    metrics: Sequence[str] | str | None = None,
    roi: RegionSource | Sequence[Region] | None = None,
    normalization: str | dict[str, str] | None = None,
    loaded: Any = None,
    fail_if: Sequence[str] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    batch_size: int = 16,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ScoreResult:
    """Score every map of an ``explain`` run; see the module docstring for what is written."""
    from xaicli.io import check_outputs, load_map

    index = find_maps_csv(run)
    base = index.parent
    out = Path(output_dir) if output_dir is not None else base
    rows = read_maps_csv(index)
    names = parse_list(metrics) or default_metrics(region=bool(roi), model=loaded is not None)
    available = ["image"] + (["model_fn"] if loaded is not None else [])
    scorer = Scorer(names, roi=roi, normalization=normalization, params=params, available=available)
    gates = [Gate.parse(text) for text in fail_if or ()]
    methods = list(dict.fromkeys(row["method"] for row in rows))
    for gate in gates:
        gate.check(methods, [*scorer.columns, SECONDS, "Reliability", "Images"])
    check_outputs([out / "scores.csv", out / "summary.csv", out / "warnings.csv"]
                  + ([out / "consistency.csv"] if scorer.set_metrics else [])
                  + ([out / "curves.csv"] if scorer.has_curves and loaded is not None else []), overwrite)
    runner = None
    info = getattr(loaded, "info", None)
    if "model_fn" in scorer.needs:
        from xaicli.runner import ModelRunner

        runner = ModelRunner(loaded.model, batch_size=batch_size, cam_layer=info.cam_layer,
                             input_shape=tuple(info.input_shape))
    truth_of = _truths(rows, base, info)
    sink = ScoreSink(out, scorer, None, order=[], overwrite=overwrite)
    curves = CurveSink(out / "curves.csv", overwrite=overwrite)
    failures: list[tuple[str, str]] = []
    no_region: list[tuple[str, str]] = []
    done = 0
    try:
        for number, group in enumerate(_groups(rows)):
            image_path = _resolve(group[0]["image"], base)
            record = Record(number, Source(image_path, None, image_path.stem), truth=truth_of(group[0]) or None)
            record.prediction = _prediction(group[0])
            index = _number(group[0].get("target_index"))
            record.target = Target(np.zeros((1, 1), np.float32), [group[0].get("target", "")],
                                   [int(index) if math.isfinite(index) else None])
            counts: dict[str, int] = {}
            for row in group:
                counts[row["method"]] = counts.get(row["method"], 0) + 1
            for row in group:
                key = method_key(row["method"], row.get("layer"), counts[row["method"]])
                try:
                    saliency = load_map(_resolve(row["map"], base))
                except XaicliError as exc:
                    failures.append((f"{row['image']} [{key}]", str(exc)))
                    continue
                extras = {k: _number(row.get(k)) for k in ("reliability", "samples", "completeness_gap") if row.get(k)}
                record.maps.append(MethodMap(row["method"], saliency, _number(row.get("seconds")), row.get("layer") or None,
                                             extras, row.get("display") or "positive", key=key,
                                             cell=_number(row.get("cell")) if row.get("cell") else 0.0))
            done += len(group)
            if record.maps:
                try:
                    _score(record, scorer, runner, info, no_region, failures)
                except XaicliError as exc:
                    failures.extend((f"{row['image']} [{m.key}]", str(exc)) for m in record.maps)
                    record.maps = []
            sink.add(record)
            curves.add(record)
            if progress is not None:
                progress(done, len(rows))
        outputs = {**sink.close(), **curves.close()}
    except BaseException:
        sink.discard()
        raise
    summary_rows, summary_columns = sink.rows()
    warnings = []
    if scorer.set_metrics and not any(truth_of(row) for row in rows):
        warnings.append("consistency needs each image's true class, and this run has none (no truth column in "
                        "maps.csv, and the images are not in folders named after the predicted classes): "
                        "its values are NaN")
    warnings += [w["message"] for w in sink.warnings()]
    return ScoreResult(sink.stream.count, sink.columns, summary_rows, summary_columns, outputs, failures, no_region,
                       sink.consistency_rows(), sink.modes, describe_regions(scorer.regions), warnings,
                       run_gates(gates, summary_rows))


def _score(record: Record, scorer: Scorer, runner: Any, info: Any,
           no_region: list[tuple[str, str]], failures: list[tuple[str, str]]) -> None:
    """The record's image (for its region and the faithfulness curves), then its maps scored."""
    from xaicli.io import read_image

    if not ({"region", "image", "model_fn"} & scorer.needs) and scorer.roi is None:
        scorer.score_record(record)
        return
    record.image = read_image(record.file)
    regions, record.region_status, failure = scorer.region(record)
    if failure is not None:
        failures.append((record.label, failure))
    elif scorer.regions and record.region_status != "ok":
        no_region.append((record.label, record.region_status))
    model_fn = None
    if runner is not None:
        from xaicli.preprocessing import PREPROCESSORS, display_image
        from xaicli.targets import resolve_target

        record.view = display_image(record.image, info)
        outputs = runner.predict(PREPROCESSORS[info.preprocessing](record.view[None]))
        index, spec = record.target_index, None
        if index is not None:
            spec = str(index) if info.task == "classification" else f"output:{index}" if info.task == "regression" else None
        model_fn = model_function(runner, info, resolve_target(outputs, info, spec))
    scorer.score_record(record, model_fn=model_fn, regions=regions)


def _truths(rows: list[dict[str, str]], base: Path, info: Any) -> Callable[[dict[str, str]], str]:
    """A row's true class: its ``truth`` column, else the image's folder when the folder is named
    after a class (folder-per-class layout: the model's classes, or the classes predicted in the run)."""
    classes = set(getattr(info, "class_names", None) or [])
    if not classes:
        classes = {p.label for p in map(_prediction, rows) if p.task == "classification" and p.label}

    def truth(row: dict[str, str]) -> str:
        given = (row.get("truth") or "").strip()
        if given:
            return given
        folder = _resolve(row["image"], base).parent.name
        return folder if folder in classes else ""

    return truth
