"""Regions of interest: where a map *should* put its mass (a face, the lung fields, a lesion).

A region source (entry-point group ``xaicli.rois``) turns an image file into a boolean (H, W) mask
at the image's own resolution; the metrics resize it to the map. Chosen per run with ``--roi``:

* ``--roi DIR`` or ``--roi masks:DIR`` -- a **mask folder** matched by file name (see
  :class:`MaskFolder`): lung fields, lesions, defects, vessels, face masks;
* ``--roi face-masks:DIR`` -- the same, for face masks (the column becomes ``FaceRatio``);
* ``--roi face`` / ``face:box`` / ``face:ellipse`` -- **OpenCV's bundled Haar cascade**
  (Viola & Jones, CVPR 2001) for frontal faces; the largest face's box, or the ellipse inscribed in
  it. An image where no face is found is *reported* (its region metrics are NaN), never scored;
* ``--roi box:X0,Y0,X1,Y1`` / ``--roi ellipse:CX,CY,RX,RY`` -- a **fixed shape** for every image;
  values are fractions of the width/height when all are <= 1, pixels otherwise. A shape that
  covers no pixel of an image is refused (a usage error), not scored as an empty region.

A region with no pixel set (the lesion mask of a normal image) is an **empty region**: reported in
the ``region`` column and the run's listing, its region metrics NaN, and not a failure.

The label (``Face`` for the face detector and for a mask folder whose name mentions faces, else
``Roi``) names the region-ratio column: ``FaceRatio`` or ``RoiRatio``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.api import NoRegion, RegionSource
from xaicli.errors import InputError, UsageError

__all__ = ["FaceDetector", "FaceMaskFolder", "FixedBox", "FixedEllipse", "MaskFolder", "NoRegion", "RegionSource",
           "parse_roi", "shape_mask"]


# ------------------------------------------------------------------------------------ masks

class MaskFolder(RegionSource):
    """Masks from a folder, matched to each image by file name (any image format; set pixels =
    region) as :class:`xaicli.io.MaskMatcher` matches them; an image without one is reported."""

    name = "masks"

    def __init__(self, folder: str | os.PathLike[str], label: str | None = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError(f"{self.folder}: mask folder does not exist")
        # a folder of face masks makes the ratio column FaceRatio, as in the age study
        # (the folder or its two nearest parents: faces/masks/test, face_masks; not a far ancestor)
        near = [part.lower() for part in self.folder.resolve().parts[-3:]]
        self.label = label or ("Face" if any("face" in part for part in near) else "Roi")
        self._matcher: Any = None

    @classmethod
    def from_spec(cls, spec: str | None) -> MaskFolder:
        if not spec:
            raise UsageError(f"roi {cls.name}:DIR needs a folder", parameter="roi")
        return cls(spec)

    def describe(self) -> str:
        return f"masks:{self.folder}"

    def find(self, path: Path, root: Path | None = None) -> Path:
        """The mask file for image ``path`` (:class:`xaicli.io.MaskMatcher`); NoRegion if none."""
        if self._matcher is None:
            from xaicli.io import MaskMatcher

            self._matcher = MaskMatcher(self.folder)
        return self._matcher.find(Path(path))

    def region(self, path: Path, image: np.ndarray, root: Path | None = None) -> np.ndarray:
        from xaicli.io import read_mask

        return read_mask(self.find(path, root), shape=image.shape[:2])


# ------------------------------------------------------------------------------------- faces


class FaceMaskFolder(MaskFolder):
    """A mask folder of faces (``--roi face-masks:DIR``): as ``masks``, labelled ``Face``."""

    name = "face-masks"

    def __init__(self, folder: str | os.PathLike[str], label: str | None = None) -> None:
        super().__init__(folder, label or "Face")

    def describe(self) -> str:
        return f"face-masks:{self.folder}"


class FaceDetector(RegionSource):
    """The largest frontal face found by OpenCV's bundled Haar cascade (Viola & Jones 2001).

    ``shape``: ``box`` (the detector's rectangle, default) or ``ellipse`` (inscribed in it). Small
    images are upscaled to at least 256 px before detection (the cascade's window is 24 px);
    ``scale_factor`` 1.1 and ``min_neighbors`` 5 are OpenCV's usual settings.
    """

    name = "face"
    label = "Face"
    CASCADE = "haarcascade_frontalface_default.xml"

    def __init__(self, shape: str = "box", scale_factor: float = 1.1, min_neighbors: int = 5) -> None:
        if shape not in ("box", "ellipse"):
            raise UsageError(f"face region shape must be 'box' or 'ellipse', not {shape!r}")
        self.shape = shape
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self._cascade = None

    @classmethod
    def from_spec(cls, spec: str | None) -> FaceDetector:
        return cls(shape=spec or "box")

    def describe(self) -> str:
        return f"face:{self.shape}"

    def _detector(self):
        if self._cascade is None:
            import cv2

            path = Path(cv2.data.haarcascades) / self.CASCADE
            cascade = cv2.CascadeClassifier(str(path))
            if cascade.empty():
                raise UsageError(f"OpenCV's face cascade {path} cannot be loaded")
            self._cascade = cascade
        return self._cascade

    def boxes(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Faces as (x, y, w, h) in the image's pixels, largest first."""
        import cv2

        gray = np.asarray(image, dtype=np.float32)
        if gray.ndim == 3:
            gray = gray.mean(axis=2) if gray.shape[2] != 3 else gray @ np.array([0.299, 0.587, 0.114], np.float32)
        gray8 = np.clip(np.round(gray * 255), 0, 255).astype(np.uint8)
        height, width = gray8.shape
        scale = max(1.0, 256.0 / min(height, width))
        if scale > 1.0:
            gray8 = cv2.resize(gray8, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_LINEAR)
        found = self._detector().detectMultiScale(
            cv2.equalizeHist(gray8), scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors
        )
        boxes = [tuple(int(round(v / scale)) for v in box) for box in (found if len(found) else [])]
        return sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)

    def region(self, path: Path, image: np.ndarray, root: Path | None = None) -> np.ndarray:
        boxes = self.boxes(image)
        if not boxes:
            raise NoRegion(f"{path}: no face found")
        x, y, w, h = boxes[0]
        return shape_mask(image.shape[:2], self.shape, (x, y, x + w, y + h))


# -------------------------------------------------------------------------------- fixed shapes


def shape_mask(size: tuple[int, int], kind: str, box: tuple[float, float, float, float]) -> np.ndarray:
    """Boolean mask of ``size`` with a filled box or the ellipse inscribed in box (x0, y0, x1, y1), pixels."""
    height, width = size
    x0, y0, x1, y1 = box
    if kind == "box":
        rows = np.arange(height)[:, None] + 0.5
        cols = np.arange(width)[None, :] + 0.5
        return (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)
    cy, cx = (y0 + y1) / 2.0, (x0 + x1) / 2.0
    ry, rx = max((y1 - y0) / 2.0, 1e-9), max((x1 - x0) / 2.0, 1e-9)
    rows = (np.arange(height)[:, None] + 0.5 - cy) / ry
    cols = (np.arange(width)[None, :] + 0.5 - cx) / rx
    return rows**2 + cols**2 <= 1.0


def _numbers(kind: str, spec: str | None) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in (spec or "").split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or any(v < 0 for v in values):
        example = "box:0.25,0.25,0.75,0.75" if kind == "box" else "ellipse:0.5,0.5,0.3,0.4"
        raise UsageError(f"roi {kind}:{spec or ''} needs four non-negative numbers, e.g. roi {example}", parameter="roi")
    return values  # type: ignore[return-value]


class FixedBox(RegionSource):
    """The same rectangle X0,Y0,X1,Y1 in every image (fractions of width/height if all <= 1, else pixels)."""

    name = "box"

    def __init__(self, x0: float, y0: float, x1: float, y1: float) -> None:
        if x1 <= x0 or y1 <= y0:
            raise UsageError(f"roi box: needs X0 < X1 and Y0 < Y1 (got {x0},{y0},{x1},{y1})", parameter="roi")
        self.values = (x0, y0, x1, y1)

    @classmethod
    def from_spec(cls, spec: str | None) -> FixedBox:
        return cls(*_numbers("box", spec))

    def describe(self) -> str:
        return "box:" + ",".join(f"{v:g}" for v in self.values)

    def _pixels(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        height, width = size
        x0, y0, x1, y1 = self.values
        if max(self.values) <= 1.0:
            return x0 * width, y0 * height, x1 * width, y1 * height
        return x0, y0, x1, y1

    def _inside(self, mask: np.ndarray, path: Path | None, size: tuple[int, int]) -> np.ndarray:
        """A fixed shape that covers no pixel of the image is a mistake on the command line."""
        if not mask.any():
            where = f"image {path}" if path is not None else "the image"
            raise UsageError(
                f"roi {self.describe()} lies entirely outside {where} ({size[1]}x{size[0]} px); give "
                "pixel coordinates inside the image, or fractions of its width and height in [0, 1]",
                parameter="roi",
            )
        return mask

    def region(self, path: Path, image: np.ndarray, root: Path | None = None) -> np.ndarray:
        size = image.shape[:2]
        return self._inside(shape_mask(size, "box", self._pixels(size)), path, size)


class FixedEllipse(FixedBox):
    """The same ellipse CX,CY,RX,RY (centre and radii) in every image; units as :class:`FixedBox`."""

    name = "ellipse"

    def __init__(self, cx: float, cy: float, rx: float, ry: float) -> None:
        if rx <= 0 or ry <= 0:
            raise UsageError(f"roi ellipse: radii must be > 0 (got {rx},{ry})", parameter="roi")
        self.values = (cx, cy, rx, ry)

    @classmethod
    def from_spec(cls, spec: str | None) -> FixedEllipse:
        return cls(*_numbers("ellipse", spec))

    def describe(self) -> str:
        return "ellipse:" + ",".join(f"{v:g}" for v in self.values)

    def region(self, path: Path, image: np.ndarray, root: Path | None = None) -> np.ndarray:
        size = image.shape[:2]
        cx, cy, rx, ry = self._pixels(size)
        return self._inside(shape_mask(size, "ellipse", (cx - rx, cy - ry, cx + rx, cy + ry)), path, size)


# ------------------------------------------------------------------------------------ parsing


def parse_roi(spec: str, label: str | None = None) -> RegionSource:
    """The region source a ``--roi`` value names: an existing folder, or ``NAME[:ARGUMENT]``."""
    from xaicli import plugins

    spec = spec.strip()
    if not spec:
        raise UsageError("roi needs a value (a mask folder, face, box:..., ellipse:...)", parameter="roi")
    if Path(spec).is_dir():
        source: RegionSource = MaskFolder(spec)
    else:
        name, _, argument = spec.partition(":")
        if name not in plugins.names("rois") and ("/" in spec or os.sep in spec):
            raise InputError(f"{spec}: roi mask folder does not exist", parameter="roi")
        cls = plugins.load("rois", name)
        source = cls.from_spec(argument or None)
    if label:
        source.label = label
    return source


def parse_regions(values: list[str] | str | None, label: str | None = None) -> list:
    """The regions of a run from ``--roi`` values: ``SPEC`` (one unnamed region, columns
    ``RoiRatio``...) or ``NAME=SPEC`` (named, columns ``NAMERatio``, ``NAMELift``...), repeatable."""
    import re

    from xaicli.pipeline.scoring import Region

    items = [values] if isinstance(values, str) else list(values or [])
    regions = []
    for item in items:
        name, sep, spec = item.partition("=")
        if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name) and not Path(item).exists():
            regions.append(Region(name, parse_roi(spec, name)))
        else:
            regions.append(Region("", parse_roi(item, label)))
    names = [r.label for r in regions]
    if len(regions) > 1 and (any(not r.name for r in regions) or len(set(names)) != len(names)):
        raise UsageError("several regions need distinct names: roi NAME=SPEC, e.g. roi lesion=DIR roi tag=DIR",
                         parameter="roi")
    return regions
