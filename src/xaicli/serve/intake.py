"""Checking an upload before the model sees it: by its content, never by its name.

In order: not empty; a format recognised from the leading bytes (:func:`xaicli.io.sniff_format`,
and :func:`xaicli.dicom.dicom_start` for DICOM without a preamble) among PNG, JPEG, TIFF and DICOM;
DICOM parsed and de-identified (:func:`xaicli.serve.deid.deidentify`) before it is written or
read any further, and refused if its pixels may show patient data; the pixel count read from the
header and held to the limit before anything is decoded (a small file can declare a huge image);
then written to the upload's own folder under a neutral name and read by the project's reader
(:func:`xaicli.io.read_image`: truncated and corrupt files refused, DICOM windowed). Each failure is
one :class:`~xaicli.serve.errors.Refused` naming the form field and what is wrong.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.errors import InputError
from xaicli.serve.config import ACCEPTED_FORMATS, Limits
from xaicli.serve.errors import Refused
from xaicli.serve.uploads import TempStore

SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "DICOM": ".dcm", "BMP": ".bmp", "GIF": ".gif"}
REGION_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "GIF")


@dataclass
class Accepted:
    """A checked upload: the file in its folder, its format and the image as the readers give it."""

    path: Path
    format: str
    image: np.ndarray


def content_format(data: bytes, field: str, accepted: tuple[str, ...]) -> str:
    from xaicli.dicom import dicom_start
    from xaicli.io import sniff_format

    if not data:
        raise Refused(400, f"{field}: the file is empty")
    fmt = sniff_format(data[:132])
    if fmt is None and dicom_start(data) is not None:
        fmt = "DICOM"  # a bare data set without preamble (PS3.10 allows it)
    if fmt is None:
        raise Refused(415, f"{field}: not an image ({', '.join(accepted)} expected)")
    if fmt not in accepted:
        raise Refused(415, f"{field}: {fmt} is not accepted ({', '.join(accepted)} expected)")
    return fmt


def check_pixels(rows: int, columns: int, field: str, limits: Limits) -> None:
    if rows * columns > limits.max_pixels:
        raise Refused(413, f"{field}: {columns} x {rows} pixels is more than the limit of {limits.max_pixels:,} pixels")


def _raster_size(data: bytes, field: str) -> tuple[int, int] | None:
    """(rows, columns) from a PNG/JPEG/TIFF header, without decoding; None when Pillow cannot
    parse it (the reader then says what is wrong)."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
        except Image.DecompressionBombError:
            raise Refused(413, f"{field}: the image declares more pixels than it may have") from None
        except Exception:  # noqa: BLE001 - unparseable header: left to the reader's own checks
            return None
    return int(height), int(width)


def _read(path: Path, field: str, frame: int | None) -> np.ndarray:
    from xaicli.io import read_image
    from xaicli.pipeline.scoring import strip_path

    try:
        return read_image(path, frame=frame)
    except InputError as exc:  # the message starts with the temporary path: the field instead
        raise Refused(422, f"{field}: {strip_path(exc.message, path)}") from None


def _dicom(data: bytes, field: str, limits: Limits, key: bytes) -> bytes:
    """The de-identified file: parsed, checked and de-identified in memory, then encoded."""
    import pydicom

    from xaicli.dicom import dicom_start, quiet_pydicom, truncated
    from xaicli.serve.deid import deidentify

    start = dicom_start(data) or 0
    with quiet_pydicom():  # pydicom's warnings quote element values
        try:
            ds = pydicom.dcmread(io.BytesIO(data[start:]), force=True)
        except Exception as exc:  # noqa: BLE001 - only the type: a message may quote patient data
            raise Refused(422, f"{field}: DICOM file is corrupt or truncated ({type(exc).__name__})") from None
        if len(ds) == 0 or truncated(ds):
            raise Refused(422, f"{field}: DICOM file is corrupt or truncated")
        if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
            raise Refused(422, f"{field}: DICOM file has no pixel data")
        try:
            rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        except (TypeError, ValueError):
            rows = columns = 0
        if rows < 1 or columns < 1:
            raise Refused(422, f"{field}: DICOM file does not say its rows and columns")
        check_pixels(rows, columns, field, limits)  # one frame is decoded
        try:
            burned = deidentify(ds, key)
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=False)
        except Exception as exc:  # noqa: BLE001
            raise Refused(422, f"{field}: DICOM file cannot be de-identified ({type(exc).__name__})") from None
    if burned:
        raise Refused(422, f"{field}: the pixels may show patient data (burned-in annotation {burned}); "
                           "send an image whose pixels carry none")
    return buffer.getvalue()


def accept_image(data: bytes, store: TempStore, folder: Path, limits: Limits, key: bytes, *,
                 field: str = "image", frame: int | None = None) -> Accepted:
    """Check the upload ``data`` (see the module docstring) and write it into ``folder``."""
    fmt = content_format(data, field, ACCEPTED_FORMATS)
    if fmt == "DICOM":
        data = _dicom(data, field, limits, key)
    else:
        size = _raster_size(data, field)
        if size is not None:
            check_pixels(*size, field, limits)
    path = store.write(folder, f"{field}{SUFFIXES[fmt]}", data)
    return Accepted(path, fmt, _read(path, field, frame))


def accept_region(data: bytes, store: TempStore, folder: Path, limits: Limits, shape: tuple[int, ...], *,
                  field: str = "region") -> Path:
    """A region mask (set pixels = region) checked as an image and readable at ``shape``."""
    from xaicli.io import read_mask

    fmt = content_format(data, field, REGION_FORMATS)
    size = _raster_size(data, field)
    if size is not None:
        check_pixels(*size, field, limits)
    path = store.write(folder, f"{field}{SUFFIXES[fmt]}", data)
    _read(path, field, None)
    read_mask(path, shape=tuple(shape[:2]))
    return path


def region_file(folder: Path) -> Path | None:
    """The region an upload came with, if any (written by :func:`accept_region`)."""
    return next((p for p in sorted(folder.glob("region.*")) if not p.name.startswith(".")), None)


def describe(accepted: Accepted) -> dict[str, Any]:
    """What a response may say about the upload: its format and size (nothing from its header)."""
    height, width = accepted.image.shape[:2]
    return {"format": accepted.format, "width": int(width), "height": int(height),
            "channels": int(accepted.image.shape[2])}
