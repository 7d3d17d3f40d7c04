"""Reading every image kind, in one place: PNG, JPEG, BMP, TIFF, GIF and DICOM, and saved maps.

Readers return ``float32`` arrays of shape (height, width, channels) scaled to [0, 1], with
channels 1 (grayscale) or 3 (RGB, in that order). RGBA loses its alpha channel (composited on
black: transparent pixels carry no image content a model should see). 16-bit images are scaled by
65535, DICOM by its VOI window (see ``xaicli.dicom``). Format is recognised from the file's
content; a file whose content does not match its extension is refused as mislabelled.
"""

from __future__ import annotations

import functools
import io as _io
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.errors import InputError, XaicliError

IMAGE_SUFFIXES = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".gif": "GIF",
    ".dcm": "DICOM",
    ".dicom": "DICOM",
}


@functools.cache
def cv2_module():
    import cv2

    # OpenCV logs decoder errors ("[ERROR:0@0.02] ... TIFF_Error ...") straight to stderr; our own
    # checks report such files instead, naming them. OpenCV 4.x has the setting in cv2.utils.logging
    # (cv2.setLogLevel is gone); a build without either is left as it is.
    logging_module = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging_module is not None and hasattr(logging_module, "setLogLevel"):
        logging_module.setLogLevel(logging_module.LOG_LEVEL_SILENT)
    elif hasattr(cv2, "setLogLevel"):
        cv2.setLogLevel(0)
    return cv2


def sniff_format(head: bytes) -> str | None:
    """The image format of a file from its first bytes, or None when unknown."""
    # DICOM first: its 128-byte preamble is free-form and may itself look like a TIFF header.
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "DICOM"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"BM"):
        return "BMP"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "TIFF"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not an image file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not data:
        raise InputError(f"{path}: file is empty")
    return data


def _check_complete(path: Path, fmt: str, data: bytes) -> None:
    # Decoders fill a truncated image with grey and carry on; a model must never see that.
    if fmt == "PNG" and b"IEND" not in data[-64:]:
        raise InputError(f"{path}: truncated PNG (no IEND chunk)")
    if fmt == "PNG":
        _check_png_chunks(path, data)
    if fmt == "JPEG" and b"\xff\xd9" not in data[-4096:]:
        raise InputError(f"{path}: truncated JPEG (no end-of-image marker)")


def _check_png_chunks(path: Path, data: bytes) -> None:
    """Every chunk of a PNG within the file and with a correct CRC (libpng would print its own
    "libpng error: IDAT: CRC error" on stderr before refusing the file)."""
    import zlib

    position = 8
    while position < len(data):
        if position + 12 > len(data):
            raise InputError(f"{path}: corrupt PNG (a chunk is cut short)")
        length = int.from_bytes(data[position : position + 4], "big")
        end = position + 8 + length
        if length > 0x7FFFFFFF or end + 4 > len(data):
            raise InputError(f"{path}: corrupt PNG (a chunk runs past the end of the file)")
        kind = data[position + 4 : position + 8]
        crc = int.from_bytes(data[end : end + 4], "big")
        if zlib.crc32(data[position + 4 : end]) != crc:
            name = kind.decode("latin-1") if kind.isalpha() else "?"
            raise InputError(f"{path}: corrupt PNG (CRC error in a {name} chunk)")
        position = end + 4
        if kind == b"IEND":
            return


