"""``--check``: what the profile says must not be in a de-identified file, at every depth.

:func:`scan_findings` reads one data set against the resolved rules: attributes to remove (X), to
empty (Z) or to replace by a dummy (D) still holding another value, UIDs (U, and unlisted instance
UIDs) not replaced, patient names and IDs that are not pseudonyms, private attributes, curves and
overlays, file meta xaicli removes (PS3.10 7.1: AE titles, Private Information), free text outside
Table E.1-1 that is not on the safe list, and unmarked files. :func:`check` runs it over a
folder and, given the original input (``--against``), adds the search of
:mod:`xaicli.anonymize.leaks`. Problems name the attribute, never its value.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

from xaicli.anonymize.detect import dicom_start
from xaicli.anonymize.elements import (
    is_raw_bytes,
    is_registered_uid,
    keyword,
    replaces_unlisted_uid,
    tag_text,
    values_of,
    vr_of,
)
from xaicli.anonymize.marks import burned_in_status
from xaicli.anonymize.privates import is_safe_private
from xaicli.anonymize.profile import Rules
from xaicli.anonymize.settings import DUMMY, MARK_TAGS, MEDIA_INSTANCE_UID, META_KEEP, STRING_VRS
from xaicli.anonymize.unlisted import REMOVE, unlisted_action
from xaicli.errors import InputError

PSEUDONYM_RE = re.compile(r"^ANON-[0-9A-F]{16}$")
Finding = tuple[str, str, str]  # location, keyword, problem


def scan_findings(ds, rules: Rules, modalities: frozenset[str]) -> list[Finding]:
    """Everything the profile says must not be in ``ds`` (see the module docstring)."""
    findings: list[Finding] = []

    def walk(item, prefix: str, depth: int, cleaning: bool) -> None:
        for tag in list(item.keys()):
            tag = int(tag)
            location = prefix + tag_text(tag)
            problem = _problem(item, tag, depth, cleaning, rules)
            if problem:
                findings.append((location, keyword(tag), problem))
            if tag >> 16 & 1 and not (tag in rules.user_keep or is_safe_private(item, tag, rules)):
                continue  # a private attribute is a finding as a whole
            if vr_of(item, tag) != "SQ" or (tag in rules.user_keep and not tag >> 16 & 1):
                continue
            try:
                children = item[tag].value or []
            except Exception:  # noqa: BLE001 - a sequence pydicom cannot parse
                findings.append((location, keyword(tag), "sequence cannot be read"))
                continue
            inner = cleaning or rules.action_for(tag) == "C"
            for index, child in enumerate(children if item[tag].VR == "SQ" else []):
                walk(child, f"{location}[{index}].", depth + 1, inner)

    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        walk(meta, "meta:", 1, False)
    walk(ds, "", 0, False)
    if str(ds.get("PatientIdentityRemoved", "")).upper() != "YES":
        findings.append(("(0012,0062)", "PatientIdentityRemoved", "file not marked: Patient Identity Removed is not YES"))
    if "DeidentificationMethod" not in ds and "DeidentificationMethodCodeSequence" not in ds:
        findings.append(("(0012,0063)", "DeidentificationMethod", "file not marked: no De-identification Method"))
    burned = burned_in_status(ds, modalities)
    if burned:
        findings.append(("(0028,0301)", "BurnedInAnnotation", f"burned-in annotation {burned}"))
    return findings


def _problem(item, tag: int, depth: int, cleaning: bool, rules: Rules) -> str:
    if tag >> 16 & 1:
        kept = tag in rules.user_keep or is_safe_private(item, tag, rules)
        return "" if kept else "private attribute"
    if tag >> 16 == 0x0002:
        if tag in META_KEEP or tag == 0x00020000:
            return ""
        if tag == MEDIA_INSTANCE_UID:
            return _uid_problem(item, tag, "file meta")
        return "file meta attribute xaicli removes (PS3.10 7.1: AE titles, addresses, private information)"
    if (depth == 0 and tag in MARK_TAGS) or tag in rules.user_keep:
        return ""
    return _residual(item, tag, vr_of(item, tag), rules.action_for(tag), rules, cleaning)


def _residual(item, tag: int, vr: str, action: str | None, rules: Rules, cleaning: bool) -> str:
    """What is wrong with one attribute given its resolved action ("" when nothing is)."""
    if action is None:
        if vr == "UI":
            if "retain-uids" in rules.options or not replaces_unlisted_uid(tag):
                return ""
            return _uid_problem(item, tag, "unlisted")
        if vr == "SQ" or tag & 0xFFFF == 0:
            return ""
        clean = cleaning or "clean-descriptors" in rules.options
        if unlisted_action(tag, vr, rules.options, clean) == REMOVE:
            return "free text outside Table E.1-1, not on the safe list"
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
        if vr == "UI":
            return _uid_problem(item, tag, "D")
        values, dummy = _values(item, tag), DUMMY.get(vr)
        if values and not all(_is_dummy(v, dummy) for v in values):
            return "attribute the profile replaces by a dummy (D) holds another value"
        return ""
    if action == "P":
        if any(not PSEUDONYM_RE.match(str(v).strip()) for v in _values(item, tag)):
            return "patient name or ID is not a pseudonym"
        return ""
    if action == "U" and vr == "UI":
        return _uid_problem(item, tag, "U")
    if action == "U" and vr != "SQ":
        return "attribute the profile removes (U on a non-UID) is present"
    return ""


def _uid_problem(item, tag: int, why: str) -> str:
    if any(not _replaced_uid(v) for v in _values(item, tag)):
        return f"UID the profile replaces ({why}) still original"
    return ""


def _values(item, tag: int) -> list:
    """The values of one element as a list ([] when empty); items for a sequence."""
    elem = item._dict.get(tag)
    if is_raw_bytes(elem) and getattr(elem, "VR", None) in STRING_VRS - {"UR"}:
        return [v for v in values_of(item, tag) if v]
    try:
        value = item[tag].value
    except Exception:  # noqa: BLE001 - unreadable counts as a value: it is not empty
        return ["?"]
    if value is None or value == b"" or value == "":
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ in ("MultiValue", "Sequence"):
        return [v for v in value if v is not None and v != ""]
    return [value]


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


@dataclass
class CheckResult:
    files: int
    checked: int
    skipped: list[tuple[str, str]]
    findings: list[tuple[str, str, str, str]]  # file, location, keyword, problem


def read_any(path: Path):
    """(data set or None, why not): every file read as --check reads it, headerless ones too."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or type(exc).__name__})"
    start = dicom_start(data)
    if start is None:
        return None, "not a DICOM file"
    try:
        return pydicom.dcmread(io.BytesIO(data[start:]), force=True), ""
    except InvalidDicomError:
        return None, "not a DICOM file"
    except Exception as exc:  # noqa: BLE001
        return None, f"cannot be read ({type(exc).__name__})"


