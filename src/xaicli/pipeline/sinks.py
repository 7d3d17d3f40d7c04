"""Sinks: what a run writes from each record as it passes -- maps and overlays with ``maps.csv``,
the comparison grid, the predictions table, per-image scores with the per-method summary.

A sink takes records one at a time (:meth:`add`), in input order, and writes its files when the run
ends (:meth:`close`, which returns what it wrote); a run that fails calls :meth:`discard`, which
leaves nothing half-written behind. Rows are streamed to temporary files, and summaries are running
sums, so memory does not grow with the number of images.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from xaicli.io import CsvStream
from xaicli.pipeline.record import Record
from xaicli.pipeline.scoring import RANDOM_METHOD, SECONDS
from xaicli.pipeline.summary import Summary

MAPS_COLUMNS = ["image", "method", "layer", "target", "target_index", "prediction", "predicted", "confidence",
                "map", "overlay", "seconds", "completeness_gap", "reliability", "samples", "display", "cell"]


class Sink(Protocol):
    def add(self, record: Record) -> None: ...

    def close(self) -> dict[str, Any]: ...

    def discard(self) -> None: ...


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_+." else "_" for ch in text)


class MapSink:
    """Each map of each record as a raw map (``OUT/<name>/<method>[_<layer>].npy|npz``, float32 at
    the image's resolution) and an overlay PNG in the map's own display, and ``OUT/maps.csv`` with
    one row per map (paths relative to ``OUT``; prediction and target as fields)."""

    def __init__(self, out: Path, *, fmt: str = "npy", colormap: str = "jet", alpha: float = 0.45,
                 overwrite: bool = False, keep_rows: int = 0) -> None:
        from xaicli.errors import UsageError

        if fmt not in ("npy", "npz"):
            raise UsageError(f"map format must be npy or npz, not {fmt!r}", parameter="map_format")
        self.out, self.fmt, self.colormap, self.alpha, self.overwrite = Path(out), fmt, colormap, alpha, overwrite
        self.index = CsvStream(self.out / "maps.csv", MAPS_COLUMNS, overwrite=overwrite)
        self.keep_rows = keep_rows
        self.rows: list[dict[str, Any]] = []  # the first keep_rows rows, for a terminal table
        self.pending: list[str] = []  # files of the map being written, not yet in the index

    def add(self, record: Record) -> None:
        from xaicli.io import overlay, resize, write_npy, write_npz, write_png

        if not record.ok:
            return
        fields = record.prediction.fields()
        for m in record.maps:
            stem = _safe(m.method) + (f"_{_safe(m.layer)}" if m.layer else "")
            base = Path(record.name) / stem
            map_path, png_path = base.with_name(f"{base.name}.{self.fmt}"), base.with_name(f"{base.name}.png")
            self.pending = [map_path.as_posix(), png_path.as_posix()]
            if self.fmt == "npy":
                write_npy(self.out / map_path, m.map, overwrite=self.overwrite)
            else:
                write_npz(self.out / map_path, overwrite=self.overwrite, map=m.map)
            image = record.image if record.image.shape[:2] == m.map.shape else resize(record.image, m.map.shape)
            picture = overlay(image, m.map, colormap=self.colormap, alpha=self.alpha, mode=m.display)
            write_png(self.out / png_path, picture, overwrite=self.overwrite)
            row = {"image": record.label, "method": m.method, "layer": m.layer or "", "target": record.target_label,
                   "target_index": record.target_index, "prediction": record.prediction.text,
                   "predicted": fields.get("predicted"), "confidence": fields.get("confidence"),
                   "map": map_path.as_posix(), "overlay": png_path.as_posix(), "seconds": m.seconds,
                   "completeness_gap": m.extras.get("completeness_gap", ""),
                   "reliability": m.extras.get("reliability", ""), "samples": m.extras.get("samples", ""),
                   "display": m.display, "cell": m.cell or ""}
            self.index.write(row)
            self.pending = []
            if len(self.rows) < self.keep_rows:
                self.rows.append(row)

    def close(self) -> dict[str, Any]:
        if not self.index.count:  # nothing explained: no index that claims otherwise
            self.index.discard()
            return {}
        return {"maps": str(self.index.close())}

    def discard(self) -> None:
        """Remove every map and overlay written so far (listed in the unfinished index: memory does
        not grow with the run) and the index: an interrupted run leaves nothing to block its rerun."""
        from xaicli.io.write import remove_written

        names = [name for row in self.index.written_rows() for name in (row["map"], row["overlay"])]
        self.index.discard()
        remove_written(self.out, names + self.pending)


class GridSink:
    """The comparison grid (:class:`xaicli.io.grid.GridWriter`): per record the image with its
    prediction and truth, then one overlay per method."""

    def __init__(self, grid: Any, info: Any, keep: Any = None) -> None:
        self.grid, self.info, self.keep = grid, info, keep

    def add(self, record: Record) -> None:
        if not record.ok or (self.keep is not None and not self.keep(record)):
            return
        maps = {m.key: m.map for m in record.maps if m.key == m.method}
        caption = [Path(record.name).name, f"pred: {_predicted_text(record)}"]
        if record.prediction.task == "classification":  # on its own line: a long class name leaves no room
            caption.append(f"confidence {record.prediction.confidence:.2f}")
        truth = truth_text(record, self.info)
        if truth:
            caption.append(f"true: {truth}")
        self.grid.add(record.image, maps, caption, record.regions)

    def close(self) -> dict[str, Any]:
        key = "grid" if self.grid.stem == "grid" else self.grid.stem.replace("-", "_")
        return {key: [str(p) for p in self.grid.close()]}

    def discard(self) -> None:
        self.grid.discard()


def _predicted_text(record: Record) -> str:
    p = record.prediction
    if p.task == "classification":
        return p.label
    if p.task == "regression":
        return f"{p.value:.4g}"
    return p.text


def truth_text(record: Record, info: Any) -> str:
    """The record's known truth for people ('' when unknown); without model info, as given."""
    from xaicli.predictions import truth_label

    if info is None:
        return "" if record.truth is None else str(record.truth)
    return truth_label(record.truth, info)


# ------------------------------------------------------------------------------ predictions


def prediction_columns(info: Any, layout: str, has_truth: bool) -> list[str]:
    """``study``: the age study's table (``compare``); ``full``: with class probabilities (``predict``)."""
    task = info.task
    if layout == "study":
        return {"regression": ["file", "predicted", "true", "abs_error"],
                "classification": ["file", "predicted", "confidence", "true", "correct"]}.get(task, ["file", "predicted", "true"])
    if task == "classification":
        columns, extra = ["file", "prediction", "confidence"] + [f"p_{n}" for n in info.class_names], ["true", "correct"]
    elif task == "regression":
        columns, extra = ["file", "prediction"], ["true", "abs_error"]
    else:
        columns, extra = ["file", "mask", "foreground"], ["true_mask", "dice", "iou"]
    return columns + (extra if has_truth else [])


def prediction_row(record: Record, info: Any, layout: str) -> dict[str, Any]:
    """One row of the predictions table for a record (see :func:`prediction_columns`)."""
    p, truth = record.prediction, record.truth
    key = "predicted" if layout == "study" else "prediction"
    row: dict[str, Any] = {"file": record.label}
    if info.task == "classification":
        row.update({key: p.label, "confidence": p.confidence})
        if layout == "full":
            row.update({f"p_{n}": float(v) for n, v in zip(info.class_names, p.probabilities, strict=True)})
        if truth is not None:
            row.update(true=truth_text(record, info), correct=int(p.index == truth))
        elif layout == "study":
            row.update(true="", correct="")
    elif info.task == "regression":
        row[key] = p.value
        if truth is not None:
            row.update(true=float(truth), abs_error=abs(p.value - float(truth)))
        elif layout == "study":
            row.update(true="", abs_error="")
    else:
        row.update({key: p.text, "true": truth_text(record, info)} if layout == "study" else {})
    return row


class PredictionSink:
    """``predictions.csv``, one row per image, streamed; ``rows`` keeps the first ``keep_rows``."""

    def __init__(self, path: Path, info: Any, *, layout: str, has_truth: bool, overwrite: bool,
                 keep_rows: int = 0, extra: Any = None) -> None:
        self.info, self.layout = info, layout
        self.stream = CsvStream(path, prediction_columns(info, layout, has_truth), overwrite=overwrite)
        self.keep_rows, self.rows = keep_rows, []
        self.extra = extra  # a function adding columns computed elsewhere (segmentation masks)

    def add(self, record: Record) -> None:
        if not record.ok:
            return
        row = prediction_row(record, self.info, self.layout)
        if self.extra is not None:
            row.update(self.extra(record))
        self.stream.write(row)
        if len(self.rows) < self.keep_rows:
            self.rows.append(row)

    def close(self) -> dict[str, Any]:
        if not self.stream.count:
            self.stream.discard()
            return {}
        return {"predictions": str(self.stream.close())}

    def discard(self) -> None:
        self.stream.discard()


# ----------------------------------------------------------------------------------- scores


class ScoreSink:
    """``scores.csv`` (one row per image x map, the ``random`` reference included, with each map's
    reliability and flags), then ``summary.csv`` (the means per group and method, with the model's
    quality per group), ``warnings.csv`` and, with a dataset metric, ``consistency.csv``."""

    def __init__(self, out: Path, scorer: Any, info: Any, *, order: list[str], overwrite: bool,
                 grouping: Any = None, keep_rows: bool = False) -> None:
        from xaicli.pipeline.groups import QUALITY

        self.out, self.scorer, self.info, self.overwrite = Path(out), scorer, info, overwrite
        self.grouping = grouping
        self.columns = ["image", "method", "target", "prediction", "truth", "region", "normalization",
                        *scorer.columns, "reliability", "samples", "seconds", "flags"]
        self.stream = CsvStream(self.out / "scores.csv", self.columns, overwrite=overwrite)
        self.summary = Summary(quality_name=QUALITY.get(getattr(info, "task", ""), None) if info is not None else None)
        self.declared = list(order)
        self.modes: dict[str, str] = {}
        self.accumulators: dict[str, Any] = {}
        self.keep_rows = keep_rows
        self.kept: list[dict[str, Any]] = []
        self.flags: dict[str, dict[str, Any]] = {}  # per map key: images, constant, unreliable, reliability sum
        self.model = {"predicted": {}, "correct": 0, "judged": 0, "abs": 0.0, "truths": []}

    def add(self, record: Record) -> None:
        from xaicli.pipeline.groups import quality

        if not record.ok:
            return
        groups = self.grouping.of(record) if self.grouping is not None else ["all"]
        if self.info is not None:
            record.quality = quality(record, self.info)
            self.summary.add_quality(record.quality, groups)
        self._model(record)
        base = {"image": record.label, "target": record.target_label,
                "prediction": record.prediction.text if record.prediction else "",
                "truth": truth_text(record, self.info), "region": record.region_status}
        maps = {m.key: m for m in record.maps}
        for key, values in record.scores.items():
            m = maps.get(key)
            mode = self.scorer.mode(m.method, m.display) if m is not None else "positive"
            self.modes.setdefault(key, mode)
            spent = m.seconds if m is not None else math.nan
            reliability = m.extras.get("reliability", math.nan) if m is not None else math.nan
            samples = m.extras.get("samples", math.nan) if m is not None else math.nan
            flags = self._flags(key, m, reliability)
            self.summary.add(key, {**values, SECONDS: spent, "Reliability": reliability, "Samples": samples}, groups)
            row = {**base, "method": key, "normalization": mode, **values, "reliability": reliability,
                   "samples": samples, "seconds": spent, "flags": flags}
            self.stream.write(row)
            if self.keep_rows:  # the Python API returns them (a notebook's data frame)
                self.kept.append(row)
        predicted = record.prediction.label if record.prediction and record.prediction.task == "classification" else None
        for m in record.maps:
            for metric in self.scorer.set_metrics_for(self.modes.get(m.key, "positive")):
                acc = self.accumulators.setdefault(m.key, metric.accumulator())
                acc.add(m.map, truth_text(record, self.info) or None, predicted)

    def _flags(self, key: str, m: Any, reliability: float) -> str:
        from xaicli.pipeline.verdicts import RELIABILITY_WARNING

        counts = self.flags.setdefault(key, {"images": 0, "constant": 0, "unreliable": 0, "reliability": [0, 0.0]})
        counts["images"] += 1
        flags = []
        if m is not None and float(m.map.max()) == float(m.map.min()):
            counts["constant"] += 1
            flags.append("constant")
        if math.isfinite(reliability):
            counts["reliability"][0] += 1
            counts["reliability"][1] += reliability
            if reliability < RELIABILITY_WARNING:
                counts["unreliable"] += 1
                flags.append("unreliable")
        return ";".join(flags)

    def _model(self, record: Record) -> None:
        p, model = record.prediction, self.model
        if p is None:
            return
        if p.task == "classification":
            model["predicted"][p.label] = model["predicted"].get(p.label, 0) + 1
            if record.truth is not None and isinstance(record.truth, (int, np.integer)):
                model["judged"] += 1
                model["correct"] += int(p.index == record.truth)
        elif p.task == "regression" and record.truth is not None:
            model["abs"] += abs(p.value - float(record.truth))
            model["truths"].append(float(record.truth))

    def order(self) -> list[str]:
        """The declared methods, each followed by its per-layer rows, the random reference last."""
        seen = list(self.summary.order)
        ordered = []
        for key in self.declared:
            if key == RANDOM_METHOD:
                continue
            ordered += [key] + [k for k in seen if k.startswith(f"{key}@")]
        ordered += [k for k in seen if k not in ordered and k != RANDOM_METHOD]
        return ordered + ([RANDOM_METHOD] if RANDOM_METHOD in seen or RANDOM_METHOD in self.declared else [])

    def rows(self) -> tuple[list[dict[str, Any]], list[str]]:
        self.summary.order = [k for k in self.order() if k in self.summary.order] or self.order()
        modes = {**{k: "positive" for k in self.summary.order}, **self.modes}
        return self.summary.rows([*self.scorer.columns, SECONDS, "Reliability", "Samples"], modes)

    def consistency_rows(self) -> list[dict[str, Any]]:
        return [r for key, acc in self.accumulators.items()
                for r in acc.result().rows(key, self.modes.get(key, "positive"))]

    def warnings(self) -> list[dict[str, Any]]:
        from xaicli.pipeline import verdicts

        model = self.model
        truths = np.asarray(model["truths"], np.float64)
        constant = float(np.abs(truths - truths.mean()).sum()) if truths.size else 0.0
        out = verdicts.model_warnings(self.info, model["predicted"], model["correct"], model["judged"],
                                      model["abs"], constant, len(truths)) if self.info is not None else []
        for key, counts in self.flags.items():
            if key == RANDOM_METHOD:
                continue
            n, total = counts["reliability"]
            out += verdicts.map_warnings(key, counts["images"], counts["constant"], counts["unreliable"],
                                         total / n if n else math.nan,
                                         classification=getattr(self.info, "task", "") == "classification")
        out += verdicts.faithfulness_warnings(self.rows()[0])
        out += verdicts.consistency_warning(out, bool(self.scorer.set_metrics))
        return out

    def close(self) -> dict[str, Any]:
        from xaicli.io import write_csv

        outputs = {"scores": str(self.stream.close())}
        rows, columns = self.rows()
        outputs["summary"] = str(write_csv(self.out / "summary.csv", rows, columns=columns, overwrite=self.overwrite))
        outputs["warnings"] = str(write_csv(self.out / "warnings.csv", self.warnings(),
                                            columns=["kind", "method", "images", "message"], overwrite=self.overwrite))
        if self.scorer.set_metrics:
            outputs["consistency"] = str(write_csv(self.out / "consistency.csv", self.consistency_rows(),
                                                   columns=["method", "class", "consistency", "n", "normalization"],
                                                   overwrite=self.overwrite))
        return outputs

    def discard(self) -> None:
        self.stream.discard()


def close_all(sinks: list[Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for sink in sinks:
        outputs.update(sink.close())
    return outputs


def discard_all(sinks: list[Any]) -> None:
    for sink in sinks:
        sink.discard()


