"""Which files are DICOM (PS3.10 7: a 128-byte preamble and "DICM", or a bare data set, which
old files and some tools write), which are cut short, and which are DICOMDIRs (PS3.10 8).
"""

from __future__ import annotations

from xaicli.anonymize.elements import text
from xaicli.dicom import (
    bare_dataset_offset,
    dicom_start,
    head_looks_like_dicom,
    looks_like_dicom,
    truncated,
)

__all__ = ["DICOMDIR_REASON", "MEDIA_DIRECTORY", "bare_dataset_offset", "dicom_start", "head_looks_like_dicom",
           "is_dicomdir", "looks_like_dicom", "truncated"]

DICOMDIR_REASON = "DICOMDIR: regenerate it from the de-identified files"
MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"


def is_dicomdir(ds) -> bool:
    meta = getattr(ds, "file_meta", None)
    klass = text(meta, 0x00020002) if meta is not None else ""
    return klass == MEDIA_DIRECTORY or 0x00041220 in ds._dict  # Directory Record Sequence