def check(folder: Path, rules: Rules, burned_in_modalities: tuple[str, ...] = (), against: Path | None = None
          ) -> CheckResult:
    """Scan ``folder`` for anything the profile says must go, at any depth, and unmarked files;
    with ``against`` (the original input), also for every identifying value of the input."""
    from xaicli.anonymize.leaks import Search
    from xaicli.anonymize.plan import files_under
    from xaicli.dicom import quiet_pydicom

    folder = Path(folder)
    for path in (folder, against):
        if path is not None and not Path(path).exists():
            raise InputError(f"{path}: no such file or folder")
    files = files_under(folder, []) if folder.is_dir() else [folder]
    modalities = frozenset(m.upper() for m in burned_in_modalities)
    result = CheckResult(len(files), 0, [], [])
    with quiet_pydicom():
        search = Search.of(Path(against), rules.options) if against is not None else None
        for path in files:
            name = search.name(path, folder) if search else str(path)
            ds, why = read_any(path)
            if search:
                result.findings += [(name, *f) for f in search.path_findings(path, folder)]
            if ds is None:
                if why == "not a DICOM file":
                    result.skipped.append((name, why))
                    if search:
                        result.findings += [(name, *f) for f in search.text_findings(path)]
                else:
                    result.findings.append((name, "", "", why))
                continue
            result.checked += 1
            result.findings += [(name, *f) for f in scan_findings(ds, rules, modalities)]
            if search:
                result.findings += [(name, *f) for f in search.dataset_findings(ds)]
    return result
