"""Regenerate ``src/xaicli/anonymize/table_e1_1.csv`` (DICOM PS3.15 Table E.1-1) from a current edition.

Needs the PyPI package ``dicom-anonymizer`` (2.1.0 or later) installed in the running Python:
its module ``dicomanonymizer.dicom_anonymization_databases.dicomfields_2026c`` transcribes the
Basic Profile column of Table E.1-1 of PS3.15 edition 2026c (lists D_TAGS, Z_TAGS, X_TAGS, ...,
with the attribute names as comments). It has no option columns, so:

- rows already in the CSV keep their option columns (transcribed from the standard by
  innolitics/dicom-standard) and their "in standard IOD" flag: ``options_source = standard``;
- rows the edition adds get their option columns from the explicit rules of
  :func:`derive_options`, learned from the existing rows: ``options_source = derived``.
  ``--measure`` prints how well those rules reproduce the existing rows' options.

The repeating-group rows (curves 50xx, overlays 60xx) and the private attributes row, which the
package lists differently or not at all, are carried over from the existing CSV.

Usage::

    python scripts/update_dicom_table.py            # rewrite the CSV, print the measurement
    python scripts/update_dicom_table.py --measure  # only print the measurement
"""

from __future__ import annotations

import csv
import io
import re
import sys
from pathlib import Path

EDITION = "2026c"
TABLE = Path(__file__).resolve().parents[1] / "src" / "xaicli" / "anonymize" / "table_e1_1.csv"
COLUMNS = [
    "safe_private", "uids", "device_identity", "institution_identity", "patient_characteristics",
    "long_full_dates", "long_modified_dates", "clean_descriptors", "clean_structured_content", "clean_graphics",
]
# The package's list name -> the action code of the Basic Profile column.
LISTS = {
    "D_TAGS": "D", "Z_TAGS": "Z", "X_TAGS": "X", "U_TAGS": "U", "Z_D_TAGS": "Z/D", "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D", "X_Z_D_TAGS": "X/Z/D", "X_Z_U_STAR_TAGS": "X/Z/U*",
}
# Repeating groups in the package: (group, element, group mask, element mask) -> our tag text.
PATTERNS = {(0x5000, 0x0000, 0xFF00, 0x0000): "(50XX,XXXX)", (0x6000, 0x3000, 0xFF00, 0xFFFF): "(60XX,3000)",
            (0x6000, 0x4000, 0xFF00, 0xFFFF): "(60XX,4000)"}

# --- the rules for the option columns of rows without a transcription (learned from those with one)

# Device identity (E.3.2): identifiers and names of a device, station or AE, not descriptions of use.
DEVICE = re.compile(
    r"^(Device (Serial Number|UID|Label|Description|Identifier)|Manufacturer's Device.*|.*Station (Name|AE Title)"
    r"|.*Station (Name|Geographic Location) Code Sequence|.*Detector (ID|Label)|.*Device ID|Cassette ID|Gantry ID"
    r"|Generator ID|Plate ID|Lens (Make|Model|Serial Number|Specification)|Source (Manufacturer|Serial Number)"
    r"|Transducer Identification.*|Treatment Machine Name|UDI Sequence|Unique Device Identifier|X-Ray Source ID"
    r"|Scheduled (Procedure Step Location|Study Location.*))$"
)
# Institution identity (E.3.3).
INSTITUTION = re.compile(r"^(Institution|Institutional|Clinical Trial (Site|Coordinating Center)|.*Ethics Committee Name)")
# Patient characteristics (E.3.4): measured traits kept verbatim; free-text states cleaned.
CHARACTERISTIC_KEEP = re.compile(r"^(Patient's (Age|Sex|Size|Weight)|Ethnic Group|Pregnancy Status|Smoking Status"
                                 r"|Sex Parameters for Clinical Use)")
CHARACTERISTIC_CLEAN = {"Allergies", "Patient State", "Pre-Medication", "Special Needs"}
# Clean descriptors (E.3.5): free text that describes (and may name someone).
DESCRIPTOR = re.compile(r"(Description|Comments?|Label|Notes|Narrative|Reason for|Diagnos|Impressions|Interpretation Text"
                        r"|Occupation|Medical Alerts|Protocol Name|Plan Name|Set Name|ROI Name|Entity Name|Agent$|Site$)")
