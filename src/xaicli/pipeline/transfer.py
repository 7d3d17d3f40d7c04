"""A record as it travels between processes and as it rests in a run folder: JSON fields plus arrays.

After the per-image stages a :class:`~xaicli.pipeline.record.Record` holds what the sinks need --
the prediction, the target, the maps at the image's resolution, the scores (and the deletion and
insertion curves they are the areas of), the regions and their status, the image itself for overlays
and the grid. :func:`pack` splits it into *fields* (JSON: one line of the
run journal, exactly what the CSV rows and summaries are rebuilt from) and *arrays* (the image and
the maps, float32, stored losslessly in one ``.npz`` per image); :func:`unpack` makes the same record
again. Small vectors (class probabilities, a class target's weights) stay in the fields: JSON writes
a float's shortest exact repr, so a float32 comes back bit for bit. The known truth and the source
are not packed: the driver holds them (the journal never carries more than the CSVs show).
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from xaicli.api import Target
from xaicli.io import Source
from xaicli.pipeline.record import MethodMap, Record
from xaicli.predictions import Prediction

#: vectors up to this many values travel in the fields; larger arrays go to the arrays file
INLINE = 256


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _vector(array: Any, name: str, arrays: dict[str, np.ndarray]) -> Any:
    """A small array as a list (with its dtype and shape), a large one by reference into ``arrays``."""
    if array is None:
        return None
    array = np.asarray(array)
    if array.size <= INLINE:
        return {"dtype": array.dtype.str, "shape": list(array.shape), "values": array.ravel().tolist()}
    arrays[name] = array
    return {"array": name}


def _unvector(packed: Any, arrays: Any) -> np.ndarray | None:
    if packed is None:
        return None
    if "array" in packed:
        return np.asarray(arrays[packed["array"]])
    return np.asarray(packed["values"], dtype=np.dtype(packed["dtype"])).reshape(packed["shape"])


def pack(record: Record, *, with_image: bool = True) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(fields, arrays)`` of a record after its stages; ``with_image=False`` leaves the image out
    (a run whose sinks never draw it: predictions of classes and values)."""
    arrays: dict[str, np.ndarray] = {}
    fields: dict[str, Any] = {"index": int(record.index), "name": record.name, "error": record.error}
    if not record.ok:
        return fields, arrays
    if with_image and record.image is not None:
        arrays["image"] = np.asarray(record.image)
    p = record.prediction
    if p is not None:
        fields["prediction"] = {
            "task": p.task, "index": p.index, "label": p.label, "confidence": _number(p.confidence),
            "value": _number(p.value), "mask_pixels": p.mask_pixels, "class_names": list(p.class_names),
            "shown": p.shown, "output": _vector(p.output, "output", arrays),
            "probabilities": _vector(p.probabilities, "probabilities", arrays)}
    if record.target is not None:
        fields["target"] = {"labels": list(record.target.labels), "classes": list(record.target.classes),
                            "weights": _vector(record.target.weights, "target", arrays)}
    maps = []
    for k, m in enumerate(record.maps):
        arrays[f"map{k}"] = np.asarray(m.map)
        maps.append({"method": m.method, "seconds": float(m.seconds), "layer": m.layer,
                     "extras": {key: float(v) for key, v in m.extras.items()}, "display": m.display, "key": m.key,
                     "cell": float(m.cell)})
    if record.region is not None:  # the grid outlines it
        arrays["region"] = np.asarray(record.region)
    regions = []  # the report outlines each region of interest
    for k, (label, mask) in enumerate(record.regions.items()):
        if mask is not None:
            arrays[f"region{k}"] = np.asarray(mask)
        regions.append({"label": label, "array": f"region{k}" if mask is not None else None})
    curves = {key: {column: _vector(curve, f"curve-{key}-{column}", arrays) for column, curve in by_column.items()}
              for key, by_column in record.curves.items()}
    fields.update(maps=maps, regions=regions, curves=curves, region_status=record.region_status,
                  region_failure=record.region_failure,
                  scores={key: {column: float(v) for column, v in values.items()}
                          for key, values in record.scores.items()},
                  warnings=list(record.warnings))
    return fields, arrays


def unpack(fields: dict[str, Any], arrays: Any, source: Source, truth: Any = None) -> Record:
    """The record :func:`pack` was given (the source and truth from the driver's own lists)."""
    record = Record(int(fields["index"]), source, truth=truth, error=fields.get("error"))
    if not record.ok:
        return record
    if "image" in arrays:
        record.image = np.asarray(arrays["image"])
    p = fields.get("prediction")
    if p is not None:
        record.prediction = Prediction(
            p["task"], _unvector(p["output"], arrays), p["index"], p["label"],
            math.nan if p["confidence"] is None else p["confidence"], _unvector(p["probabilities"], arrays),
            math.nan if p["value"] is None else p["value"], p["mask_pixels"], list(p["class_names"]), p["shown"])
    t = fields.get("target")
    if t is not None:
        record.target = Target(_unvector(t["weights"], arrays), t["labels"], t["classes"])
    record.maps = [MethodMap(m["method"], np.asarray(arrays[f"map{k}"]), m["seconds"], m["layer"], dict(m["extras"]),
                             m["display"], m["key"], m.get("cell", 0.0)) for k, m in enumerate(fields.get("maps", []))]
    if "region" in arrays:
        record.region = np.asarray(arrays["region"])
    record.regions = {r["label"]: None if r["array"] is None else np.asarray(arrays[r["array"]])
                      for r in fields.get("regions", [])}
    record.curves = {key: {column: _unvector(curve, arrays) for column, curve in by_column.items()}
                     for key, by_column in fields.get("curves", {}).items()}
    record.region_status = fields.get("region_status", "")
    record.region_failure = fields.get("region_failure")
    record.scores = {key: dict(values) for key, values in fields.get("scores", {}).items()}
    record.warnings = list(fields.get("warnings", []))
    return record


def encode_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    """The arrays of one record as ``.npz`` bytes (uncompressed: maps barely compress, and time
    counts more than disk here)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def decode_arrays(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}
