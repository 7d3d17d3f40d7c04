"""An answered request as JSON, and its overlays as PNG: the prediction's fields
(:meth:`xaicli.predictions.Prediction.fields`), each map's overlay drawn exactly as ``xaicli
explain`` draws it (:func:`xaicli.io.overlay`, in the map's own display normalisation), the raw
map as numbers on request, the region scores from the metric plugins.

Nothing of the upload's header, name or path is in a response: only its format and size. Overlays
and maps are sent at the image's resolution, or scaled down so that the longer side is at most
the limit's ``max_side``.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np

from xaicli.pipeline.record import MethodMap, Record


def _number(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None  # JSON has no NaN: null


def prediction_fields(record: Record, info: Any) -> dict[str, Any]:
    """class, confidence and every class's probability; the value(s); the mask's size."""
    p = record.prediction
    body: dict[str, Any] = {"task": info.task, "text": p.text}
    body.update({k: (_number(v) if isinstance(v, float) else v) for k, v in p.fields().items()})
    if info.task == "classification":
        body["probabilities"] = {name: _number(v) for name, v in zip(info.class_names, p.probabilities, strict=True)}
    elif info.task == "regression":
        body["values"] = [_number(v) for v in np.asarray(p.output, np.float64).ravel()]
    return body


def display_size(shape: tuple[int, ...], max_side: int) -> tuple[int, int]:
    height, width = int(shape[0]), int(shape[1])
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def overlay_png(record: Record, method_map: MethodMap, *, colormap: str = "jet", alpha: float = 0.45,
                max_side: int = 1024) -> bytes:
    """The overlay PNG ``xaicli explain`` writes for this map, at most ``max_side`` pixels a side."""
    from xaicli.io import encode_png, overlay, resize

    size = display_size(record.image.shape, max_side)
    image, saliency = record.image, method_map.map
    if size != image.shape[:2]:
        image = resize(image, size)
        saliency = resize(saliency, size, interpolation="linear")
    return encode_png(overlay(image, saliency, colormap=colormap, alpha=alpha, mode=method_map.display))


def colorbar_png(colormap: str = "jet", width: int = 256, height: int = 14) -> bytes:
    """The colour scale of the overlays: low contribution on the left, high on the right."""
    from xaicli.io import colorize, encode_png

    ramp = np.tile(np.linspace(0.0, 1.0, width, dtype=np.float32), (height, 1))
    return encode_png(colorize(ramp, colormap))


def _map_numbers(method_map: MethodMap, shape: tuple[int, ...], max_side: int) -> list[list[float]]:
    from xaicli.io import resize

    size = display_size(shape, max_side)
    values = method_map.map if size == method_map.map.shape else resize(method_map.map, size, interpolation="linear")
    return np.round(values.astype(np.float64), 7).tolist()


def explanation_fields(record: Record, method_map: MethodMap, *, colormap: str, alpha: float, max_side: int,
                       numbers: bool, scored: bool) -> dict[str, Any]:
    values = method_map.map
    body: dict[str, Any] = {
        "key": method_map.key, "method": method_map.method, "layer": method_map.layer,
        "target": record.target_label, "target_index": record.target_index, "display": method_map.display,
        "range": [_number(values.min()), _number(values.max())], "seconds": _number(method_map.seconds),
        "overlay_png": base64.b64encode(overlay_png(record, method_map, colormap=colormap, alpha=alpha,
                                                    max_side=max_side)).decode("ascii"),
    }
    body.update({k: _number(v) for k, v in method_map.extras.items()})
    if numbers:
        body["map"] = _map_numbers(method_map, record.image.shape, max_side)
        body["map_shape"] = list(np.asarray(body["map"]).shape)
    if scored:
        body["scores"] = {k: _number(v) for k, v in record.scores.get(method_map.key, {}).items()}
    return body


def body(analysis: Any, *, colormap: str = "jet", alpha: float = 0.45, max_side: int = 1024,
         numbers: bool = False) -> dict[str, Any]:
    """The JSON of a predict or explain answer (see docs/serve.md)."""
    record = analysis.record
    doc: dict[str, Any] = {"model": analysis.model, "image": analysis.upload,
                           "prediction": prediction_fields(record, analysis.info)}
    if record.maps:
        doc["colormap"], doc["alpha"] = colormap, alpha
        if analysis.scored:
            doc["region"] = analysis.region
        doc["explanations"] = [explanation_fields(record, m, colormap=colormap, alpha=alpha, max_side=max_side,
                                                  numbers=numbers, scored=analysis.scored) for m in record.maps]
    return doc