# Comments on how to name or address the patient are about the person, not the procedure: not
# left to cleaning, which masks only identifiers it knows.
PERSONAL = re.compile(r"^(Name to Use|Pronoun|Gender Identity|Third Person Pronouns|Person Names)")
STRUCTURED = {"Content Sequence", "Acquisition Context Sequence", "Specimen Preparation Sequence"}
DATE_VRS = {"DA", "DT", "TM"}


def derive_options(name: str, basic: str, vr: str | None) -> dict[str, str]:
    """Option cells for one row, by the rules above; cells not set keep the Basic Profile action."""
    cells: dict[str, str] = {}
    if "U" in basic:
        cells["uids"] = "K"  # Retain UIDs keeps what U replaces (E.3.1)
    # A tag newer than pydicom's dictionary has no VR here: its name says whether it is a date.
    dated = vr in DATE_VRS or (vr is None and re.search(r"(Date|Time|DateTime)$", name) is not None)
    if dated and "Birth" not in name:
        cells["long_full_dates"], cells["long_modified_dates"] = "K", "C"  # E.3.6
    if DEVICE.match(name):
        cells["device_identity"] = "K"
    elif (vr not in ("PN", "UI", "DA", "DT", "TM") and DESCRIPTOR.search(name) and not INSTITUTION.match(name)
          and not PERSONAL.match(name)):
        cells["clean_descriptors"] = "C"
    if INSTITUTION.match(name):
        cells["institution_identity"] = "K"
    if CHARACTERISTIC_KEEP.match(name):
        cells["patient_characteristics"] = "C" if "Comment" in name else "K"
    elif name in CHARACTERISTIC_CLEAN:
        cells["patient_characteristics"] = "C"
    if name in STRUCTURED:
        cells["clean_structured_content"] = "C"
    if "Graphic" in name:
        cells["clean_graphics"] = "C"  # E.3.9
    return cells


def _dictionary_vr(tag: str) -> str | None:
    from pydicom.datadict import dictionary_VR

    try:
        return dictionary_VR(int(tag[1:5] + tag[6:10], 16)).split(" or ")[0]
    except (KeyError, ValueError):
        return None


def read_existing(path: Path = TABLE) -> list[dict[str, str]]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines(keepends=True) if not line.startswith("#")]
    return list(csv.DictReader(lines))


def previous_changes(path: Path = TABLE) -> str:
    """The basic_changed note of the CSV as it is (a rerun on its own output changes nothing)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# basic_changed:"):
            return line.split(":", 1)[1].split(" (Basic Profile")[0].strip()
    return ""


def read_edition() -> dict[str, tuple[str, str]]:
    """tag text -> (name, Basic Profile code), from dicom-anonymizer's transcription."""
    try:
        from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c as source
    except ImportError:
        sys.exit("install dicom-anonymizer 2.1.0 or later (pip install dicom-anonymizer) to regenerate the table")
    text = Path(source.__file__).read_text(encoding="utf-8")
    names = {}
    for match in re.finditer(r"\((0x[0-9A-Fa-f]{4}), (0x[0-9A-Fa-f]{4})((?:, 0x[0-9A-Fa-f]{4}){2})?\),\s*#\s*(.+)", text):
        key = (int(match.group(1), 16), int(match.group(2), 16))
        if match.group(3):
            key += tuple(int(v, 16) for v in match.group(3).split(", ")[1:])
        names[key] = match.group(4).strip()
    rows = {}
    for list_name, code in LISTS.items():
        for entry in getattr(source, list_name):
            tag = PATTERNS[entry] if len(entry) == 4 else f"({entry[0]:04X},{entry[1]:04X})"
            if tag in rows:
                sys.exit(f"{tag} is listed twice in the source")
            rows[tag] = (names.get(tuple(entry), ""), code)
    return rows


