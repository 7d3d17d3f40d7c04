"""Encoding a de-identified data set back into a file (PS3.10 7, PS3.5 7).

The fast path (little-endian files with file meta, by far the most common): elements the walk did
not touch are still raw, so their bytes are copied straight through; the few changed ones and the
sequences are encoded here; anything unusual is handed to pydicom's element writer. Files the
fast path cannot take (big endian, deflated, no file meta, a data set at odds with its transfer
syntax) are written whole by pydicom.
"""

from __future__ import annotations

import io
import struct

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_STRING_VRS = {"AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}


class _Fallback(Exception):
    """Something the fast encoder does not handle: pydicom writes the whole file instead."""


def _value_bytes(elem) -> bytes | None:
    """Bytes of a converted element holding plain ASCII strings or one US/UL; else None."""
    vr, value = elem.VR, elem.value
    if vr in _STRING_VRS:
        if value is None:
            return b""
        values = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else None
        if values is None or not all(type(v) is str for v in values):
            return None
        try:
            data = "\\".join(values).encode("ascii")
        except UnicodeEncodeError:
            return None
        return data + (b"\x00" if vr == "UI" else b" ") if len(data) % 2 else data
    if vr == "US" and type(value) is int:
        return struct.pack("<H", value)
    if vr == "UL" and type(value) is int:
        return struct.pack("<I", value)
    return None


def _fast_encode(ds) -> bytes | None:
    """Little-endian files with file meta: copy raw elements' bytes straight through, encode the
    few changed ones and the sequences here, and let pydicom encode anything unusual.
    None when pydicom must write the whole file (big endian, deflate, no file meta, ...)."""
    from pydicom.dataelem import RawDataElement
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_data_element

    meta = getattr(ds, "file_meta", None)
    implicit, little = getattr(ds, "original_encoding", (None, None))
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if meta is None or not len(meta) or little is not True or implicit is None or syntax is None:
        return None
    if getattr(syntax, "is_deflated", True) or bool(implicit) != (syntax == "1.2.840.10008.1.2"):
        return None  # the data set disagrees with its transfer syntax: let pydicom sort it out
    encodings = ds._character_set if hasattr(ds, "_character_set") else None
    pack_implicit = struct.Struct("<HHI").pack
    pack_short = struct.Struct("<HH2sH").pack
    pack_long = struct.Struct("<HH2s2xI").pack

    def header(fp, tag: int, vr: str | None, length: int, implicit_vr: bool) -> None:
        group, element = tag >> 16, tag & 0xFFFF
        if implicit_vr:
            fp.write(pack_implicit(group, element, length))
            return
        if vr is None:
            raise _Fallback
        code = vr.encode("ascii")
        if code in _LONG_VRS:
            fp.write(pack_long(group, element, code, length))
        elif length <= 0xFFFF:
            fp.write(pack_short(group, element, code, length))
        else:
            raise _Fallback

    def encode(dataset, implicit_vr: bool, skip: int = -1) -> bytes:
        fp = DicomBytesIO()
        fp.is_little_endian = True
        fp.is_implicit_VR = implicit_vr
        for tag in sorted(dataset.keys()):
            if tag == skip:
                continue
            elem = dataset.get_item(tag)
            if (
                isinstance(elem, RawDataElement)
                and elem.is_little_endian
                and bool(elem.is_implicit_VR) == implicit_vr
                and isinstance(elem.value, bytes)
                and elem.length != 0xFFFFFFFF
                and len(elem.value) == elem.length
                and elem.VR != "SQ"
            ):
                header(fp, tag, elem.VR, elem.length, implicit_vr)
                fp.write(elem.value)
                continue
            elem = dataset[tag]
            data = _value_bytes(elem)
            if data is not None:
                header(fp, tag, elem.VR, len(data), implicit_vr)
                fp.write(data)
            elif elem.VR == "SQ":
                header(fp, tag, "SQ", 0xFFFFFFFF, implicit_vr)
                for item in elem.value or []:
                    fp.write(pack_implicit(0xFFFE, 0xE000, 0xFFFFFFFF))
                    fp.write(encode(item, implicit_vr))
                    fp.write(pack_implicit(0xFFFE, 0xE00D, 0))
                fp.write(pack_implicit(0xFFFE, 0xE0DD, 0))
            else:
                write_data_element(fp, elem, encodings)
        return fp.getvalue()

    try:
        meta_bytes = encode(meta, False, skip=0x00020000)
        body = encode(ds, bool(implicit))
    except _Fallback:
        return None
    # File Meta Information Group Length, computed afresh (PS3.10 7.1).
    length = struct.pack("<HH2sHI", 2, 0, b"UL", 4, len(meta_bytes))
    return b"\x00" * 128 + b"DICM" + length + meta_bytes + body


def encode(ds) -> bytes:
    """The file's bytes: preamble, file meta (its group length computed afresh) and data set."""
    data = _fast_encode(ds)
    if data is not None:
        return data
    buffer = io.BytesIO()
    try:
        ds.save_as(buffer, enforce_file_format=False)
    except (TypeError, ValueError):
        # Elements read as implicit VR from a file whose meta says explicit carry no VR yet:
        # converting them (iterall) fills it in from the dictionary, then the write succeeds.
        for _ in ds.iterall():
            pass
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=False)
    return buffer.getvalue()
