"""Reading and replacing element values without converting the rest of the data set.

pydicom leaves every element it read as a raw element (bytes) until it is accessed. The walk reads
ASCII values straight from those bytes and writes changed strings back as raw bytes, so that
neither the untouched neighbours nor the pixel data are ever decoded. Values with bytes outside
ASCII are read through pydicom, which decodes them with the data set's Specific Character Set
(PS3.5 6.1, e.g. ISO 2022 IR 87 for Japanese).
"""

from __future__ import annotations

import functools

from xaicli.anonymize.settings import NUMERIC_VRS


@functools.lru_cache(maxsize=8192)
def keyword(tag: int) -> str:
    from pydicom.datadict import keyword_for_tag

    return keyword_for_tag(tag) or ""


@functools.lru_cache(maxsize=8192)
def dictionary_vr(tag: int) -> str | None:
    """The VR pydicom's data dictionary gives (the first of "US or SS"); None if unknown."""
    from pydicom.datadict import dictionary_VR

    try:
        return dictionary_VR(tag).split(" or ")[0]
    except KeyError:
        return None


def tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def vr_of(ds, tag: int) -> str:
    elem = ds._dict.get(tag)  # the raw element as read: no conversion, no Tag() round trip
    vr = getattr(elem, "VR", None)
    if vr in (None, "UN"):
        # pydicom converts UN to the dictionary VR when the element is accessed: follow it.
        return dictionary_vr(tag) or vr or "UN"
    return vr


def is_raw_bytes(elem) -> bool:
    from pydicom.dataelem import RawDataElement

    return isinstance(elem, RawDataElement) and isinstance(elem.value, bytes)


def strings(value) -> list[str]:
    """An element value as a list of strings ([] for none)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [str(v) for v in value]
    return [str(value)]


def _plain(data: bytes) -> bool:
    """ASCII without escape sequences: the same text in every character set. (ISO 2022 code
    extensions, e.g. IR 87, switch sets with ESC and are 7-bit too: PS3.5 6.1.2.5.)"""
    return data.isascii() and b"\x1b" not in data


def values_of(ds, tag: int) -> list[str]:
    """The values of a string element, stripped; read from its raw bytes when they are ASCII."""
    elem = ds._dict.get(tag)
    if elem is None:
        return []
    if is_raw_bytes(elem) and _plain(elem.value):
        text = elem.value.decode("ascii").strip("\x00 ")
        return [v.strip("\x00 ") for v in text.split("\\")] if text else []
    return [v.strip("\x00 ") for v in strings(ds[tag].value)]


def text(ds, tag: int) -> str:
    """An element's whole value as one stripped string ("" when absent or empty)."""
    if ds is None or tag not in ds._dict:
        return ""
    return "\\".join(values_of(ds, tag)).strip()


def set_value(ds, tag: int, vr: str, value) -> None:
    """Replace an element's value. ASCII strings go in as encoded bytes (a raw element, as the
    reader left its neighbours): no conversion or re-validation of the rest of the data set.
    Other strings go in as text, which pydicom encodes with the data set's character set."""
    from pydicom.dataelem import DataElement, RawDataElement

    old = ds._dict.get(tag)
    if vr != "SQ" and vr not in NUMERIC_VRS and (value is None or (isinstance(value, str) and value.isascii())):
        data = (value or "").encode("ascii")
        if len(data) % 2:
            data += b"\x00" if vr == "UI" else b" "
        implicit = getattr(old, "is_implicit_VR", None)
        little = getattr(old, "is_little_endian", None)
        if isinstance(old, RawDataElement) and implicit is not None and little is not None:
            ds._dict[tag] = RawDataElement(old.tag, vr, len(data), data, 0, implicit, little, True, False)
            return
    ds[tag] = DataElement(tag, vr, value)


def set_strings(ds, tag: int, vr: str, values: list[str]) -> None:
    set_value(ds, tag, vr, "\\".join(values) if values else None)


def put(ds, tag: int, vr: str, value: str) -> None:
    """Add or replace a string element (as raw bytes when the data set is little endian)."""
    from pydicom.dataelem import DataElement, RawDataElement
    from pydicom.tag import BaseTag

    implicit, little = getattr(ds, "original_encoding", (None, None))
    if little is True and implicit is not None and value.isascii():
        data = value.encode("ascii")
        if len(data) % 2:
            data += b"\x00" if vr == "UI" else b" "
        ds._dict[BaseTag(tag)] = RawDataElement(BaseTag(tag), vr, len(data), data, 0, implicit, True, True, False)
    else:
        ds[tag] = DataElement(tag, vr, value)


def remove(ds, tag: int) -> None:
    del ds._dict[tag]


def is_registered_uid(value: str) -> bool:
    """A UID of the standard (SOP classes, transfer syntaxes, ...; PS3.6 Annex A)."""
    from pydicom.uid import UID_dictionary

    return value.strip("\x00 ") in UID_dictionary


@functools.lru_cache(maxsize=4096)
def replaces_unlisted_uid(tag: int) -> bool:
    """False for UIDs that name a class, syntax or coding scheme rather than an instance."""
    name = keyword(tag)
    return not (name.endswith("ClassUID") or "TransferSyntax" in name or name == "CodingSchemeUID")
