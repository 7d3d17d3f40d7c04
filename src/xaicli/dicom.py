"""Reading DICOM pixel data as an image a model can take (pydicom).

The stored values go through the standard display pipeline of PS3.3 C.11: the Modality LUT (or
Rescale Slope/Intercept) into modality units, then the VOI LUT or window (Window Center/Width,
the first one when several are given) into display values, which are scaled to [0, 1] over the
window's output range. Without a window the full range of the modality values is used.
MONOCHROME1 (low values bright) is inverted so that bright means dense everywhere. Colour images
(RGB, YBR_*) are converted to RGB. Multi-frame files need an explicit frame.

Error messages name the file and the problem, never an attribute value: DICOM headers carry
patient data.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.errors import InputError

CODECS_HINT = "install the decoders with: pip install 'xaicli[dicom-codecs]'"


# ------------------------------------------------------------------------------- detection
# The one test of "is this a DICOM file", used by the image readers, input discovery and the
# de-identifier alike (PS3.10 7.1: the preamble and "DICM" prefix; files written before it, and
# some tools since, store a bare data set).


def looks_like_dicom(path: Path) -> bool:
    """DICM at offset 128, or a headerless data set (PS3.10 allows none; old files have none)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return True  # let the reader say what is wrong
    return dicom_start(data) is not None


def dicom_start(data: bytes) -> int | None:
    """Where the file (preamble or bare data set) starts in ``data``; None when it is not DICOM."""
    if head_looks_like_dicom(data[:132]):
        return 0
    return bare_dataset_offset(data)


