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

from xaicli.io import CsvStream
from xaicli.pipeline.record import Record
from xaicli.pipeline.scoring import RANDOM_METHOD, SECONDS, Summary

MAPS_COLUMNS = ["image", "method", "layer", "target", "target_index", "prediction", "predicted", "confidence",
                "map", "overlay", "seconds", "completeness_gap"]


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
        from xaicli.io import overlay, write_npy, write_npz, write_png

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
            picture = overlay(record.image, m.map, colormap=self.colormap, alpha=self.alpha, mode=m.display)
            write_png(self.out / png_path, picture, overwrite=self.overwrite)
            row = {"image": record.label, "method": m.method, "layer": m.layer or "", "target": record.target_label,
                   "target_index": record.target_index, "prediction": record.prediction.text,
                   "predicted": fields.get("predicted"), "confidence": fields.get("confidence"),
                   "map": map_path.as_posix(), "overlay": png_path.as_posix(), "seconds": m.seconds,
                   "completeness_gap": m.extras.get("completeness_gap", "")}
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

    def __init__(self, grid: Any, info: Any) -> None:
        self.grid, self.info = grid, info

    def add(self, record: Record) -> None:
        if not record.ok:
            return
        maps = {m.key: m.map for m in record.maps if m.key == m.method}
        caption = [Path(record.name).name, f"pred: {_predicted_text(record)}"]
        truth = truth_text(record, self.info)
        if truth:
            caption.append(f"true: {truth}")
        self.grid.add(record.image, maps, caption)

    def close(self) -> dict[str, Any]:
        return {"grid": [str(p) for p in self.grid.close()]}

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
    """``scores.csv`` (one row per image x map, the ``random`` reference included), then
    ``summary.csv`` (the means per method in the age study's shape) and, with a dataset metric,
    ``consistency.csv`` (per class and overall)."""

    def __init__(self, out: Path, scorer: Any, info: Any, *, order: list[str], overwrite: bool,
                 keep_rows: bool = False) -> None:
        self.out, self.scorer, self.info, self.overwrite = Path(out), scorer, info, overwrite
        self.keep_rows = keep_rows
        self.kept: list[dict[str, Any]] = []
        self.columns = ["image", "method", "target", "prediction", "truth", "region", "normalization",
                        *scorer.columns, "seconds"]
        self.stream = CsvStream(self.out / "scores.csv", self.columns, overwrite=overwrite)
        self.summary = Summary()
        for key in order:  # summary rows in the order asked, the random reference last
            self.summary.order.append(key)
            self.summary.stats[key] = {}
            self.summary.images[key] = 0
        self.accumulators: dict[str, Any] = {}

    def add(self, record: Record) -> None:
        if not record.ok:
            return
        base = {"image": record.label, "target": record.target_label,
                "prediction": record.prediction.text if record.prediction else "",
                "truth": truth_text(record, self.info), "region": record.region_status,
                "normalization": self.scorer.normalization}
        seconds = {m.key: m.seconds for m in record.maps}
        for key, values in record.scores.items():
            spent = seconds.get(key, math.nan) if key != RANDOM_METHOD else math.nan
            self.summary.add(key, {**values, SECONDS: spent})
            row = {**base, "method": key, **values, "seconds": spent}
            self.stream.write(row)
            if self.keep_rows:  # the Python API returns them (a notebook's data frame)
                self.kept.append(row)
        predicted = record.prediction.label if record.prediction and record.prediction.task == "classification" else None
        for m in record.maps:
            for metric in self.scorer.set_metrics:
                acc = self.accumulators.setdefault(m.key, metric.accumulator())
                acc.add(m.map, truth_text(record, self.info) or None, predicted)

    def rows(self) -> tuple[list[dict[str, Any]], list[str]]:
        return self.summary.rows([*self.scorer.columns, SECONDS], self.scorer.normalization)

    def consistency_rows(self) -> list[dict[str, Any]]:
        norm = self.scorer.normalization
        return [r for key, acc in self.accumulators.items() for r in acc.result().rows(key, norm)]

    def close(self) -> dict[str, Any]:
        from xaicli.io import write_csv

        outputs = {"scores": str(self.stream.close())}
        rows, columns = self.rows()
        outputs["summary"] = str(write_csv(self.out / "summary.csv", rows, columns=columns, overwrite=self.overwrite))
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


