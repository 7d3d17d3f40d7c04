"""Which files are DICOM (PS3.10 7: a 128-byte preamble and "DICM", or a bare data set, which
old files and some tools write), which are cut short, and which are DICOMDIRs (PS3.10 8).
"""

from __future__ import annotations

import io
from pathlib import Path

from xaicli.anonymize.elements import text

DICOMDIR_REASON = "DICOMDIR: regenerate it from the de-identified files"
MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"


def is_dicomdir(ds) -> bool:
    meta = getattr(ds, "file_meta", None)
    klass = text(meta, 0x00020002) if meta is not None else ""
    return klass == MEDIA_DIRECTORY or 0x00041220 in ds._dict  # Directory Record Sequence


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
    import pydicom
    from pydicom.datadict import dictionary_has_tag

    if len(data) < 8:
        return 0
    try:
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
