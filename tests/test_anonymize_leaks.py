"""Issue 14: every leak of its "Why", shown by ``--check --against`` before (on the input as it is,
or with the option that keeps the old behaviour) and gone after; paths, audit, file meta."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pydicom
import pytest
from anonymize_fixtures import (
    LEAK_INSTITUTION,
    LEAK_PID,
    LEAK_WORDS,
    MIRROR,
    patient_file,
    runner,
)
from pydicom.dataset import FileMetaDataset

from xaicli.anonymize.checker import check
from xaicli.anonymize.profile import build_rules
from xaicli.cli import app


def deidentify(src: Path, out: Path, *extra: str):
    return runner.invoke(app, ["dicom-anonymize", str(src), "-o", str(out), "--key", "k", *extra])


def against(out: Path, src: Path, *extra: str):
    return runner.invoke(app, ["dicom-anonymize", "--check", str(out), "--against", str(src), *extra])


def findings(out: Path, src: Path, *options: str) -> list[tuple[str, str, str, str]]:
    return check(out, build_rules(list(options)), (), against=src).findings


# Attributes outside Table E.1-1 that the old engine copied verbatim (issue 14), each holding one
# of the patient's values: (keyword or tag, VR, value, what the check must call it).
UNLISTED = [
    ("DocumentTitle", "ST", "Report for Jo Qorvath", "patient name"),
    ("ConversionType", "CS", LEAK_PID, "patient ID"),
    ("BodyPartExamined", "CS", "QORVATH", "patient name"),
    ("SoftwareVersions", "LO", LEAK_PID, "patient ID"),
    ("ContentLabel", "CS", "JO QORVATH", "patient name"),
    ("ContentDescription", "LO", "Qorvath's study", "patient name"),
    ("FilmSessionLabel", "LO", LEAK_INSTITUTION, "institution"),
    ("00DA1010", "LO", f"MRN {LEAK_PID}", "patient ID"),  # even group, unknown to the dictionary
]


@pytest.mark.parametrize("keyword, vr, value, category", UNLISTED, ids=[u[0] for u in UNLISTED])
def test_unlisted_attribute_leak_found_before_and_gone_after(tmp_path, keyword, vr, value, category):
    src = tmp_path / "in"
    tag = int(keyword, 16) if keyword[0].isdigit() else pydicom.datadict.tag_for_keyword(keyword)
    patient_file(src / "a.dcm", **{f"{tag:08X}": (vr, value)})
    location = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
    # Before: the input as it is, and the old behaviour (kept verbatim) on request.
    assert any(f"the input's {category}" in f[3] for f in findings(src, src) if f[1] == location)
    # The option keeps free text as the old engine did (codes holding a value go all the same).
    old = tmp_path / "old"
    assert deidentify(src, old, "--option", "unsafe-keep-unlisted-text").exit_code == 0
    hits = [f for f in findings(old, src, "unsafe-keep-unlisted-text") if f[1] == location]
    if vr == "CS":
        assert hits == []
    else:
        assert hits and all(f"the input's {category}" in f[3] for f in hits), hits
    # After: removed or, being a code, removed for holding a value; nothing of the input left.
    out = tmp_path / "out"
    result = deidentify(src, out)
    assert result.exit_code == 0, result.output
    clean = against(out, src)
    assert clean.exit_code == 0, clean.output
    (done,) = out.rglob("*.dcm")
    assert tag not in pydicom.dcmread(done)
    report = json.loads((out / "anonymize-report.json").read_text())
    assert report["outside_table"]["removed"] >= 1
    # The check never prints the value it found.
    shown = against(src, src)
    assert shown.exit_code == 4 and not any(w.lower() in shown.output.lower() for w in LEAK_WORDS)


def test_safe_list_keeps_codes_and_masks_the_patient_in_them(tmp_path):
    src = tmp_path / "in"
    patient_file(src / "a.dcm", Manufacturer=f"ACME for {LEAK_PID}", ManufacturerModelName="Imager 9",
                 ConvolutionKernel="B30f", PhotometricInterpretation="MONOCHROME2")
    out = tmp_path / "out"
    assert deidentify(src, out).exit_code == 0
    (done,) = (pydicom.dcmread(p) for p in out.rglob("*.dcm"))
    assert done.ManufacturerModelName == "Imager 9" and done.ConvolutionKernel == "B30f"
    assert done.Manufacturer == "ACME for ***"  # kept, the patient's ID masked
    assert against(out, src).exit_code == 0


def test_folder_and_file_names_and_audit_carry_no_identity(tmp_path):
    src = tmp_path / "in"
    leaky = src / "Qorvath^Jo_19700102" / LEAK_PID / "CT.1.dcm"
    ds = patient_file(leaky)
    # The old behaviour, on request: the names are mirrored and the check finds every level.
    old = tmp_path / "old"
    result = deidentify(src, old, *MIRROR)
    assert result.exit_code == 0 and "--layout mirror" in result.output
    problems = [f[3] for f in findings(old, src)]
    assert "folder name (level 1) holds the input's patient name" in problems
    assert "folder name (level 2) holds the input's patient ID" in problems
    assert any(p.startswith("text holds the input's") for p in problems)  # the audit lists the mirrored path
    assert not any(w.lower() in str(findings(old, src)).lower() for w in LEAK_WORDS)  # paths masked
    # Default: PATIENT/STUDY/SERIES/INSTANCE.dcm from pseudonyms and keyed UIDs (a new key).
    out = tmp_path / "out"
    assert runner.invoke(app, ["dicom-anonymize", str(src), "-o", str(out)]).exit_code == 0
    (done,) = out.rglob("*.dcm")
    patient, study, series, instance = done.relative_to(out).parts
    written = pydicom.dcmread(done)
    assert re.fullmatch(r"ANON-[0-9A-F]{16}", patient) and patient == written.PatientID
    assert (study, series, instance) == (written.StudyInstanceUID, written.SeriesInstanceUID,
                                         written.SOPInstanceUID + ".dcm")
    assert ds.SOPInstanceUID not in str(done)
    clean = against(out, src)
    assert clean.exit_code == 0, clean.output
    # The audit and report in the shared folder name the input by number only ...
    rows = list(csv.reader(io.StringIO((out / "anonymize-audit.csv").read_text())))
    assert {r[0] for r in rows[1:]} == {"input-000001"} and {r[1] for r in rows[1:]} == {done.relative_to(out).as_posix()}
    # ... and the map to the input's own path lies beside the key, as private as it.
    paths = tmp_path / "out.paths.csv"
    assert (paths.stat().st_mode & 0o777) == 0o600 == ((tmp_path / "out.key").stat().st_mode & 0o777)
    assert list(csv.reader(io.StringIO(paths.read_text())))[1] == ["input-000001", str(leaky),
                                                                   done.relative_to(out).as_posix(), "ok"]


def test_file_meta_deidentified(tmp_path):
    src = tmp_path / "in"
    ds = patient_file()
    meta = ds.file_meta
    meta.SourceApplicationEntityTitle = "KESTRELFORD_PAC"
    meta.SendingApplicationEntityTitle = "KESTREL_SEND"
    meta.ReceivingApplicationEntityTitle = "KESTREL_RECV"
    meta.ImplementationVersionName = "KESTREL_1"
    meta.PrivateInformationCreatorUID = "1.2.3.4"
    meta.PrivateInformation = b"Qorvath Jo MRN505050"
    src.mkdir()
    ds.save_as(src / "a.dcm", enforce_file_format=True)
    before = {f[1] for f in findings(src, src)}
    for tag in ("(0002,0016)", "(0002,0017)", "(0002,0018)", "(0002,0100)", "(0002,0102)"):
        assert f"meta:{tag}" in before, tag
    out = tmp_path / "out"
    assert deidentify(src, out).exit_code == 0
    (done,) = out.rglob("*.dcm")
    meta = pydicom.dcmread(done).file_meta
    assert isinstance(meta, FileMetaDataset)
    assert {int(t) for t in meta.keys()} == {0x00020000, 0x00020001, 0x00020002, 0x00020003, 0x00020010,
                                             0x00020012, 0x00020013}
    assert meta.ImplementationVersionName.startswith("XAICLI_") and meta.MediaStorageSOPInstanceUID.startswith("2.25.")
    assert b"KESTREL" not in done.read_bytes()
    assert against(out, src).exit_code == 0


def test_check_against_reads_every_charset_vr_and_depth(tmp_path):
    """The searcher on outputs tampered by hand: a Japanese name (ISO 2022 IR 87) in a kept text,
    the ID in the bytes of an OB and of a private UN, the birth date written D.M.Y four sequences
    down; each found, its place named, the value never printed."""
    src = tmp_path / "in"
    name = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    patient_file(src / "a.dcm", charset="\\ISO 2022 IR 87", name=name)
    out = tmp_path / "out"
    assert deidentify(src, out).exit_code == 0
    (done,) = out.rglob("*.dcm")
    assert against(out, src).exit_code == 0
    ds = pydicom.dcmread(done)
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    ds.StudyComments = "患者 山田 の検査"  # (0032,4000) LT
    ds.add_new(0x00420011, "OB", b"%PDF- MRN505050 ")  # Encapsulated Document
    ds.add_new(0x00290010, "LO", "HIDE")
    ds.add_new(0x00291001, "UN", b"\x00" + LEAK_PID.encode() + b"\x00\x00")
    inner = pydicom.Dataset()
    inner.TextValue = "born 2.1.1970"
    for _ in range(3):
        outer = pydicom.Dataset()
        outer.ContentSequence = [inner]
        inner = outer
    ds.AnatomicRegionSequence = [inner]
    ds.save_as(done)
    found = {(f[1], f[3]) for f in findings(out, src)}
    assert ("(0032,4000)", "holds the input's patient name") in found
    assert ("(0042,0011)", "holds the input's patient ID") in found
    assert ("(0029,1001)", "holds the input's patient ID") in found
    deep = "(0008,2218)[0].(0040,A730)[0].(0040,A730)[0].(0040,A730)[0].(0040,A160)"
    assert (deep, "holds the input's birth date") in found
    result = against(out, src)
    assert result.exit_code == 4
    assert not any(w in result.output for w in ("山田", "太郎", "Yamada", LEAK_PID, "1970"))


def test_pseudonymous_layout_keeps_both_of_two_inputs_with_one_instance_uid(tmp_path):
    src = tmp_path / "in"
    first = patient_file(src / "a" / "x.dcm")
    copy = src / "b" / "copy.dcm"
    copy.parent.mkdir()
    copy.write_bytes((src / "a" / "x.dcm").read_bytes())  # the same file twice: one output
    other = patient_file(None)
    other.PixelData = bytes(8)  # other pixels: a different image under the same UIDs
    other.SOPInstanceUID = other.file_meta.MediaStorageSOPInstanceUID = first.SOPInstanceUID
    other.StudyInstanceUID, other.SeriesInstanceUID = first.StudyInstanceUID, first.SeriesInstanceUID
    other.save_as(src / "c.dcm", enforce_file_format=True)  # same UIDs, other bytes: kept apart
    out = tmp_path / "out"
    result = deidentify(src, out, "--json")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.rglob("*.dcm"))
    assert len(names) == 2 and re.fullmatch(r"2\.25\.\d+__[0-9a-f]{16}\.dcm", names[1]), names
    report = json.loads((out / "anonymize-report.json").read_text())
    # Folders are walked files first: c.dcm (input-000001) takes the name, x.dcm and its copy share
    # the other one.
    assert report["deidentified"] == 3
    assert [c["input"] for c in report["clashes"]] == ["input-000002", "input-000003"]
    assert len({c["renamed_to"] for c in report["clashes"]}) == 1
