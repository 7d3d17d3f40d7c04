"""De-identify DICOM files with the PS3.15 Annex E Basic Profile, at every depth, in parallel.

One file: read with pydicom (pixel data stays encoded and untouched), walk the file meta and the
data set recursively through every sequence item, apply one resolved action per attribute
(:mod:`xaicli.anonymize.profile`), mark the result (Patient Identity Removed, De-identification
Method and its Code Sequence, Longitudinal Temporal Information Modified; PS3.15 E.1.1 and
PS3.3 C.12.1), and write it atomically beside nothing it could overwrite.

Identities are keyed (HMAC-SHA256, RFC 2104) so the same original maps to the same replacement in
every file, folder and run that shares the key, and nothing is reversible without it:
UIDs become ``2.25.<128-bit integer>`` (PS3.5 B.2), patients a pseudonym, dates move by one keyed
offset per patient (Retain Longitudinal Temporal Information with Modified Dates, E.3.6).

Reasons and audit rows carry tags, keywords and action codes, never a value: headers hold patient
data, and an audit must not become a copy of what was removed.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import hmac
import io
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from xaicli.anonymize.profile import PATIENT_ID, PATIENT_NAME, Rules, code_items

DEFAULT_BURNED_IN_MODALITIES = ("US", "SC", "OT", "XA", "RF", "ES")
TEXT_VRS = {"LO", "SH", "ST", "LT", "UT", "UC", "PN"}
DUMMY = {
    "PN": "ANONYMOUS",
    "LO": "ANONYMIZED",
    "SH": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "UT": "ANONYMIZED",
    "UC": "ANONYMIZED",
    "CS": "ANONYMIZED",
    "AE": "ANONYMIZED",
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
    "US": 0,
    "SS": 0,
    "UL": 0,
    "SL": 0,
    "FL": 0.0,
    "FD": 0.0,
}
# Attributes the engine writes itself after the walk (PS3.15 E.1.1).
MARK_TAGS = {0x00120062, 0x00120063, 0x00120064, 0x00280303}
# File meta attributes that carry no patient data and must stay as they are.
META_KEEP = {0x00020000, 0x00020001, 0x00020002, 0x00020010, 0x00020012, 0x00020013, 0x00020016}
META_PRIVATE = {0x00020100, 0x00020102}  # Private Information Creator UID / Private Information
BURNED_IN_ANNOTATION = 0x00280301
PIXEL_DATA = 0x7FE00010


@dataclass
class Settings:
    """Everything a worker needs; pickled once per worker process."""

    rules: Rules
    key: bytes
    burned_in: str = "quarantine"  # quarantine | mask | keep
    mask_boxes: tuple[tuple[int, int, int, int], ...] = ()
    burned_in_modalities: frozenset[str] = frozenset(DEFAULT_BURNED_IN_MODALITIES)
    overwrite: bool = False
    dry_run: bool = False
    version: str = ""


@dataclass
class FileResult:
    src: str
    dst: str | None
    status: str  # ok | quarantined | held back | skipped | failed
    reason: str = ""
    burned_in: str = ""  # "YES", "unknown (US)" or ""
    actions: list[tuple[str, str, str, str]] = field(default_factory=list)  # (location, keyword, vr, action)
    masked: bool = False


DICOMDIR_REASON = "DICOMDIR: regenerate it from the de-identified files"
MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"


def is_dicomdir(ds) -> bool:
    meta = getattr(ds, "file_meta", None)
    klass = _text(meta, 0x00020002) if meta is not None else ""
    return klass == MEDIA_DIRECTORY or 0x00041220 in ds._dict  # Directory Record Sequence


# ------------------------------------------------------------------------------ keyed identities


class Keyed:
    """HMAC-SHA256 derived replacements; cached per process (many files share study UIDs)."""

    def __init__(self, key: bytes):
        self.key = key
        self._uids: dict[str, str] = {}

    def _digest(self, purpose: bytes, text: str) -> bytes:
        return hmac.new(self.key, purpose + b"\x00" + text.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()

    def uid(self, value: str) -> str:
        from pydicom.uid import UID_dictionary

        value = value.strip("\x00 ")
        if not value or value in UID_dictionary:
            return value  # standard UIDs (SOP classes, transfer syntaxes, ...) identify no one
        new = self._uids.get(value)
        if new is None:
            # 128 bits under the 2.25 root: at most 44 characters, well inside the 64 allowed.
            new = "2.25." + str(int.from_bytes(self._digest(b"uid", value)[:16], "big"))
            self._uids[value] = new
        return new

    def pseudonym(self, identity: str) -> str:
        return "ANON-" + self._digest(b"patient", identity).hex()[:16].upper()

    def date_offset(self, identity: str) -> int:
        """Days to add to every date of this patient: between -3650 and -1, fixed per key."""
        return -(1 + int.from_bytes(self._digest(b"date", identity)[:4], "big") % 3650)


def is_registered_uid(value: str) -> bool:
    from pydicom.uid import UID_dictionary

    return value.strip("\x00 ") in UID_dictionary


# ---------------------------------------------------------------------------------- the walk


class _Context:
    def __init__(self, settings: Settings, keyed: Keyed, identity: str, identifiers: list[str]):
        self.rules = settings.rules
        self.keyed = keyed
        self.pseudonym = keyed.pseudonym(identity)
        self.offset = keyed.date_offset(identity)
        self.modified_dates = "retain-long-modified-dates" in settings.rules.options
        self.actions: list[tuple[str, str, str, str]] = []
        self._scrub = (
            re.compile("|".join(re.escape(s) for s in sorted(identifiers, key=len, reverse=True)), re.IGNORECASE)
            if identifiers
            else None
        )

    def record(self, location: str, tag: int, vr: str, action: str) -> None:
        self.actions.append((location, _keyword(tag), vr, action))

    def scrub(self, text: str) -> str:
        return self._scrub.sub("***", text) if self._scrub is not None else text


@functools.lru_cache(maxsize=8192)
def _keyword(tag: int) -> str:
    from pydicom.datadict import keyword_for_tag

    return keyword_for_tag(tag) or ""


@functools.lru_cache(maxsize=8192)
def _dictionary_vr(tag: int) -> str | None:
    from pydicom.datadict import dictionary_VR

    try:
        return dictionary_VR(tag).split(" or ")[0]
    except KeyError:
        return None


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _vr_of(ds, tag: int) -> str:
    elem = ds._dict.get(tag)  # the raw element as read: no conversion, no Tag() round trip
    vr = getattr(elem, "VR", None)
    if vr in (None, "UN"):
        # pydicom converts UN to the dictionary VR when the element is accessed: follow it.
        return _dictionary_vr(tag) or vr or "UN"
    return vr


NUMERIC_VRS = {"US", "SS", "UL", "SL", "FL", "FD", "AT", "OB", "OW", "OF", "OD", "OL", "OV", "SV", "UV"}


def _set(ds, tag: int, vr: str, value) -> None:
    """Replace an element's value. String values go in as encoded bytes (a raw element, as the
    reader left its neighbours): no conversion or re-validation of the rest of the data set."""
    from pydicom.dataelem import DataElement, RawDataElement

    old = ds._dict.get(tag)
    if vr != "SQ" and vr not in NUMERIC_VRS and (value is None or isinstance(value, str)):
        text = (value or "").encode("ascii", "replace")
        if len(text) % 2:
            text += b"\x00" if vr == "UI" else b" "
        implicit = getattr(old, "is_implicit_VR", None)
        little = getattr(old, "is_little_endian", None)
        if isinstance(old, RawDataElement) and implicit is not None and little is not None:
            ds._dict[tag] = RawDataElement(old.tag, vr, len(text), text, 0, implicit, little, True, False)
            return
    ds[tag] = DataElement(tag, vr, value)


def _raw_strings(ds, tag: int) -> list[str]:
    """The values of a string element, read from its raw bytes when it is still raw (fast)."""
    from pydicom.dataelem import RawDataElement

    elem = ds._dict.get(tag)
    if isinstance(elem, RawDataElement) and isinstance(elem.value, bytes):
        text = elem.value.decode("ascii", "replace").strip("\x00 ")
        return [v.strip("\x00 ") for v in text.split("\\")] if text else []
    return _strings(ds[tag].value)


def _strings(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [str(v) for v in value]
    return [str(value)]


def _shift_date(text: str, days: int) -> str | None:
    text = text.strip()
    if len(text) < 8 or not text[:8].isdigit():
        return None
    try:
        day = _dt.date(int(text[:4]), int(text[4:6]), int(text[6:8])) + _dt.timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    return day.strftime("%Y%m%d") + text[8:]


def _shift_values(values: list[str], vr: str, days: int) -> list[str] | None:
    out = []
    for value in values:
        parts = value.split("-") if vr == "DA" else [value]
        shifted = []
        for part in parts:
            if part == "":
                shifted.append("")
                continue
            new = _shift_date(part, days)
            if new is None:
                return None
            shifted.append(new)
        out.append("-".join(shifted))
    return out


def _walk(ds, ctx: _Context, prefix: str, depth: int, scrub: bool) -> None:
    rules = ctx.rules
    creators: dict[tuple[int, int], str] = {}
    for tag in list(ds.keys()):
        tag = int(tag)
        group = tag >> 16
        location = prefix + _tag_text(tag)
        if group & 1:
            _private(ds, tag, ctx, location, creators)
            continue
        if depth == 0 and tag in MARK_TAGS:
            continue  # rewritten after the walk
        if tag & 0xFFFF == 0 and group != 0x0002:
            # Retired group lengths would be wrong once elements are removed: drop them.
            del ds._dict[tag]
            ctx.record(location, tag, "UL", "X")
            continue
        if group == 0x0002 and tag in META_KEEP:
            continue
        if tag in META_PRIVATE:
            del ds._dict[tag]
            ctx.record(location, tag, "OB", "X")
            continue
        action = rules.action_for(tag)
        if action is None:
            vr = _vr_of(ds, tag)
            if vr == "SQ":
                _items(ds, tag, ctx, location, depth, scrub)
            elif vr == "UI" and group != 0x0002:
                _unlisted_uid(ds, tag, ctx, location)
            elif scrub and vr in TEXT_VRS:
                _scrub(ds, tag, ctx, location, vr)
            continue
        _apply(ds, tag, action, ctx, location, depth, scrub)


def _items(ds, tag: int, ctx: _Context, location: str, depth: int, scrub: bool) -> None:
    elem = ds[tag]
    if elem.VR != "SQ" or not elem.value:
        return
    for index, item in enumerate(elem.value):
        if PATIENT_ID in item._dict or PATIENT_NAME in item._dict:
            # An item that names its own patient (a DICOMDIR PATIENT record, a referenced patient)
            # gets that patient's pseudonym and date offset, not those of the file's patient.
            identity = _identifiers(item)[0]
            if identity:
                saved = ctx.pseudonym, ctx.offset
                ctx.pseudonym, ctx.offset = ctx.keyed.pseudonym(identity), ctx.keyed.date_offset(identity)
                try:
                    _walk(item, ctx, f"{location}[{index}].", depth + 1, scrub)
                finally:
                    ctx.pseudonym, ctx.offset = saved
                continue
        _walk(item, ctx, f"{location}[{index}].", depth + 1, scrub)


def _unlisted_uid(ds, tag: int, ctx: _Context, location: str) -> None:
    # A UID the table does not list (private-looking or newer than the table) may still point
    # back to the source system: replace it unless it is a standard (registered) UID or names a
    # class (a private SOP Class UID names a kind of object, not a patient; remapping it would
    # also part the data set from its file meta, which keeps Media Storage SOP Class UID).
    if "retain-uids" in ctx.rules.options or not replaces_unlisted_uid(tag):
        return
    values = _raw_strings(ds, tag)
    if not values or all(is_registered_uid(v) for v in values):
        return
    _set(ds, tag, "UI", "\\".join(ctx.keyed.uid(v) for v in values))
    ctx.record(location, tag, "UI", "U")


@functools.lru_cache(maxsize=4096)
def replaces_unlisted_uid(tag: int) -> bool:
    """False for UIDs that name a class, syntax or coding scheme rather than an instance."""
    keyword = _keyword(tag)
    return not (keyword.endswith("ClassUID") or "TransferSyntax" in keyword or keyword == "CodingSchemeUID")


def _scrub(ds, tag: int, ctx: _Context, location: str, vr: str) -> None:
    elem = ds[tag]
    values = _strings(elem.value)
    cleaned = [ctx.scrub(v) for v in values]
    if cleaned != values:
        elem.value = cleaned if len(cleaned) > 1 else cleaned[0]
        ctx.record(location, tag, vr, "C")


def _private(ds, tag: int, ctx: _Context, location: str, creators: dict) -> None:
    rules = ctx.rules
    if tag in rules.user_keep:
        return
    group, element = tag >> 16, tag & 0xFFFF
    if rules.private_action == "C" and rules.safe_private:
        if 0x0010 <= element <= 0x00FF:
            creator = str(ds[tag].value).strip()
            creators[(group, element)] = creator
            if any(c == creator and g == group for c, g, _ in rules.safe_private):
                return
        elif element >= 0x1000:
            creator = creators.get((group, element >> 8))
            if creator is None and (group << 16 | element >> 8) in ds:
                creator = str(ds[group << 16 | element >> 8].value).strip()
            if (creator, group, element & 0xFF) in rules.safe_private:
                if getattr(ds._dict.get(tag), "VR", None) == "SQ":
                    # A safe private sequence keeps its place; its items still get the profile.
                    _items(ds, tag, ctx, location, location.count("[") + 1, False)
                return
    vr = getattr(ds._dict.get(tag), "VR", None) or "UN"
    del ds._dict[tag]
    ctx.record(location, tag, vr, "X")


def _apply(ds, tag: int, action: str, ctx: _Context, location: str, depth: int, scrub: bool) -> None:
    vr = _vr_of(ds, tag)
    if action[0] in "GO":  # curve (50xx) or overlay (60xx) group
        if action[1] == "C" and vr in TEXT_VRS:
            # Clean Graphics keeps the bitmap and the curve; their labels, descriptions and
            # comments are free text like any descriptor: cleaned the same way.
            _scrub(ds, tag, ctx, location, vr)
            return
        if action[1] in "KC":
            return
        del ds._dict[tag]
        ctx.record(location, tag, vr, "X")
        return
    if action == "X":
        del ds._dict[tag]
    elif action == "K":
        if vr == "SQ" and tag not in ctx.rules.user_keep:
            _items(ds, tag, ctx, location, depth, scrub)
    elif action == "Z":
        _set(ds, tag, vr, [] if vr == "SQ" else None)
    elif action == "D":
        if vr == "UI":
            _replace_uids(ds, tag, ctx)
        else:
            _set(ds, tag, vr, [] if vr == "SQ" else DUMMY.get(vr))
    elif action == "P":
        _set(ds, tag, vr if vr in ("PN", "LO") else "LO", ctx.pseudonym)
    elif action == "U":
        if vr == "SQ":
            _items(ds, tag, ctx, location, depth, scrub)
        elif vr == "UI":
            # Under retain-uids the table's own column says K for the UIDs it keeps; the few it
            # does not (Digital Signature UID, UID) are still replaced.
            _replace_uids(ds, tag, ctx)
        else:
            del ds._dict[tag]
            action = "X"
    elif action == "C":
        action = _clean(ds, tag, vr, ctx, location, depth)
        if action is None:
            return
    ctx.record(location, tag, vr, action)


def _replace_uids(ds, tag: int, ctx: _Context) -> None:
    new = [ctx.keyed.uid(v) for v in _raw_strings(ds, tag)]
    _set(ds, tag, "UI", "\\".join(new) if new else None)


def _clean(ds, tag: int, vr: str, ctx: _Context, location: str, depth: int) -> str | None:
    """C: keep the meaning, drop what identifies (dates moved by the patient's offset; texts with
    the patient's own identifiers masked; sequences kept with the whole profile applied inside)."""
    if vr == "SQ":
        _items(ds, tag, ctx, location, depth, scrub=True)
        return None
    elem = ds[tag]
    if vr in ("DA", "DT"):
        if not ctx.modified_dates:
            return None
        values = _strings(elem.value)
        shifted = _shift_values(values, vr, ctx.offset)
        if shifted is None:
            _set(ds, tag, vr, None)  # a date we cannot read cannot be moved: empty it
            return "Z"
        elem.value = shifted if len(shifted) > 1 else (shifted[0] if shifted else None)
        return "C"
    if vr in TEXT_VRS:
        values = _strings(elem.value)
        cleaned = [ctx.scrub(v) for v in values]
        if cleaned != values:
            elem.value = cleaned if len(cleaned) > 1 else cleaned[0]
        return "C"
    return "C"


# --------------------------------------------------------------------------------- one file


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
    if not tags or tags != sorted(tags) or _truncated(ds):
        return 0
    if not all(t >> 16 & 1 or t & 0xFFFF == 0 or dictionary_has_tag(t) for t in tags):
        return 0
    return len(tags)


def _truncated(ds) -> bool:
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


def _text(ds, tag: int) -> str:
    """An element's value as text without converting the element (raw bytes decoded as UTF-8)."""
    from pydicom.dataelem import RawDataElement

    elem = ds._dict.get(tag)
    if elem is None:
        return ""
    if isinstance(elem, RawDataElement):
        value = elem.value
        return value.decode("utf-8", "surrogateescape").strip("\x00 ") if isinstance(value, bytes) else ""
    value = elem.value
    return "" if value is None else str(value).strip()


def _identifiers(ds) -> tuple[str, list[str]]:
    """(identity for keyed pseudonyms and date offsets, strings to mask in cleaned texts)."""
    pid = _text(ds, PATIENT_ID)
    name = _text(ds, PATIENT_NAME)
    identity = pid or name
    found = {pid, _text(ds, 0x00080050), _text(ds, 0x00100030)}  # Accession Number, Birth Date
    found.update(part.strip() for part in re.split(r"[\^=\s,\\]+", name))
    found.update(v.strip() for v in _text(ds, 0x00101000).split("\\"))  # Other Patient IDs
    return identity, [s for s in found if len(s) >= 3]


def burned_in_status(ds, modalities: frozenset[str]) -> str:
    if PIXEL_DATA not in ds:
        return ""
    flag = _text(ds, BURNED_IN_ANNOTATION).upper()
    if flag == "YES":
        return "YES"
    if flag == "NO":
        return ""
    modality = _text(ds, 0x00080060).upper()
    return f"unknown ({modality})" if modality in modalities else ""


def _mask_pixels(ds, boxes) -> None:
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


def _put(ds, tag: int, vr: str, text: str) -> None:
    """Add or replace a string element (as raw bytes when the data set is little endian)."""
    from pydicom.dataelem import DataElement, RawDataElement
    from pydicom.tag import BaseTag

    implicit, little = getattr(ds, "original_encoding", (None, None))
    if little is True and implicit is not None:
        data = text.encode("ascii")
        if len(data) % 2:
            data += b" "
        ds._dict[BaseTag(tag)] = RawDataElement(BaseTag(tag), vr, len(data), data, 0, implicit, True, True, False)
    else:
        ds[tag] = DataElement(tag, vr, text)


def _mark(ds, settings: Settings, masked: bool) -> None:
    """Patient Identity Removed, De-identification Method (+ Code Sequence), Longitudinal
    Temporal Information Modified (PS3.15 E.1.1, PS3.3 C.12.1.1.1)."""
    from pydicom.dataelem import DataElement

    options = settings.rules.options
    if not settings.rules.safe_private:
        # No safe private list (xaicli has no built-in Table E.3.10-1): every private attribute
        # went, so the file must not claim the Retain Safe Private Option (113111).
        options = tuple(o for o in options if o != "retain-safe-private")
    _put(ds, 0x00120062, "CS", "YES")
    _put(ds, 0x00120063, "LO", f"xaicli {settings.version} PS3.15 E.1 Basic Profile"[:64])
    ds[0x00120064] = DataElement(0x00120064, "SQ", _code_sequence(options, masked))
    if "retain-long-full-dates" in options:
        _put(ds, 0x00280303, "CS", "UNMODIFIED")
    elif "retain-long-modified-dates" in options:
        _put(ds, 0x00280303, "CS", "MODIFIED")
    else:
        _put(ds, 0x00280303, "CS", "REMOVED")
    if masked:
        ds.BurnedInAnnotation = "NO"


def anonymize_dataset(ds, settings: Settings, keyed: Keyed | None = None, data: bytes = b"") -> tuple[list, bool]:
    """De-identify ``ds`` in place (file meta included); returns (actions, pixels masked).
    ``data``, the file's bytes, keys the identity of a file that names no patient and no study."""
    keyed = keyed or Keyed(settings.key)
    identity, identifiers = _identifiers(ds)
    if not identity:
        # No patient named: one identity per study (its files keep one offset), else per file;
        # never one identity shared by every unnamed file of the batch.
        study, sop = _text(ds, 0x0020000D), _text(ds, 0x00080018)
        if study:
            identity = f"study:{study}"
        elif sop:
            identity = f"instance:{sop}"
        elif data:
            identity = "file:" + hashlib.sha256(data).hexdigest()
    ctx = _Context(settings, keyed, identity, identifiers)
    meta = getattr(ds, "file_meta", None)
    if meta is not None and len(meta):
        _walk(meta, ctx, "meta:", 1, False)
    _walk(ds, ctx, "", 0, False)
    return ctx.actions, False


_MADE_DIRS: set[Path] = set()


def _write_new(path: Path, data: bytes, overwrite: bool) -> None:
    """Write atomically (temporary file + link/rename); never replace a file unless told to."""
    if path.parent not in _MADE_DIRS:
        path.parent.mkdir(parents=True, exist_ok=True)
        _MADE_DIRS.add(path.parent)
    # Our own temporary name with O_EXCL: tempfile.mkstemp costs ~20x more per file here.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileNotFoundError:  # the folder went away since we made it
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if overwrite:
            os.replace(tmp, path)
        else:
            # link() fails if the name exists: no window in which another writer's file is lost.
            os.link(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_STRING_VRS = {"AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}


class _Fallback(Exception):
    """Something the fast encoder does not handle: pydicom writes the whole file instead."""


def _value_bytes(elem) -> bytes | None:
    """Bytes of a converted element holding plain ASCII strings or one US/UL; else None."""
    import struct

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
    import struct

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


def _encode(ds) -> io.BytesIO:
    data = _fast_encode(ds)
    if data is not None:
        return io.BytesIO(data)
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
    return buffer


def quiet_pydicom() -> None:
    """pydicom's warnings and log lines quote element values (patient data): silence them."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", module=r"pydicom(\..*)?")
    warnings.filterwarnings("ignore", category=UserWarning, message=r".*(VR|value|Invalid|Expected).*")
    logger = logging.getLogger("pydicom")
    logger.handlers[:] = [logging.NullHandler()]
    logger.propagate = False
    logger.setLevel(logging.CRITICAL + 1)


_KEYED: Keyed | None = None
_SETTINGS: Settings | None = None


def process_file(src: str, dst: str, quarantine: str | None, settings: Settings, keyed: Keyed) -> FileResult:
    """Read, de-identify and write one file; every failure becomes a result, never an exception."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's warnings quote values
        return _process_file(src, dst, quarantine, settings, keyed)


def _process_file(src: str, dst: str, quarantine: str | None, settings: Settings, keyed: Keyed) -> FileResult:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        data = Path(src).read_bytes()  # one read; pydicom then parses from memory
    except OSError as exc:
        return FileResult(src, None, "failed", f"cannot be read ({exc.strerror or type(exc).__name__})")
    start = dicom_start(data)
    if start is None:
        return FileResult(src, None, "skipped", "not a DICOM file")
    if start:
        data = data[start:]  # stray bytes before a headerless data set
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except InvalidDicomError:
        return FileResult(src, None, "skipped", "not a DICOM file")
    except Exception as exc:  # noqa: BLE001 - any reader failure is this file's, not the batch's
        return FileResult(src, None, "failed", f"cannot be read ({type(exc).__name__})")
    if len(ds) == 0:
        if len(getattr(ds, "file_meta", []) or []):
            return FileResult(src, None, "failed", "no data set after the file meta (truncated?)")
        return FileResult(src, None, "skipped", "not a DICOM file (no data elements)")
    if _truncated(ds):
        return FileResult(src, None, "failed", "file is truncated (its last element is incomplete)")
    if is_dicomdir(ds):
        # Its records point at each other by byte offset: rewriting it moves them. A de-identified
        # set of files gets a new DICOMDIR from a tool that builds one (e.g. pydicom's FileSet).
        return FileResult(src, None, "held back", DICOMDIR_REASON)
    try:
        burned = burned_in_status(ds, settings.burned_in_modalities)
        actions, _ = anonymize_dataset(ds, settings, keyed, data)
        masked = False
        target, status = dst, "ok"
        if burned:
            if settings.burned_in == "mask" and settings.mask_boxes:
                try:
                    _mask_pixels(ds, settings.mask_boxes)
                except Exception as exc:  # noqa: BLE001 - no decoder, big endian, odd layout
                    return FileResult(src, None, "failed", f"burned-in pixels cannot be masked ({type(exc).__name__})", burned)
                masked = True
            elif settings.burned_in == "quarantine":
                target, status = quarantine, "quarantined"
        _mark(ds, settings, masked)
        buffer = _encode(ds)
    except Exception as exc:  # noqa: BLE001
        return FileResult(src, None, "failed", f"cannot be de-identified ({type(exc).__name__})")
    reason = f"burned-in annotation {burned}" if status == "quarantined" else ""
    result = FileResult(src, target, status, reason, burned, actions, masked)
    if target is None:
        return result
    if settings.dry_run:
        # Say what the real run would: an output already there fails without --overwrite.
        if not settings.overwrite and os.path.lexists(target):
            return FileResult(src, target, "failed", "output exists already (pass --overwrite to replace it)", burned)
        return result
    try:
        _write_new(Path(target), buffer.getvalue(), settings.overwrite)
    except FileExistsError:
        return FileResult(src, target, "failed", "output exists already (pass --overwrite to replace it)", burned)
    except OSError as exc:
        return FileResult(src, target, "failed", f"output cannot be written ({exc.strerror or type(exc).__name__})", burned)
    return result


def _init_worker(settings: Settings) -> None:
    global _SETTINGS, _KEYED
    quiet_pydicom()
    _SETTINGS = settings
    _KEYED = Keyed(settings.key)


def _run_chunk(chunk: list[tuple[str, str, str | None]]) -> list[FileResult]:
    assert _SETTINGS is not None and _KEYED is not None
    return [process_file(src, dst, q, _SETTINGS, _KEYED) for src, dst, q in chunk]


def run_batch(plan: list[tuple[str, str, str | None]], settings: Settings, jobs: int) -> list[FileResult]:
    """Process (src, dst, quarantine dst) triples, in ``jobs`` processes; results in plan order."""
    quiet_pydicom()
    if jobs <= 1 or len(plan) < 16:
        keyed = Keyed(settings.key)
        return [process_file(src, dst, q, settings, keyed) for src, dst, q in plan]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    import pydicom  # noqa: F401 - imported before forking so workers inherit it

    size = max(4, min(64, len(plan) // (jobs * 4) or 1))
    chunks = [plan[i : i + size] for i in range(0, len(plan), size)]
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    results: list[FileResult] = []
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(settings,)) as pool:
        futures = [pool.submit(_run_chunk, chunk) for chunk in chunks]
        for chunk, future in zip(chunks, futures, strict=True):
            try:
                results.extend(future.result())
            except BrokenProcessPool:
                results.extend(FileResult(s, None, "failed", "worker process died") for s, _, _ in chunk)
    return results


PSEUDONYM_RE = re.compile(r"^ANON-[0-9A-F]{16}$")


def scan_findings(ds, rules: Rules, modalities: frozenset[str]) -> list[tuple[str, str, str]]:
    """(location, keyword, problem) for everything the profile says must not be in ``ds``, at
    every depth (inside sequences that should have been emptied too): attributes to remove (X),
    to empty (Z) or to replace by a dummy (D) still holding another value, UIDs (U) not replaced,
    patient names and IDs that are not pseudonyms, private attributes, curves and overlays, and
    unmarked files. Problems name the attribute, never its value."""
    findings: list[tuple[str, str, str]] = []

    def walk(item, prefix: str, depth: int) -> None:
        for tag in list(item.keys()):
            tag = int(tag)
            location = prefix + _tag_text(tag)
            if tag >> 16 & 1:
                if tag in rules.user_keep:
                    continue
                if rules.private_action == "C" and rules.safe_private and _safe_private_present(item, tag, rules):
                    if getattr(item._dict.get(tag), "VR", None) == "SQ":
                        for index, child in enumerate(item[tag].value or []):
                            walk(child, f"{location}[{index}].", depth + 1)
                    continue
                findings.append((location, "", "private attribute"))
                continue
            if tag in META_PRIVATE:
                findings.append((location, _keyword(tag), "private information in file meta"))
                continue
            if (depth == 0 and tag in MARK_TAGS) or (tag >> 16 == 0x0002 and tag in META_KEEP) or tag in rules.user_keep:
                continue
            action = rules.action_for(tag)
            vr = _vr_of(item, tag)
            problem = _residual(item, tag, vr, action, rules)
            if problem:
                findings.append((location, _keyword(tag), problem))
            if vr == "SQ":
                try:
                    children = item[tag].value or []
                except Exception:  # noqa: BLE001 - a sequence pydicom cannot parse
                    findings.append((location, _keyword(tag), "sequence cannot be read"))
                    continue
                for index, child in enumerate(children if item[tag].VR == "SQ" else []):
                    walk(child, f"{location}[{index}].", depth + 1)

    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        walk(meta, "meta:", 1)
    walk(ds, "", 0)
    if str(ds.get("PatientIdentityRemoved", "")).upper() != "YES":
        findings.append(("(0012,0062)", "PatientIdentityRemoved", "file not marked: Patient Identity Removed is not YES"))
    if "DeidentificationMethod" not in ds and "DeidentificationMethodCodeSequence" not in ds:
        findings.append(("(0012,0063)", "DeidentificationMethod", "file not marked: no De-identification Method"))
    burned = burned_in_status(ds, modalities)
    if burned:
        findings.append(("(0028,0301)", "BurnedInAnnotation", f"burned-in annotation {burned}"))
    return findings


def _residual(item, tag: int, vr: str, action: str | None, rules: Rules) -> str:
    """What is wrong with one attribute given its resolved action ("" when nothing is)."""
    if action is None:
        if vr == "UI" and "retain-uids" not in rules.options and replaces_unlisted_uid(tag) and tag >> 16 != 0x0002:
            if any(not _replaced_uid(v) for v in _values(item, tag)):
                return "UID the profile replaces (unlisted UID) still original"
        return ""
    if action[0] in "GO":
        return "curve or overlay the profile removes" if action[1] == "X" else ""
    if action == "X":
        return "attribute the profile removes (X)"
    if action in ("Z", "D") and vr == "SQ":
        return f"sequence the profile empties ({action}) still has items" if _values(item, tag) else ""
    if action == "Z":
        return "attribute the profile empties (Z) still has a value" if _values(item, tag) else ""
    if action == "D":
        values = _values(item, tag)
        if vr == "UI":
            return "UID the profile replaces (D) still original" if any(not _replaced_uid(v) for v in values) else ""
        dummy = DUMMY.get(vr)
        if values and not all(_is_dummy(v, dummy) for v in values):
            return "attribute the profile replaces by a dummy (D) holds another value"
        return ""
    if action == "P":
        if any(not PSEUDONYM_RE.match(str(v).strip()) for v in _values(item, tag)):
            return "patient name or ID is not a pseudonym"
        return ""
    if action == "U" and vr == "UI":
        if any(not _replaced_uid(v) for v in _values(item, tag)):
            return "UID the profile replaces (U) still original"
        return ""
    if action == "U" and vr != "SQ":
        return "attribute the profile removes (U on a non-UID) is present"
    return ""


def _values(item, tag: int) -> list:
    """The values of one element as a list ([] when empty); items for a sequence."""
    elem = item._dict.get(tag)
    if vr_is_string(elem):
        return [v for v in _raw_strings(item, tag) if v]
    try:
        value = item[tag].value
    except Exception:  # noqa: BLE001 - unreadable counts as a value: it is not empty
        return ["?"]
    if value is None or value == b"" or value == "":
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ in ("MultiValue", "Sequence"):
        return [v for v in value if v is not None and v != ""]
    return [value]


def vr_is_string(elem) -> bool:
    from pydicom.dataelem import RawDataElement

    return (isinstance(elem, RawDataElement) and isinstance(elem.value, bytes)
            and getattr(elem, "VR", None) in TEXT_VRS | {"CS", "AE", "DA", "TM", "DT", "UI", "AS", "IS", "DS"})


def _is_dummy(value, dummy) -> bool:
    if dummy is None:
        return False
    if isinstance(dummy, (int, float)) and not isinstance(value, str):
        try:
            return float(value) == float(dummy)
        except (TypeError, ValueError):
            return False
    return str(value).strip("\x00 ") == str(dummy)


def _replaced_uid(value) -> bool:
    text = str(value).strip("\x00 ")
    return not text or text.startswith("2.25.") or is_registered_uid(text)


def _safe_private_present(item, tag: int, rules: Rules) -> bool:
    group, element = tag >> 16, tag & 0xFFFF
    if 0x0010 <= element <= 0x00FF:
        creator = str(item[tag].value).strip()
        return any(c == creator and g == group for c, g, _ in rules.safe_private)
    block = group << 16 | element >> 8
    creator = str(item[block].value).strip() if block in item else None
    return (creator, group, element & 0xFF) in rules.safe_private