def head_looks_like_dicom(head: bytes) -> bool:
    """The cheap test: DICM at 128, or a bare data set starting with group 0002 or 0008."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    # Little-endian group 0002/0008 (or big-endian 0008) as the first tag of a bare data set.
    return len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x08")


def bare_dataset_offset(data: bytes) -> int | None:
    """A headerless data set starting anywhere (e.g. at Patient's Name): parse it and accept it
    when every element is plausible: tags in ascending order, each one a dictionary attribute
    or a private one, nothing cut short. Text or binary files parse into unknown tags.
    A stray byte or three before the first tag (a pad left by a tool that cut off the file meta,
    as in pydicom's no_meta.dcm) is skipped when what follows is a data set of several elements."""
    for offset in range(4):
        count = _plausible_elements(data[offset:])
        if count and (offset == 0 or count >= 4):
            return offset
    return None


def _plausible_elements(data: bytes) -> int:
    import io

    import pydicom
    from pydicom.datadict import dictionary_has_tag

    if len(data) < 8:
        return 0
    try:
        with quiet_pydicom():
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            tags = [int(t) for t in ds._dict]
    except Exception:  # noqa: BLE001 - whatever fails to parse is not a data set
        return 0
    if not tags or tags != sorted(tags) or truncated(ds):
        return 0
    if not all(t >> 16 & 1 or t & 0xFFFF == 0 or dictionary_has_tag(t) for t in tags):
        return 0
    return len(tags)


def truncated(ds) -> bool:
    """pydicom reads a file cut short without complaint; the last element then lacks bytes."""
    from pydicom.dataelem import RawDataElement

    if not len(ds):
        return False
    elem = ds.get_item(max(ds.keys()))
    return (
        isinstance(elem, RawDataElement)
        and isinstance(elem.value, bytes)
        and elem.length != 0xFFFFFFFF
        and len(elem.value) < elem.length
    )


# ------------------------------------------------------------------------------- reading


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's warnings and log lines: they quote element values (patient data)."""
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def read_dataset(path: Path, *, stop_before_pixels: bool = False, force: bool = False):
    """Read a DICOM file with pydicom, turning every failure into an InputError.

    ``force`` also accepts files without the 128-byte preamble and "DICM" prefix (older files, or
    a bare data set after a few stray bytes: :func:`dicom_start`); the result must then hold at
    least one standard attribute to count as DICOM.
    """
    import io

    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with quiet_pydicom():
            source: Any = str(path)
            if force:
                data = Path(path).read_bytes()
                source = io.BytesIO(data[dicom_start(data) or 0:])
            ds = pydicom.dcmread(source, stop_before_pixels=stop_before_pixels, force=force)
            if force and not any(tag.group in (0x0008, 0x0010, 0x0020, 0x0028) for tag in ds.keys()):
                raise InvalidDicomError("no standard attributes")
            return ds
    except InvalidDicomError:
        raise InputError(f"{path}: not a valid DICOM file") from None
    except (EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # pydicom's messages can quote element values; keep only the exception type.
        raise InputError(f"{path}: DICOM file is corrupt or truncated ({type(exc).__name__})") from None


def frame_count(ds) -> int:
    try:
        return int(getattr(ds, "NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return 1


def _pixels(path: Path, ds, frame: int | None) -> np.ndarray:
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise InputError(f"{path}: DICOM file has no pixel data")
    frames = frame_count(ds)
    if frames > 1 and frame is None:
        raise InputError(f"{path}: multi-frame DICOM with {frames} frames; choose one with --frame N|first|middle, "
                         "or --frame all for one input per frame")
    if frame is not None and not 0 <= frame < frames:
        raise InputError(f"{path}: frame {frame} does not exist (the file has {frames})")
    try:
        from pydicom.pixels import pixel_array

        if frames > 1:
            return pixel_array(ds, index=frame)
        return ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        text = str(exc).lower()
        if "decod" in text or "plugin" in text or "handler" in text or "transfer syntax" in text:
            syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
            name = getattr(syntax, "name", "compressed")
            raise InputError(f"{path}: no decoder for {name} pixel data; {CODECS_HINT}") from None
        raise InputError(f"{path}: pixel data cannot be decoded ({type(exc).__name__})") from None
    except (ValueError, AttributeError, KeyError, TypeError, EOFError) as exc:
        raise InputError(f"{path}: pixel data is corrupt or truncated ({type(exc).__name__})") from None


def read_dicom_image(path: str | Path, *, frame: int | None = None, force: bool = False) -> np.ndarray:
    """Read one DICOM image as float32 (H, W, C) in [0, 1], C = 1 or 3."""
    path = Path(path)
    with quiet_pydicom():
        return _read_dicom_image(path, frame, force)


def _read_dicom_image(path: Path, frame: int | None, force: bool) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut, convert_color_space

    ds = read_dataset(path, force=force)
    stored = _pixels(path, ds, frame)
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)

    if samples == 3 or photometric in ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT", "PALETTE COLOR"):
        if photometric == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut

            rgb = apply_color_lut(stored, ds)
        elif photometric.startswith("YBR") and photometric not in ("YBR_RCT", "YBR_ICT"):
            rgb = convert_color_space(stored, photometric, "RGB")
        else:
            rgb = stored
        bits = int(getattr(ds, "BitsStored", 8) or 8)
        if photometric == "PALETTE COLOR":
            bits = 16 if rgb.dtype == np.uint16 else 8
        image = rgb.astype(np.float32) / float(2**bits - 1)
        return np.clip(image, 0.0, 1.0).reshape(image.shape[0], image.shape[1], 3)

    if stored.ndim != 2:
        raise InputError(f"{path}: unsupported pixel layout {stored.shape}")
    values = apply_modality_lut(stored, ds).astype(np.float64)
    window = _window_values(ds)
    lut = _voi_lut_item(ds)
    if window is not None:
        image = _window(values, ds, *window)
    elif lut is not None:
        bits = int(lut.LUTDescriptor[2])
        image = apply_voi_lut(values, ds, index=0, prefer_lut=True).astype(np.float64) / float(2**bits - 1)
    else:
        low, high = float(values.min()), float(values.max())
        image = (values - low) / (high - low) if high > low else np.zeros_like(values)
    image = np.clip(image, 0.0, 1.0).astype(np.float32)
    if photometric == "MONOCHROME1":
        image = 1.0 - image
    return image[:, :, None]


def _first(value) -> float | None:
    """The first number of a (multi-valued) attribute; None when it is empty or not a number."""
    if value is None:
        return None
    if hasattr(value, "__len__") and not isinstance(value, str):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _window_values(ds) -> tuple[float, float] | None:
    """(center, width) of the first window, or None when either is absent, empty or not a number
    (an empty Window Center is as good as none: the full range is used instead)."""
    center = _first(ds.get("WindowCenter"))
    width = _first(ds.get("WindowWidth"))
    if center is None or width is None or width <= 0:
        return None
    return center, width


def _voi_lut_item(ds):
    """The first VOI LUT Sequence item that holds a usable LUT, or None (empty sequence: none)."""
    sequence = ds.get("VOILUTSequence")
    if not sequence:
        return None
    item = sequence[0]
    descriptor = item.get("LUTDescriptor")
    if descriptor is None or len(descriptor) != 3 or "LUTData" not in item:
        return None
    return item


def _window(values: np.ndarray, ds, center: float, width: float) -> np.ndarray:
    """Window Center/Width straight into [0, 1] (PS3.3 C.11.2.1.2: LINEAR, LINEAR_EXACT, SIGMOID)."""
    function = str(getattr(ds, "VOILUTFunction", "LINEAR") or "LINEAR").upper()
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / max(width, 1e-6)))
    if function == "LINEAR_EXACT":
        return (values - center) / max(width, 1e-6) + 0.5
    width = max(width, 1.0)
    return (values - (center - 0.5)) / max(width - 1.0, 1e-6) + 0.5
