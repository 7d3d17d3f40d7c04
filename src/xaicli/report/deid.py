"""The page of a ``dicom-anonymize`` run: what was done, to how many files, and why -- never a value.

Everything on it comes from the two files the de-identifier writes for sharing: its report
(``anonymize-report.json``: counts, options, the inputs held back and the reasons) and its audit
(``anonymize-audit.csv``: one row per attribute acted on, with its tag, keyword, VR, action code and
basis, never the value). Inputs are named by their number (``input-000003``); a run in the mirror
layout names them by their path, which may identify, so the page gives its counts without names.
No DICOM pixel data is shown (burned-in text identifies). The private map from numbers to paths,
kept beside the output, is never read.
"""

from __future__ import annotations

import re
from typing import Any

from xaicli.report.load import Run
from xaicli.report.view import Column, Page, Section, fmt, table

REPORT = "anonymize-report.json"
AUDIT = "anonymize-audit.csv"
#: PS3.15 Table E.1-1's action codes (and xaicli's P), as the audit writes them
ACTIONS = {"X": "removed", "Z": "emptied (zero length)", "D": "replaced by a dummy value", "U": "UID replaced",
           "C": "cleaned of identifying text", "K": "kept", "P": "replaced by a pseudonym",
           "G": "graphics removed", "O": "overlay removed"}
NUMBERED = re.compile(r"^input-\d+$")
LISTS = (("quarantined", "quarantined (burned-in text)"), ("skipped", "skipped (not DICOM)"),
         ("failed", "failed"), ("held_back", "held back (DICOMDIR)"))


def _audit(run: Run) -> tuple[dict[str, dict[str, Any]], dict[str, int], dict[str, dict[str, int]], int]:
    """Counts over the audit: per action (attributes, files), per basis, per attribute and action."""
    actions: dict[str, dict[str, Any]] = {}
    bases: dict[str, int] = {}
    attributes: dict[str, dict[str, int]] = {}
    files: set[str] = set()
    for row in run.rows(AUDIT):
        code = row.get("action", "")
        entry = actions.setdefault(code, {"attributes": 0, "files": set()})
        entry["attributes"] += 1
        entry["files"].add(row.get("input", ""))
        files.add(row.get("input", ""))
        basis = row.get("basis", "")
        bases[basis] = bases.get(basis, 0) + 1
        name = row.get("keyword") or _tag_only(row.get("location", ""))
        per = attributes.setdefault(name, {})
        per[code] = per.get(code, 0) + 1
    return actions, bases, attributes, len(files)


def _tag_only(location: str) -> str:
    """A location's last tag (``(0009,1001)``): a private attribute has no keyword."""
    tags = re.findall(r"\([0-9A-Fa-f]{4},[0-9A-Fa-f]{4}\)", location)
    return tags[-1] if tags else "(unknown)"


def deid_page(run: Run) -> Page:
    report = run.document(REPORT) or {}
    actions, bases, attributes, acted = _audit(run)
    numbered = report.get("layout", "pseudonyms") != "mirror"
    counts = [("files", report.get("files", 0)), ("de-identified", report.get("deidentified", 0))]
    counts += [(label, len(report.get(key) or [])) for key, label in LISTS]
    counts += [("name clashes (renamed)", len(report.get("clashes") or [])),
               ("kept with burned-in annotation", len(report.get("burned_in_kept") or [])),
               ("burned-in text masked", len(report.get("masked") or []))]
    reasons = []
    for key, label in LISTS:
        grouped: dict[str, list[str]] = {}
        for item in report.get(key) or []:
            grouped.setdefault(str(item.get("reason", "")), []).append(str(item.get("input", "")))
        for reason, inputs in grouped.items():
            names = [i for i in inputs if NUMBERED.match(i)] if numbered else []
            reasons.append({"status": label, "reason": reason, "count": len(inputs), "inputs": names})
    action_table = table([Column("action", numeric=False), Column("code", numeric=False), Column("attributes"),
                          Column("files")],
                         [[ACTIONS.get(code, code), code, v["attributes"], len(v["files"])]
                          for code, v in sorted(actions.items(), key=lambda item: -item[1]["attributes"])],
                         id="actions-table")
    codes = [code for code, _ in sorted(actions.items(), key=lambda item: -item[1]["attributes"])]
    attribute_table = table([Column("attribute", numeric=False)] + [Column(c) for c in codes],
                            [[name] + [per.get(c, 0) for c in codes]
                             for name, per in sorted(attributes.items(), key=lambda item: -sum(item[1].values()))],
                            id="attributes-table",
                            caption="Attributes by keyword (a private attribute by its tag) and action code: "
                                    "how many times each was acted on, over all files.")
    outside = report.get("outside_table") or {}
    basis_table = table([Column("basis", numeric=False), Column("attributes")],
                        sorted(bases.items(), key=lambda item: -item[1]), id="basis-table")
    edition = (report.get("table") or {}).get("edition", "")
    facts = [("run", "dicom-anonymize"), ("files", fmt(report.get("files", 0))),
             ("profile", report.get("profile", "")), ("layout", report.get("layout", ""))]
    sections = [
        Section("outcome", "Outcome", "deid_outcome", {
            "counts": counts, "reasons": reasons, "numbered": numbered,
            "files_acted_on": acted}),
        Section("actions", "What was done to the attributes", "deid_actions", {
            "actions": action_table, "bases": basis_table, "attributes": attribute_table, "outside": outside,
            "edition": edition, "options": report.get("options") or [], "source": (report.get("table") or {}).get("source", "")}),
    ]
    title = f"De-identification of {report.get('files', 0)} file(s)"
    return Page(title, "dicom-anonymize", facts, sections)
