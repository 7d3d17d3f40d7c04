"""``--check --against INPUT``: search a de-identified output for the input's identifying values,
as a reviewer would, wherever they can be: every element of every file at every depth (file meta,
private attributes and sequence items included), in every VR, text decoded with the data set's
Specific Character Set (PS3.5 6.1; ISO 2022 escapes, e.g. IR 87 Japanese, handled by pydicom),
bytes of OB, UN and unknown elements decoded the same way and as Latin-1 (Pixel Data aside);
every non-DICOM file's text (the audit, the report); every file and folder name.

The values are those of :func:`xaicli.anonymize.identities.identifying_values`, collected from
every data set and sequence item of the input, matched by :class:`xaicli.anonymize.masking.Masker`.
A finding names the file (with any path part that holds a value masked), the place and the kind of
value, never the value.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from xaicli.anonymize.elements import keyword, tag_text, text
from xaicli.anonymize.identities import identifying_values
from xaicli.anonymize.masking import Masker
from xaicli.anonymize.plan import AUDIT_FILE, REPORT_FILE
from xaicli.anonymize.settings import CODED_VRS, MASK, PIXEL_DATA
from xaicli.anonymize.unlisted import SAFE_TEXT

BYTES_VRS = frozenset({"OB", "UN", "OW", "OD", "OF", "OL", "OV"})
LARGEST_TEXT = 64 * 1024 * 1024  # non-DICOM files larger than this are not searched


@dataclass
class Search:
    masker: Masker
    codes: Masker  # for coded VRs: the values of three characters or more (see actions.Walk)

    @classmethod
    def of(cls, input_root: Path, options: tuple[str, ...]) -> Search:
        """The identifying values of every DICOM file under ``input_root``."""
        from xaicli.anonymize.checker import read_any
        from xaicli.anonymize.plan import files_under

        values: dict[str, str] = {}
        safe: set[str] = set()
        for path in files_under(input_root, []) if input_root.is_dir() else [input_root]:
            ds, _ = read_any(path)
            if ds is not None:
                for item in _datasets(ds):
                    for value, category in identifying_values(item, options).items():
                        values.setdefault(value, category)
                    safe.update(text(item, tag).lower() for tag in SAFE_TEXT if tag in item._dict)
        # A value the input itself uses where it identifies no one (a vendor's name written as
        # the institution's, say) is no finding where it stands in a safe attribute of the output.
        values = {v: c for v, c in values.items() if v not in safe}
        return cls(Masker(values), Masker({v: c for v, c in values.items() if len(v) >= 3}))

    def name(self, path: Path, root: Path) -> str:
        """``path`` relative to ``root`` with every part that holds a value masked."""
        parts = path.relative_to(root).parts if path != root else (path.name,)
        return "/".join(MASK if self.masker.find(part) else part for part in parts)

    def path_findings(self, path: Path, root: Path) -> list[tuple[str, str, str]]:
        found = []
        parts = path.relative_to(root).parts if path != root else (path.name,)
        for depth, part in enumerate(parts, 1):
            category = self.masker.find(part)
            if category:
                what = "file name" if depth == len(parts) else f"folder name (level {depth})"
                found.append(("", "", f"{what} holds the input's {category}"))
        return found

    def text_findings(self, path: Path) -> list[tuple[str, str, str]]:
        """A non-DICOM file of the output, line by line; in xaicli's own audit and report, the
        fields that name inputs and outputs (the rest is tags, keywords, VRs and reasons)."""
        try:
            if path.stat().st_size > LARGEST_TEXT:
                return []
            lines = path.read_bytes().decode("utf-8", "replace").splitlines()
        except OSError:
            return []
        fields = _NAMED_FIELDS.get(path.name)
        found = []
        for number, line in enumerate(lines, 1):
            category = self.masker.find(fields(line) if fields else line)
            if category:
                found.append((f"line {number}", "", f"text holds the input's {category}"))
        return found

    def dataset_findings(self, ds) -> list[tuple[str, str, str]]:
        found: list[tuple[str, str, str]] = []
        encodings = getattr(ds, "_character_set", None) or ["iso8859"]
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            self._walk(meta, "meta:", encodings, found)
        self._walk(ds, "", encodings, found)
        return found

    def _walk(self, ds, prefix: str, encodings, found: list) -> None:
        for elem in _elements(ds):
            tag = int(elem.tag)
            location = prefix + tag_text(tag)
            if elem.VR == "SQ":
                for index, item in enumerate(elem.value or []):
                    own = getattr(item, "_character_set", None) if "SpecificCharacterSet" in item else None
                    self._walk(item, f"{location}[{index}].", own or encodings, found)
                continue
            masker = self.codes if elem.VR in CODED_VRS else self.masker
            for value in _texts(elem, tag, encodings):
                category = masker.find(value)
                if category:
                    found.append((location, keyword(tag), f"holds the input's {category}"))
                    break


def _elements(ds):
    """Every element of ``ds``, each converted on its own (one pydicom cannot read is skipped)."""
    for tag in list(ds.keys()):
        try:
            yield ds[tag]
        except Exception:  # noqa: BLE001 - its raw bytes are searched instead
            raw = ds.get_item(tag)
            if raw is not None and isinstance(raw.value, bytes):
                yield _Raw(tag, raw.value)


@dataclass
class _Raw:
    tag: int
    value: bytes
    VR: str = "UN"


def _texts(elem, tag: int, encodings) -> list[str]:
    """What a reviewer could read in one element: its decoded value; for bytes, the bytes read
    in the data set's character sets and as Latin-1."""
    value = elem.value
    if value is None or tag == PIXEL_DATA:
        return []
    if isinstance(value, (bytes, bytearray)):
        from pydicom.charset import decode_bytes

        texts = [bytes(value).decode("latin-1")]
        try:
            texts.append(decode_bytes(bytes(value), list(encodings), set()))
        except Exception:  # noqa: BLE001 - bytes that are no text in that charset
            pass
        return texts
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return ["\\".join(str(v) for v in value)]
    return [str(value)]


def _datasets(ds):
    """``ds`` and every sequence item in it, at every depth."""
    yield ds
    for elem in _elements(ds):
        if elem.VR == "SQ":
            for item in elem.value or []:
                yield from _datasets(item)


def _audit_paths(line: str) -> str:
    row = next(csv.reader([line]), [])
    return " ".join(row[:2])


def _report_paths(line: str) -> str:
    match = re.match(r'\s*(?:"(?:input|output|renamed_to)": )?"((?:[^"\\]|\\.)*)",?$', line)
    return match.group(1) if match else ""


# The paths of xaicli's audit (its input and output columns) and report (its "input", "output"
# and "renamed_to" entries and the inputs it lists, one a line as json.dumps(indent=2) writes them).
_NAMED_FIELDS = {AUDIT_FILE: _audit_paths, REPORT_FILE: _report_paths}
