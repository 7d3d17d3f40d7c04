"""What a de-identified file says of itself, and its burned-in pixels.

Marks (PS3.15 E.1.1; PS3.3 C.12.1.1.1): Patient Identity Removed, De-identification Method and its
Code Sequence (CID 7050), Longitudinal Temporal Information Modified. File meta (PS3.10 7.1,
Table 7.1-1): Implementation Class UID and Version Name identify "the implementation that wrote
this file", which is now xaicli (the originals named the site's software).
"""

from __future__ import annotations

import functools

from xaicli.anonymize.elements import put, text
from xaicli.anonymize.profile import code_items
from xaicli.anonymize.settings import BURNED_IN_ANNOTATION, PIXEL_DATA, Settings

# uuid5(NAMESPACE_URL, "https://pypi.org/project/xaicli/") under the 2.25 root (PS3.5 B.2).
IMPLEMENTATION_UID = "2.25.93964042998693515660149041404502629802"


def burned_in_status(ds, modalities: frozenset[str]) -> str:
    """"YES" (Burned In Annotation says so), "unknown (MODALITY)" (absent, for a modality that
    often burns text in) or ""."""
    if PIXEL_DATA not in ds:
        return ""
    flag = text(ds, BURNED_IN_ANNOTATION).upper()
    if flag == "YES":
        return "YES"
    if flag == "NO":
        return ""
    modality = text(ds, 0x00080060).upper()
    return f"unknown ({modality})" if modality in modalities else ""


def mask_pixels(ds, boxes) -> None:
    """Blank the rectangles in every frame (Clean Pixel Data); the result is written uncompressed."""
    import numpy as np

    array = np.array(ds.pixel_array)  # YBR data comes back as RGB, compressed data decoded
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    for x, y, w, h in boxes:
        if frames > 1:
            array[:, y : y + h, x : x + w, ...] = 0
        else:
            array[y : y + h, x : x + w, ...] = 0
    photometric = str(ds.PhotometricInterpretation)
    if photometric.startswith("YBR"):
        photometric = "RGB"
    bits = int(getattr(ds, "BitsStored", array.dtype.itemsize * 8) or array.dtype.itemsize * 8)
    # Updates Rows/Columns, Planar Configuration, Number of Frames and the transfer syntax to match.
    ds.set_pixel_data(array, photometric, bits, generate_instance_uid=False)


@functools.lru_cache(maxsize=64)
def _code_sequence(options: tuple[str, ...], masked: bool):
    """The De-identification Method Code Sequence, built once per process and option set."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    items = []
    for value, meaning in code_items(options, pixels_cleaned=masked):
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    return Sequence(items)


def mark(ds, settings: Settings, masked: bool) -> None:
    """Write the marks of PS3.15 E.1.1 and xaicli's implementation in the file meta."""
    from pydicom.dataelem import DataElement

    options = settings.rules.options
    if not settings.rules.safe_private:
        # No safe private list (xaicli has no built-in Table E.3.10-1): every private attribute
        # went, so the file must not claim the Retain Safe Private Option (113111).
        options = tuple(o for o in options if o != "retain-safe-private")
    put(ds, 0x00120062, "CS", "YES")
    put(ds, 0x00120063, "LO", f"xaicli {settings.version} PS3.15 E.1 Basic Profile"[:64])
    ds[0x00120064] = DataElement(0x00120064, "SQ", _code_sequence(options, masked))
    if "retain-long-full-dates" in options:
        put(ds, 0x00280303, "CS", "UNMODIFIED")
    elif "retain-long-modified-dates" in options:
        put(ds, 0x00280303, "CS", "MODIFIED")
    else:
        put(ds, 0x00280303, "CS", "REMOVED")
    if masked:
        ds.BurnedInAnnotation = "NO"
    meta = getattr(ds, "file_meta", None)
    if meta is not None and len(meta):
        put(meta, 0x00020012, "UI", IMPLEMENTATION_UID)
        put(meta, 0x00020013, "SH", f"XAICLI_{settings.version}"[:16])