def measure(existing: list[dict[str, str]]) -> tuple[int, int, int, int]:
    """(cells right, cells, rows fully right, rows) when the rules are applied to transcribed rows."""
    cells = right = rows_right = rows = 0
    for row in existing:
        if not row["tag"][1:5].isalnum() or "X" in row["tag"][1:5].upper() or row["tag"].startswith("(GGGG"):
            continue
        derived = derive_options(row["name"], row["basic"], _dictionary_vr(row["tag"]))
        ok = True
        for column in COLUMNS:
            cells += 1
            if derived.get(column, "") == row[column]:
                right += 1
            else:
                ok = False
        rows += 1
        rows_right += ok
    return right, cells, rows_right, rows


def build(existing: list[dict[str, str]], edition: dict[str, tuple[str, str]]) -> tuple[list[dict[str, str]], list[str]]:
    old = {row["tag"]: row for row in existing}
    out, changed = [], []
    for tag, (name, basic) in edition.items():
        if tag in old:
            row = dict(old[tag])
            if row["basic"] != basic:
                changed.append(f"{tag} {row['basic']}->{basic}")
            row["basic"] = basic
            row["options_source"] = "standard"
        else:
            row = {"tag": tag, "name": name, "in_std_iod": "", "basic": basic, "options_source": "derived"}
            row.update({column: "" for column in COLUMNS})
            row.update(derive_options(name, basic, _dictionary_vr(tag)))
        out.append(row)
    for tag, row in old.items():  # the private attributes row: not in the package's lists
        if tag not in edition:
            out.append(dict(row, options_source="standard"))
    out.sort(key=lambda r: (r["name"].lower(), r["tag"]))
    return out, changed


def render(rows: list[dict[str, str]], changed: str, accuracy: tuple[int, int, int, int]) -> str:
    right, cells, rows_right, measured = accuracy
    derived = sum(r["options_source"] == "derived" for r in rows)
    header = [
        "# DICOM PS3.15 Annex E, Table E.1-1: Application Level Confidentiality Profile Attributes.",
        f"# edition: {EDITION} (PS3.15 {EDITION}, chapter E)",
        f"# source: Basic Profile column from dicom-anonymizer 2.1.0 (PyPI) dicomanonymizer/dicom_anonymization_databases/dicomfields_{EDITION}.py, "
        "a transcription of the standard's current Table E.1-1; option columns and in_std_iod of rows options_source=standard from "
        "innolitics/dicom-standard standard/confidentiality_profile_attributes.json at commit 0d01bf11dfc1d0b73b6df85bbf6e1764d3c558a3",
        f"# derived: {derived} rows added by edition {EDITION} have options_source=derived: their option columns come from the rules of "
        "scripts/update_dicom_table.py, not from the standard, and their in_std_iod is empty (not stated by the source)",
        f"# rule_accuracy: on the {measured} transcribed rows the rules reproduce {right} of {cells} option cells "
        f"({100 * right / cells:.1f}%) and all ten cells of {rows_right} rows ({100 * rows_right / measured:.1f}%)",
        f"# basic_changed: {changed or 'none'} (Basic Profile actions that differ from the earlier transcription)",
        f"# rows: {len(rows)}",
        "# codes: D Z X K C U and the combinations X/Z X/D Z/D X/Z/D X/Z/U* (PS3.15 E.3); option columns hold K, C or X",
        "# generated by: scripts/update_dicom_table.py",
    ]
    buffer = io.StringIO()
    fields = ["tag", "name", "in_std_iod", "basic", *COLUMNS, "options_source"]
    writer = csv.DictWriter(buffer, fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return "\n".join(header) + "\n" + buffer.getvalue()


def main(argv: list[str]) -> None:
    existing = [r for r in read_existing() if r.get("options_source", "standard") == "standard"]
    accuracy = measure(existing)
    right, cells, rows_right, rows = accuracy
    print(f"rules on {rows} transcribed rows: {right}/{cells} cells ({100 * right / cells:.1f}%), "
          f"{rows_right}/{rows} rows fully right ({100 * rows_right / rows:.1f}%)")
    if "--measure" in argv:
        return
    table, changed = build(existing, read_edition())
    note = "; ".join(changed) if changed else previous_changes()
    TABLE.write_text(render(table, note, accuracy), encoding="utf-8")
    print(f"wrote {TABLE} ({len(table)} rows; basic actions changed: {', '.join(changed) or 'none'})")


if __name__ == "__main__":
    main(sys.argv[1:])
