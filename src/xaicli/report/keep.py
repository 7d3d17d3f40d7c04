"""What a run keeps for its report as the records pass: the per-image pictures.

``compare --report`` and ``predict --report`` add a :class:`ViewSink` to their sinks. Per image it
writes, under ``OUT/report/``, one picture strip ``img/NNNNN.jpg``: the image, then each map's
overlay, side by side, each at the image's resolution up to :data:`THUMBNAIL` pixels a side (one
file per image, however many methods: a report of thousands of images stays a folder one can copy);
and one line of ``views.jsonl``: the image's name and size, the strip's tiles in order, each map's
display mode and the map values at the two ends of its colour scale, the outline of each region of
interest (an SVG path in image pixels) and the prediction. Only what a person sees is kept: no raw
maps (``--save-maps`` writes those). At the end, with the consistency metric, each method's
class-mean maps (the ``M_c`` of :mod:`xaicli.metrics.consistency`, in [0, 1]) go to
``class-means/`` with ``class-means.json``.

Pictures are named by the image's number in the run, never by its file name.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.pipeline.record import Record

#: the longest side of a kept picture, in pixels (smaller images are kept at their own size)
THUMBNAIL = 192
JPEG_QUALITY = 92
VIEWS = "views.jsonl"
CLASS_MEANS = "class-means.json"
IMAGE_TILE = "image"


def thumbnail(picture: np.ndarray, side: int = THUMBNAIL) -> np.ndarray:
    """An RGB uint8 picture scaled down (aspect kept) so that its longest side is at most ``side``."""
    import cv2

    height, width = picture.shape[:2]
    scale = side / max(height, width)
    if scale >= 1:
        return picture
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(picture, size, interpolation=cv2.INTER_AREA)


def as_rgb(picture: np.ndarray) -> np.ndarray:
    """An RGB uint8 picture from one (or from an image float in [0, 1])."""
    from xaicli.io import to_channels

    if np.issubdtype(picture.dtype, np.floating):
        return np.clip(np.round(to_channels(np.clip(picture, 0, 1), 3) * 255), 0, 255).astype(np.uint8)
    return picture


def encode_jpeg(picture: np.ndarray) -> bytes:
    """JPEG bytes of an RGB uint8 picture (full-resolution colour: jet's hues survive at 64 px)."""
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    if hasattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR"):
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    ok, buffer = cv2.imencode(".jpg", np.ascontiguousarray(picture[:, :, ::-1]), params)
    if not ok:
        from xaicli.errors import OutputError

        raise OutputError("cannot encode JPEG")
    return buffer.tobytes()


def keep_strip(folder: Path, name: str, pictures: list[np.ndarray], overwrite: bool) -> str:
    """``pictures`` (of one size) made small and written side by side as ``folder/name``."""
    from xaicli.io import write_bytes

    strip = np.concatenate([thumbnail(as_rgb(p)) for p in pictures], axis=1)
    write_bytes(folder / name, encode_jpeg(strip), overwrite=overwrite, sync=False)
    return name


def map_entry(saliency: np.ndarray, mode: str) -> dict[str, Any]:
    """How a kept overlay is described: its display mode and the two ends of its colour scale."""
    from xaicli.normalization import display_range

    lo, hi = display_range(saliency, mode)
    return {"mode": mode, "lo": _short(lo), "hi": _short(hi)}


def outline_path(mask: np.ndarray) -> str:
    """An SVG path (``M x y L ... Z``) along the edges of the pixels of a boolean mask, in its own
    pixel units. Contours run through the centres of the edge pixels: traced on the mask enlarged
    4 times (small images), they lie within 1/8 pixel of the edges, simplified to 0.3 pixel."""
    import cv2

    from xaicli.io.render import region_contours

    height, width = mask.shape[:2]
    k = 4 if max(height, width) <= 256 else 2 if max(height, width) <= 1024 else 1
    parts = []
    for contour in region_contours(mask, (height * k, width * k)):
        simple = cv2.approxPolyDP(contour.reshape(-1, 1, 2).astype(np.int32), 0.3 * k, True).reshape(-1, 2)
        points = [f"{(x + 0.5) / k:.4g} {(y + 0.5) / k:.4g}" for x, y in simple]
        if points:
            parts.append("M" + " L".join(points) + "Z")
    return "".join(parts)


def _short(value: Any) -> Any:
    """A float for the page: four significant digits (None for NaN)."""
    if isinstance(value, float):
        return float(f"{value:.4g}") if math.isfinite(value) else None
    return value


def write_view(handle: Any, view: dict[str, Any]) -> None:
    handle.write(json.dumps(view, separators=(",", ":")) + "\n")


class ViewSink:
    """``OUT/report/``: each record's picture strip and a ``views.jsonl`` line (see the module
    docstring). ``modes``: the display mode of each method's maps (default: each map's own);
    ``class_means``: the run's :class:`~xaicli.pipeline.sinks.ScoreSink`, whose consistency
    accumulators hold the class-mean maps."""

    def __init__(self, folder: Path, info: Any, *, colormap: str = "jet", alpha: float = 0.45,
                 modes: dict[str, str] | None = None, class_means: Any = None, overwrite: bool = False) -> None:
        from xaicli.io import AtomicFile
        from xaicli.io.render import check_alpha, check_colormap

        self.folder, self.info, self.overwrite = Path(folder), info, overwrite
        self.colormap, self.alpha = check_colormap(colormap), check_alpha(alpha)
        self.modes, self.class_means = dict(modes or {}), class_means
        self.index = AtomicFile(self.folder / VIEWS, overwrite=overwrite, mode="w")
        self.count = 0

    def add(self, record: Record) -> None:
        from xaicli.io import overlay
        from xaicli.pipeline.sinks import truth_text

        if not record.ok:
            return
        self.count += 1
        height, width = record.image.shape[:2]
        pictures, tiles, maps = [record.image], [IMAGE_TILE], {}
        for m in record.maps:
            mode = self.modes.get(m.method, m.display)
            pictures.append(overlay(record.image, m.map, colormap=self.colormap, alpha=self.alpha, mode=mode))
            tiles.append(m.key)
            maps[m.key] = map_entry(m.map, mode)
        prediction = record.prediction.fields() if record.prediction is not None else {}
        write_view(self.index.handle, {
            "number": self.count, "file": record.label, "size": [int(width), int(height)],
            "strip": keep_strip(self.folder, f"img/{self.count:05d}.jpg", pictures, self.overwrite), "tiles": tiles,
            "maps": maps, "outlines": {label: outline_path(mask) for label, mask in record.regions.items()
                                       if mask is not None},
            "region": record.region_status, "prediction": {k: _short(v) for k, v in prediction.items()},
            "truth": truth_text(record, self.info),
        })

    def close(self) -> dict[str, Any]:
        if not self.count:
            self.index.discard()
            return {}
        written = {"report_pictures": str(self.index.commit())}
        means = self._class_means()
        if means:
            from xaicli.io import write_json

            written["class_means"] = str(write_json(self.folder / CLASS_MEANS, means, overwrite=self.overwrite))
        return written

    def _class_means(self) -> list[dict[str, Any]]:
        """Each method's class-mean map, colourised on the fixed scale [0, 1]."""
        from xaicli.io import colorize

        accumulators = getattr(self.class_means, "accumulators", None) or {}
        out = []
        for k, (key, acc) in enumerate(accumulators.items()):
            for c, name in enumerate(sorted(acc.counts)):
                mean = np.clip(acc.sums[name] / acc.counts[name], 0.0, 1.0).astype(np.float32)
                path = keep_strip(self.folder, f"class-means/{k}-{c}.jpg", [colorize(mean, self.colormap)],
                                  self.overwrite)
                out.append({"method": key, "class": name, "n": int(acc.counts[name]), "picture": path,
                            "normalization": acc.normalization})
        return out

    def discard(self) -> None:
        self.index.discard()


def views_from_maps(index: Path, folder: Path, *, overwrite: bool = False) -> Path:
    """``views.jsonl`` and the picture strips made from an ``explain``-style ``maps.csv`` (a run
    that saved its maps, not its report pictures): each overlay the run drew, made small, after the
    image when its path still leads to it. Regions are not known there: no outlines."""
    from xaicli.io import AtomicFile
    from xaicli.pipeline.score import read_maps_csv

    groups: dict[str, list[dict[str, str]]] = {}
    for row in read_maps_csv(index):
        groups.setdefault(row["image"], []).append(row)
    with AtomicFile(folder / VIEWS, overwrite=overwrite, mode="w") as handle:
        for number, (image, rows) in enumerate(groups.items(), start=1):
            write_view(handle, _view_from_rows(number, image, rows, index.parent, folder, overwrite))
    return folder / VIEWS


def _view_from_rows(number: int, image: str, rows: list[dict[str, str]], base: Path, folder: Path,
                    overwrite: bool) -> dict[str, Any]:
    from xaicli.errors import XaicliError
    from xaicli.io import load_map, read_image
    from xaicli.pipeline.record import method_key

    pictures, tiles, maps, size = [], [], {}, [0, 0]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["method"]] = counts.get(row["method"], 0) + 1
    for row in rows:
        key = method_key(row["method"], row.get("layer") or None, counts[row["method"]])
        try:
            saliency = load_map(base / row["map"])
            pictures.append(read_image(base / row["overlay"]))
        except XaicliError:  # a map or overlay gone: the row's numbers still show
            continue
        size = [int(saliency.shape[1]), int(saliency.shape[0])]
        tiles.append(key)
        maps[key] = map_entry(saliency, row.get("display") or "positive")
    try:
        picture = read_image(Path(image))
        if not pictures or picture.shape[:2] == pictures[0].shape[:2]:
            pictures.insert(0, picture)
            tiles.insert(0, IMAGE_TILE)
            size = [int(picture.shape[1]), int(picture.shape[0])]
    except XaicliError:  # moved since the run: the overlays still show it
        pass
    strip = keep_strip(folder, f"img/{number:05d}.jpg", pictures, overwrite) if pictures else None
    return {"number": number, "file": image, "size": size, "strip": strip, "tiles": tiles, "maps": maps,
            "outlines": {}, "prediction": {}, "truth": rows[0].get("truth", "")}
