"""Issue 19, point 2: identifying values 1, 2, 3 and 4 sequences deep, in sequences the profile
walks into (not in Table E.1-1), replaces the UIDs of (U) and cleans (C); every profile option
against the Basic Profile's result."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from anonymize_fixtures import (
    LEAK_INSTITUTION,
    LEAK_PHYSICIAN,
    LEAK_PID,
    LEAK_WORDS,
    item,
    patient_file,
    runner,
)
from pydicom.sequence import Sequence

from xaicli.anonymize.profile import OPTIONS, XAICLI_OPTIONS, build_rules
from xaicli.cli import app

# kind -> (sequence keywords from the outside in, the option that makes the profile clean them)
KINDS = {
    "walked": (["AnatomicRegionSequence", "PrimaryAnatomicStructureSequence", "ProcedureCodeSequence",
                "SeriesDescriptionCodeSequence"], None),
    "uids": (["ReferencedImageSequence"] * 4, None),  # X/Z/U*: kept, UIDs replaced inside
    "cleaned": (["ContentSequence"] * 4, "clean-structured-content"),  # D, C with the option
}


def leaf(depth: int) -> pydicom.Dataset:
    """The identifying values of one level: a name (P), an address (X), a physician (D), an
    original UID, unlisted free text and an unknown attribute holding the ID."""
    out = item(PatientName="Qorvath^Jo", PatientAddress="12 Brindlewood Lane", PersonName=LEAK_PHYSICIAN,
               ReferencedSOPInstanceUID=f"1.2.826.0.1.3680043.77.{depth}", TextValue=f"level {depth}: {LEAK_PID} at {LEAK_INSTITUTION}")
    out.add_new(0x00DA1010, "LO", LEAK_PID)
    return out


def nested_file(path: Path, kind: str, depth: int) -> None:
    """The values at exactly ``depth`` sequences down (the levels above hold only structure)."""
    keywords, _ = KINDS[kind]
    inner = leaf(depth)
    for level in range(depth - 1, -1, -1):
        holder = item() if level else None
        sequence = Sequence([inner])
        if holder is None:
            patient_file(path, **{keywords[level]: sequence})
            return
        setattr(holder, keywords[level], sequence)
        inner = holder


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("kind", list(KINDS))
def test_identifying_values_at_every_depth(tmp_path, kind, depth):
    src, out = tmp_path / "in", tmp_path / "out"
    nested_file(src / "a.dcm", kind, depth)
    option = KINDS[kind][1]
    options = ["--option", option] if option else []
    before = runner.invoke(app, ["dicom-anonymize", "--check", str(src), "--against", str(src), *options])
    assert before.exit_code == 4
    result = runner.invoke(app, ["dicom-anonymize", str(src), "-o", str(out), "--key", "k", *options])
    assert result.exit_code == 0, result.output
    (done,) = out.rglob("*.dcm")
    data = done.read_bytes()
    for word in (*LEAK_WORDS, LEAK_PID, "1.2.826.0.1.3680043.77"):
        assert word.encode() not in data, word
    after = runner.invoke(app, ["dicom-anonymize", "--check", str(out), "--against", str(src), *options])
    assert after.exit_code == 0, after.output
    # The item at that depth is still there, de-identified, not dropped with its sequence.
    ds = pydicom.dcmread(done)
    keywords = KINDS[kind][0]
    for level in range(depth):
        ds = ds[keywords[level]].value[0]
    assert str(ds.PatientName).startswith("ANON-") and "PatientAddress" not in ds
    assert ds.ReferencedSOPInstanceUID.startswith("2.25.")
    if kind == "cleaned":  # unlisted free text (and an unknown attribute) cleaned, not removed
        assert ds.TextValue == f"level {depth}: *** at ***" and ds[0x00DA1010].value == "***"
    else:
        assert "TextValue" not in ds and 0x00DA1010 not in ds  # unlisted free text: removed


# ------------------------------------------------------------------------------- every option


def _with(options: list[str], tmp_path: Path, src: Path) -> pydicom.Dataset:
    out = tmp_path / ("out-" + "-".join(options or ["basic"]))
    args = [a for o in options for a in ("--option", o)]
    result = runner.invoke(app, ["dicom-anonymize", str(src), "-o", str(out), "--key", "k", *args])
    assert result.exit_code == 0, result.output
    (done,) = out.rglob("*.dcm")
    return pydicom.dcmread(done)


STUDY_UID, SOP_UID = "1.2.826.0.1.3680043.55.1", "1.2.826.0.1.3680043.55.2"
# option -> (attributes of the input, what the option's output shows that the Basic Profile's does not)
EFFECTS = {
    "retain-safe-private": ({}, lambda ds: True),  # with a recipe list: test_anonymize.py
    "retain-uids": ({}, lambda ds: ds.StudyInstanceUID == STUDY_UID and ds.SOPInstanceUID == SOP_UID),
    "retain-device-identity": ({"StationName": "CT7", "DeviceSerialNumber": "SN-42", "SoftwareVersions": "VA20"},
                               lambda ds: (ds.StationName, ds.DeviceSerialNumber, ds.SoftwareVersions) == ("CT7", "SN-42", "VA20")),
    "retain-institution-identity": ({}, lambda ds: ds.InstitutionName == LEAK_INSTITUTION),
    "retain-patient-characteristics": ({"PatientSex": "F", "PatientAge": "054Y", "PatientWeight": "61.5"},
                                       lambda ds: (ds.PatientSex, ds.PatientAge, str(ds.PatientWeight)) == ("F", "054Y", "61.5")),
    "retain-long-full-dates": ({}, lambda ds: (ds.StudyDate, ds.StudyTime) == ("20200115", "101500")),
    "retain-long-modified-dates": ({}, lambda ds: ds.StudyDate not in ("", "20200115") and len(ds.StudyTime) == 6),
    "clean-descriptors": ({"StudyDescription": "Qorvath chest"}, lambda ds: ds.StudyDescription == "*** chest"),
    "clean-structured-content": ({"ContentSequence": Sequence([item(TextValue=f"ID {LEAK_PID} seen")])},
                                 lambda ds: ds.ContentSequence[0].TextValue == "ID *** seen"),
    "clean-graphics": ({"0x60004000": ("LT", "overlay of Qorvath")}, lambda ds: ds[0x60004000].value == "overlay of ***"),
    "unsafe-keep-unlisted-text": ({"DocumentTitle": "Ward 9 notes"}, lambda ds: ds.DocumentTitle == "Ward 9 notes"),
}


def test_every_option_is_tested():
    assert set(EFFECTS) == set(OPTIONS) | set(XAICLI_OPTIONS)


@pytest.mark.parametrize("option", list(EFFECTS))
def test_option_changes_what_it_says(tmp_path, option):
    attributes, shows = EFFECTS[option]
    src = tmp_path / "in"
    ds = patient_file(None, **{k: v for k, v in attributes.items() if not k.startswith("0x")})
    for key, (vr, value) in ((k, v) for k, v in attributes.items() if k.startswith("0x")):
        ds.add_new(int(key, 16), vr, value)
        ds.add_new(0x60000010, "US", 2)
    ds.StudyInstanceUID, ds.SOPInstanceUID = STUDY_UID, SOP_UID
    ds.file_meta.MediaStorageSOPInstanceUID = SOP_UID
    src.mkdir()
    ds.save_as(src / "a.dcm", enforce_file_format=True)
    basic, chosen = _with([], tmp_path, src), _with([option], tmp_path, src)
    if option != "retain-safe-private":
        assert shows(chosen) and not _shows(shows, basic), option
    codes = [i.CodeValue for i in chosen.DeidentificationMethodCodeSequence]
    if option in OPTIONS and option != "retain-safe-private":  # no safe list: the option is not claimed
        assert OPTIONS[option][1] in codes
    else:
        assert codes == ["113100"]
    assert build_rules([option]).options == (option,)


def _shows(shows, ds) -> bool:
    try:
        return bool(shows(ds))
    except (AttributeError, KeyError, IndexError):
        return False