def _to_float(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.dtype == bool:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise InputError(f"{path}: image holds NaN or infinite values")
        lo, hi = float(array.min()), float(array.max())
        if lo < 0.0 or hi > 1.0:  # float TIFFs carry arbitrary units: stretch to [0, 1]
            array = (array - lo) / (hi - lo) if hi > lo else np.zeros_like(array)
        return array
    raise InputError(f"{path}: unsupported pixel type {array.dtype}")


def _channels_last(array: np.ndarray, path: Path, *, bgr: bool) -> np.ndarray:
    """Grayscale -> (H, W, 1); BGR(A)/RGB(A) -> (H, W, 3) RGB, alpha composited on black."""
    if array.ndim == 2:
        return array[:, :, None]
    if array.ndim != 3:
        raise InputError(f"{path}: unsupported image layout {array.shape}")
    channels = array.shape[2]
    if channels == 1:
        return array
    if channels == 2:  # grey + alpha
        return (array[:, :, :1] * array[:, :, 1:2]).astype(np.float32)
    if channels not in (3, 4):
        raise InputError(f"{path}: unsupported number of channels ({channels})")
    rgb = array[:, :, 2::-1] if bgr else array[:, :, :3]
    if channels == 4:
        rgb = rgb * array[:, :, 3:4]
    return np.ascontiguousarray(rgb, dtype=np.float32)


def _frame_count(data: bytes) -> int:
    """Frames of a TIFF (pages) or GIF (animation) by Pillow; 1 when it cannot tell (the decoder
    then says what is wrong with the file)."""
    from PIL import Image

    try:
        with Image.open(_io.BytesIO(data)) as image:
            return max(1, int(getattr(image, "n_frames", 1) or 1))
    except Exception:  # noqa: BLE001 - a file Pillow cannot parse: left to the decoder's own check
        return 1


def _read_with_pillow(path: Path, data: bytes, *, frame: int = 0) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(_io.BytesIO(data)) as image:
            if frame:
                image.seek(frame)
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L"):
                array = np.array(image, dtype=np.uint16)
            elif image.mode in ("1", "L", "P", "LA", "PA", "RGB", "RGBA"):
                mode = {"1": "L", "P": "RGBA" if "transparency" in image.info else "RGB"}.get(
                    image.mode, image.mode
                )
                if image.mode == "P" and mode == "RGB" and _palette_is_gray(image):
                    mode = "L"
                array = np.array(image.convert(mode))
            else:
                array = np.array(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{path}: cannot decode image ({exc})") from None
    return _channels_last(_to_float(array, path), path, bgr=False)


def _palette_is_gray(image: Any) -> bool:
    palette = np.array(image.getpalette() or [], dtype=np.int32).reshape(-1, 3)
    return bool(len(palette)) and bool(np.all(palette[:, 0] == palette[:, 1]) and np.all(palette[:, 1] == palette[:, 2]))


def _read_with_opencv(path: Path, data: bytes) -> np.ndarray:
    cv2 = cv2_module()
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.size == 0:
        raise InputError(f"{path}: cannot decode image (corrupt or unsupported)")
    return _channels_last(_to_float(array, path), path, bgr=True)


def frame_count(path: str | os.PathLike[str]) -> int:
    """Frames of a file: a multi-frame DICOM's Number of Frames, a multi-page TIFF's pages, an
    animated GIF's frames; 1 for everything else (and for files the reader will refuse anyway)."""
    path = Path(path)
    try:
        data = _read_bytes(path)
    except InputError:
        return 1
    fmt = sniff_format(data[:132])
    if fmt in ("TIFF", "GIF"):
        return _frame_count(data)
    if fmt == "DICOM" or IMAGE_SUFFIXES.get(path.suffix.lower()) == "DICOM":
        from xaicli.dicom import frame_count as dicom_frames
        from xaicli.dicom import read_dataset

        try:
            return dicom_frames(read_dataset(path, stop_before_pixels=True, force=fmt != "DICOM"))
        except InputError:
            return 1
    return 1


def frame_index(spec: str | int | None, path: str | os.PathLike[str]) -> int | None:
    """The frame a ``--frame`` value picks in a file: None (single-frame files only), a number,
    ``first`` or ``middle`` (of the file's own frames)."""
    if spec is None or isinstance(spec, int):
        return spec
    text = str(spec).strip().lower()
    if text == "first":
        return 0
    if text == "middle":
        return frame_count(path) // 2
    if text.isdigit():
        return int(text)
    from xaicli.errors import UsageError

    raise UsageError(f"frame must be a number, first, middle or all, not {spec!r}", parameter="frame")


def read_image(path: str | os.PathLike[str], *, frame: int | None = None) -> np.ndarray:
    """Read any supported image as float32 (H, W, C) in [0, 1], C = 1 or 3.

    ``frame`` selects one frame of a multi-frame DICOM, multi-page TIFF or animated GIF (0-based);
    a multi-frame file read without it is refused rather than silently reduced to its first frame.
    """
    path = Path(path)
    try:
        return _read_image(path, frame)
    except (XaicliError, MemoryError):
        raise
    except Exception as exc:  # a decoder bug on an odd file must not stop a batch: name the file
        # only the exception type: a decoder's message can quote header values (DICOM: patient data)
        raise InputError(f"{path}: cannot read the image ({type(exc).__name__} in the decoder)") from None


def _read_image(path: Path, frame: int | None) -> np.ndarray:
    data = _read_bytes(path)
    fmt = sniff_format(data[:132])
    expected = IMAGE_SUFFIXES.get(path.suffix.lower())
    if fmt is None and expected in ("DICOM", None):  # DICOM without preamble (PS3.10 allows it)
        from xaicli.dicom import dicom_start, read_dicom_image

        if expected == "DICOM" or dicom_start(data) is not None:
            return read_dicom_image(path, frame=frame, force=True)
    if fmt is None:
        if expected is not None:
            raise InputError(f"{path}: not a valid {expected} file (unrecognised content)")
        raise InputError(f"{path}: not an image file xaicli can read")
    if expected is not None and expected != fmt:
        raise InputError(f"{path}: mislabelled file: content is {fmt}, name says {expected}")
    if fmt == "DICOM":
        from xaicli.dicom import read_dicom_image

        return read_dicom_image(path, frame=frame)
    _check_complete(path, fmt, data)
    frames = _frame_count(data) if fmt in ("TIFF", "GIF") else 1
    if frames > 1 and frame is None:  # never silently the first page of a stack or an animation
        kind = "multi-page TIFF" if fmt == "TIFF" else "animated GIF"
        raise InputError(f"{path}: {kind} with {frames} frames; choose one with --frame N|first|middle, "
                         "or --frame all for one input per frame")
    if frame is not None and not 0 <= frame < frames:
        raise InputError(f"{path}: frame {frame} does not exist (the file has {frames})")
    if frames > 1:
        return _read_with_pillow(path, data, frame=frame or 0)
    if fmt in ("PNG", "TIFF", "BMP"):  # OpenCV keeps 16-bit samples and reads TIFF fully
        return _read_with_opencv(path, data)
    return _read_with_pillow(path, data)


def read_mask(path: str | os.PathLike[str], *, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a region mask (any image format) as a boolean (H, W) array: True where the pixel is set.

    ``shape`` resizes it (nearest neighbour, so it stays binary) to an image's (height, width).
    """
    image = read_image(path)
    mask = image.max(axis=2) > 0.5
    if shape is not None and mask.shape != tuple(shape):
        cv2 = cv2_module()
        mask = cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0
    return mask


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Convert (H, W, C) between grayscale (1) and RGB (3); luminance by ITU-R BT.601 weights."""
    have = image.shape[2]
    if have == channels:
        return image
    if channels == 1:
        weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return (image @ weights)[:, :, None].astype(np.float32)
    if channels == 3:
        return np.repeat(image, 3, axis=2)
    raise InputError(f"cannot convert an image to {channels} channels")


def resize(image: np.ndarray, size: tuple[int, int], *, interpolation: str = "area") -> np.ndarray:
    """Resize (H, W[, C]) to ``size`` = (height, width); area averaging when shrinking."""
    if image.shape[:2] == tuple(size):
        return image
    cv2 = cv2_module()
    shrinking = size[0] < image.shape[0] or size[1] < image.shape[1]
    flag = {
        "area": cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
        "linear": cv2.INTER_LINEAR,
        "nearest": cv2.INTER_NEAREST,
        "cubic": cv2.INTER_CUBIC,
    }[interpolation]
    out = cv2.resize(image, (size[1], size[0]), interpolation=flag)
    if image.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return out




def load_map(path: str | os.PathLike[str]) -> np.ndarray:
    """A saliency map from NPY, or NPZ (key ``map``, else its only array), as float32 (H, W)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except FileNotFoundError:
        raise InputError(f"{path}: no such map file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the map ({exc.strerror or exc})") from None
    if not head.startswith((b"\x93NUMPY", b"PK\x03\x04", b"PK\x05\x06")):
        what = "is empty" if not head else "is not a NumPy .npy or .npz file (wrong leading bytes)"
        raise InputError(f"{path}: the map {what}")
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():  # object arrays: not a map xaicli wrote, never unpickled
            raise InputError(f"{path}: the map holds Python objects, not numbers") from None
        raise InputError(f"{path}: corrupt or truncated map ({' '.join(str(exc).split())[:160]})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: corrupt or truncated map ({' '.join(str(exc).split())[:160]})") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            keys = list(data.keys())
            if "map" in keys:
                array = data["map"]
            elif len(keys) == 1:
                array = data[keys[0]]
            else:
                raise InputError(f"{path}: NPZ holds {', '.join(keys)}; expected one array or 'map'")
    else:
        array = data
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise InputError(f"{path}: a map must be 2-D (height, width), not {array.shape}")
    return array
