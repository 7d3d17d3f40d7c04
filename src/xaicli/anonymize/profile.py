"""The Basic Application Level Confidentiality Profile (DICOM PS3.15 Annex E) as resolved rules.

The attribute table (Table E.1-1) is data: ``table_e1_1.csv`` beside this module, with its
source and edition in its header. :func:`build_rules` turns it, the chosen profile options
(PS3.15 E.3.1-E.3.10) and the user's overrides into one action per tag.

Action codes (PS3.15 E.3): D dummy value, Z zero-length (or dummy) value, X remove, K keep,
C clean, U replace UID. Combined codes leave the choice to IOD conformance; without the IOD in
hand we take the choice that keeps the attribute present (X/Z -> Z, X/D and Z/D and X/Z/D -> D,
X/Z/U* -> U: keep the sequence and replace the UIDs inside it). Every one of them removes the
original value, so the choice only affects conformance, never confidentiality.
"""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from xaicli.errors import UsageError

TABLE_PATH = Path(__file__).with_name("table_e1_1.csv")

#: option name (what a user types) -> (column of the table, DICOM code of CID 7050)
OPTIONS: dict[str, tuple[str, str, str]] = {
    "retain-safe-private": ("safe_private", "113111", "Retain Safe Private Option"),
    "retain-uids": ("uids", "113110", "Retain UIDs Option"),
    "retain-device-identity": ("device_identity", "113109", "Retain Device Identity Option"),
    "retain-institution-identity": ("institution_identity", "113112", "Retain Institution Identity Option"),
    "retain-patient-characteristics": ("patient_characteristics", "113108", "Retain Patient Characteristics Option"),
    "retain-long-full-dates": ("long_full_dates", "113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "retain-long-modified-dates": ("long_modified_dates", "113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "clean-descriptors": ("clean_descriptors", "113105", "Clean Descriptors Option"),
    "clean-structured-content": ("clean_structured_content", "113104", "Clean Structured Content Option"),
    "clean-graphics": ("clean_graphics", "113103", "Clean Graphics Option"),
}
OPTION_ALIASES = {
    "retain-longitudinal-full-dates": "retain-long-full-dates",
    "retain-longitudinal-modified-dates": "retain-long-modified-dates",
    "retain-longitudinal-temporal-information-full-dates": "retain-long-full-dates",
    "retain-longitudinal-temporal-information-modified-dates": "retain-long-modified-dates",
}
# xaicli's own options: no column of the table, no code of CID 7050.
XAICLI_OPTIONS = {
    # Keeps free text outside Table E.1-1 verbatim (see unlisted.py): named after what it risks.
    "unsafe-keep-unlisted-text": "keep free text the table does not list, identifying or not",
}
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
CLEAN_PIXEL_CODE = ("113101", "Clean Pixel Data Option")

ACTION_CODES = {"D", "Z", "X", "K", "C", "U"}
COMBINED_CODES = {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D", "X/Z/U*": "U"}

# Repeating groups (PS3.5 7.6): curves 50xx and overlays 60xx, keyed by their element number.
CURVE = "curve"
OVERLAY = "overlay"
PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020


@dataclass(frozen=True)
class TableRow:
    tag: str
    name: str
    in_std_iod: str
    basic: str
    options: dict[str, str]
    options_source: str = "standard"  # "derived": option cells from scripts/update_dicom_table.py's rules


@functools.lru_cache(maxsize=1)
def load_table() -> tuple[dict[str, str], list[TableRow]]:
    """(metadata from the header comments, rows) of Table E.1-1."""
    meta: dict[str, str] = {}
    lines = []
    with open(TABLE_PATH, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("#"):
                text = line[1:].strip()
                if ":" in text:
                    key, value = text.split(":", 1)
                    if key.isidentifier():
                        meta[key] = value.strip()
                continue
            lines.append(line)
    rows = []
    for record in csv.DictReader(lines):
        options = {col: record[col] for col, _, _ in OPTIONS.values() if record[col]}
        rows.append(TableRow(record["tag"], record["name"], record["in_std_iod"], record["basic"], options,
                             record.get("options_source") or "standard"))
    return meta, rows


def option_name(name: str) -> str:
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    key = OPTION_ALIASES.get(key, key)
    if key not in OPTIONS and key not in XAICLI_OPTIONS:
        raise UsageError(f"unknown profile option {name!r}; choose from: {', '.join([*OPTIONS, *XAICLI_OPTIONS])}")
    return key


_TAG_RE = re.compile(r"^\(?\s*([0-9A-Fa-f]{4})\s*,?\s*([0-9A-Fa-f]{4})\s*\)?$")


def parse_tag(text: str) -> int:
    """A tag from '(0010,0010)', '0010,0010', '00100010' or a keyword such as 'PatientName'."""
    from pydicom.datadict import tag_for_keyword

    text = str(text).strip()
    match = _TAG_RE.match(text)
    if match:
        return int(match.group(1) + match.group(2), 16)
    tag = tag_for_keyword(text)
    if tag is None:
        raise UsageError(f"{text!r} is neither a tag like (0010,0010) nor a DICOM keyword")
    return int(tag)


def resolve_code(code: str) -> str:
    return COMBINED_CODES.get(code, code)


@dataclass
class Rules:
    """One action per tag, after options and overrides; plus the repeating groups and privates."""

    actions: dict[int, str] = field(default_factory=dict)
    curve_action: str = "X"
    overlay_action: str = "X"
    private_action: str = "X"
    user_keep: frozenset[int] = frozenset()
    options: tuple[str, ...] = ()
    safe_private: frozenset[tuple[str, int, int]] = frozenset()  # (creator, group, element byte)

    def action_for(self, tag: int) -> str | None:
        action = self.actions.get(tag)
        if action is not None:
            return action
        group = tag >> 16
        if 0x5000 <= group <= 0x50FF and not group & 1:
            return "G" + self.curve_action
        if 0x6000 <= group <= 0x60FF and not group & 1:
            return "O" + self.overlay_action
        return None


def build_rules(
    options: list[str] | tuple[str, ...] = (),
    keep: list[str] | tuple[str, ...] = (),
    remove: list[str] | tuple[str, ...] = (),
    actions: dict[str, str] | None = None,
    safe_private: list[str] | tuple[str, ...] = (),
) -> Rules:
    """Resolve Table E.1-1 with the chosen options, then the recipe's actions, then --keep/--remove."""
    chosen = tuple(dict.fromkeys(option_name(o) for o in options))
    if "retain-long-full-dates" in chosen and "retain-long-modified-dates" in chosen:
        raise UsageError("choose one of retain-long-full-dates and retain-long-modified-dates, not both")
    columns = [OPTIONS[o][0] for o in chosen if o in OPTIONS]
    _, rows = load_table()
    rules = Rules(options=chosen)
    for row in rows:
        code = row.basic
        for column in columns:
            code = row.options.get(column, code)
        code = resolve_code(code)
        if row.tag.upper().startswith("(50XX"):
            rules.curve_action = code
        elif row.tag.upper().startswith("(60XX"):
            # Overlay Data and Overlay Comments share one option code; the whole overlay group
            # goes with its data (a header without its bitmap describes nothing).
            rules.overlay_action = code
        elif row.tag.upper().startswith("(GGGG"):
            rules.private_action = code
        else:
            rules.actions[parse_tag(row.tag)] = code
    # Patient's Name and ID: keyed pseudonyms (a dummy value the standard allows for Z), so the
    # same patient keeps one identity across files and runs that share a key.
    for tag in (PATIENT_NAME, PATIENT_ID):
        if rules.actions.get(tag) in ("Z", "D"):
            rules.actions[tag] = "P"
    for tag_text, code in (actions or {}).items():
        code = str(code).strip().upper()
        if code not in ACTION_CODES and code not in COMBINED_CODES:
            raise UsageError(f"recipe action {code!r} for {tag_text} is not one of D Z X K C U")
        rules.actions[parse_tag(tag_text)] = resolve_code(code)
    for tag_text in remove:
        rules.actions[parse_tag(tag_text)] = "X"
    kept = set()
    for tag_text in keep:
        tag = parse_tag(tag_text)
        rules.actions[tag] = "K"
        kept.add(tag)
    rules.user_keep = frozenset(kept)
    rules.safe_private = frozenset(parse_safe_private(s) for s in safe_private)
    return rules


def parse_safe_private(text: str) -> tuple[str, int, int]:
    """'CREATOR (gggg,xxee)' -> (creator, group, element byte): one private attribute to retain."""
    match = re.match(r"^\s*(.+?)\s*\(?([0-9A-Fa-f]{4}),\s*[xX]{2}([0-9A-Fa-f]{2})\)?\s*$", str(text))
    if not match:
        raise UsageError(f"safe private entry {text!r} must look like 'CREATOR (0019,xx10)'")
    return match.group(1), int(match.group(2), 16), int(match.group(3), 16)


def code_items(options: tuple[str, ...], *, pixels_cleaned: bool = False) -> list[tuple[str, str]]:
    """(code value, meaning) of CID 7050 for the De-identification Method Code Sequence."""
    items = [BASIC_PROFILE_CODE]
    items += [(OPTIONS[o][1], OPTIONS[o][2]) for o in options if o in OPTIONS]
    if pixels_cleaned:
        items.append(CLEAN_PIXEL_CODE)
    return items
