"""xaicli dicom-anonymize: Table E.1-1 data, the engine at every depth, the CLI, --check."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from typer.testing import CliRunner

from xaicli.anonymize.engine import scan_findings
from xaicli.anonymize.profile import OPTIONS, build_rules, load_table, parse_tag
from xaicli.cli import app

NAME = "Zyxwvutsrq^Quintessa"  # unique: must appear in no output of any kind
PID = "PID-99887766"
runner = CliRunner()


# ----------------------------------------------------------------------------------- fixtures


def make_file(path: Path, *, name=NAME, pid=PID, study=None, sop=None, ref_sop=None, burned="NO",
              modality="CR", study_date="20200115") -> Dataset:
    """A small CR image rich in patient data: nested sequences, privates, overlay, curve."""
    sop = sop or generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = study or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.PatientName = name
    ds.PatientID = pid
    ds.PatientBirthDate = "19610203"
    ds.PatientAddress = f"1 {name} Street"
    ds.OtherPatientNames = name
    ds.InstitutionName = "St Quintessa Hospital"
    ds.ReferringPhysicianName = "Dr^Who"
    ds.StudyDate = study_date
    ds.SeriesDate = study_date
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC123456"
    ds.StudyDescription = f"chest for {name}"
    ds.Modality = modality
    ds.BurnedInAnnotation = burned
    ds.ImageComments = f"patient {name} id {pid}"
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    ref.ReferencedSOPInstanceUID = ref_sop or generate_uid()
    inner = Dataset()
    inner.PatientName = name  # identity hidden two levels down
    inner.PersonName = name
    ref.ReferencedPatientSequence = Sequence([inner])
    ds.ReferencedStudySequence = Sequence([ref])
    img = Dataset()
    img.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    img.ReferencedSOPInstanceUID = ref_sop or generate_uid()
    ds.ReferencedImageSequence = Sequence([img])
    ds.add_new(0x00090010, "LO", "ACME_PRIVATE")
    ds.add_new(0x00091001, "LO", name)
    ds.add_new(0x00091002, "SQ", Sequence([Dataset()]))
    ds[0x00091002].value[0].PatientName = name
    ds.add_new(0x60000010, "US", 4)
    ds.add_new(0x60000011, "US", 4)
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60003000, "OW", b"\x01\x02")
    ds.add_new(0x60004000, "LT", f"overlay by {name}")
    ds.add_new(0x50000005, "US", 1)
    ds.add_new(0x50003000, "OW", b"\x00\x01")
    ds.Rows, ds.Columns = 4, 4
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.arange(16, dtype=np.uint16).reshape(4, 4).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return ds


def digest_tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def all_bytes(*roots: Path) -> bytes:
    return b"".join(p.read_bytes() for root in roots if root.exists() for p in root.rglob("*") if p.is_file())


@pytest.fixture()
def rich_tree(tmp_path):
    src = tmp_path / "in"
    study = generate_uid()
    a = make_file(src / "p1" / "a.dcm", study=study)
    make_file(src / "p1" / "sub" / "b.dcm", study=study, ref_sop=a.SOPInstanceUID, study_date="20200301")
    make_file(src / "p2" / "c.dcm", name="Other^Person", pid="PID-2", burned="YES", modality="US")
    (src / "notes.txt").write_text("not a dicom file")
    broken = (src / "p1" / "a.dcm").read_bytes()[:300]
    (src / "p2" / "broken.dcm").write_bytes(broken)
    # Cut short inside the pixel data: the header, patient name included, is intact.
    (src / "p2" / "cut.dcm").write_bytes((src / "p1" / "a.dcm").read_bytes()[:-10])
    return src, a


# ------------------------------------------------------------------------------------- table


def test_table_is_complete_and_valid():
    meta, rows = load_table()
    assert "edition" in meta and "source" in meta
    assert len(rows) == 460 == int(meta["rows"])
    tags = [r.tag for r in rows]
    assert len(set(tags)) == len(tags)
    valid = {"D", "Z", "X", "K", "C", "U", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"}
    assert {r.basic for r in rows} <= valid
    columns = {col for col, _, _ in OPTIONS.values()}
    header = Path(__file__).parents[1].joinpath("src/xaicli/anonymize/table_e1_1.csv").read_text().splitlines()
    header = next(line for line in header if not line.startswith("#")).split(",")
    assert columns <= set(header)
    for row in rows:
        assert set(row.options) <= columns and set(row.options.values()) <= {"K", "C", "X"}
    # Landmarks of the standard's table.
    by_tag = {r.tag: r for r in rows}
    assert by_tag["(0010,0010)"].basic == "Z" and by_tag["(0020,000D)"].basic == "U"
    assert by_tag["(0008,0080)"].options == {"institution_identity": "K"}
    assert {"(50XX,XXXX)", "(60XX,3000)", "(60XX,4000)", "(GGGG,EEEE)"} <= set(tags)
    for code in ("X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"):
        assert any(r.basic == code for r in rows)


def test_rules_options_and_overrides():
    basic = build_rules()
    assert basic.actions[parse_tag("InstitutionName")] == "D"
    assert basic.actions[parse_tag("PatientName")] == "P"
    assert basic.actions[parse_tag("StudyInstanceUID")] == "U"
    assert basic.actions[parse_tag("StudyDate")] == "Z"
    kept = build_rules(["retain-institution-identity", "retain-long-modified-dates"], keep=["StationName"],
                       remove=["(0008,0070)"])
    assert kept.actions[parse_tag("InstitutionName")] == "K"
    assert kept.actions[parse_tag("StudyDate")] == "C"
    assert kept.actions[parse_tag("StationName")] == "K"
    assert kept.actions[0x00080070] == "X"
    from xaicli.errors import UsageError

    with pytest.raises(UsageError):
        build_rules(["retain-everything"])
    with pytest.raises(UsageError):
        build_rules(["retain-long-full-dates", "retain-long-modified-dates"])


# ----------------------------------------------------------------------------------- the run


def test_cli_rich_tree(tmp_path, rich_tree):
    src, a = rich_tree
    before = digest_tree(src)
    out = tmp_path / "out"
    result = runner.invoke(app, ["dicom-anonymize", str(src), "-o", str(out), "--key", "k1", "--jobs", "1"])
    assert result.exit_code == 4, result.output  # one quarantined, one broken
    assert digest_tree(src) == before  # inputs untouched
    quarantine = tmp_path / "out-quarantine"
    assert (out / "p1" / "a.dcm").exists() and (out / "p1" / "sub" / "b.dcm").exists()
    assert (quarantine / "p2" / "c.dcm").exists() and not (out / "p2" / "c.dcm").exists()
    report = json.loads((out / "anonymize-report.json").read_text())
    assert [Path(s["input"]).name for s in report["skipped"]] == ["notes.txt"]
    assert [Path(f["input"]).name for f in report["failed"]] == ["broken.dcm", "cut.dcm"]
    assert "truncated" in report["failed"][1]["reason"]
    assert [Path(q["input"]).name for q in report["quarantined"]] == ["c.dcm"]
    # No patient data anywhere: outputs, quarantine, audit, report, console.
    blob = all_bytes(out, quarantine) + result.output.encode()
    for secret in (b"Zyxwvutsrq", b"Quintessa", PID.encode(), b"19610203", b"ACC123456", a.SOPInstanceUID.encode()):
        assert secret not in blob, secret
    rules = build_rules()
    da = pydicom.dcmread(out / "p1" / "a.dcm")
    db = pydicom.dcmread(out / "p1" / "sub" / "b.dcm")
    for ds in (da, db):
        assert scan_findings(ds, rules, frozenset()) == []
        assert not any(int(t) >> 16 & 1 for t in ds.keys())
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SOPInstanceUID.startswith("2.25.") and len(ds.SOPInstanceUID) <= 64
        assert not any(int(t) >> 16 in (0x5000, 0x6000) for t in ds.keys())
        assert ds.PixelData == np.arange(16, dtype=np.uint16).reshape(4, 4).tobytes()
    assert da.StudyInstanceUID == db.StudyInstanceUID != a.StudyInstanceUID
    assert da.PatientID == db.PatientID == str(da.PatientName) and da.PatientID.startswith("ANON-")
    # The reference from b to a survives the remapping.
    assert db.ReferencedImageSequence[0].ReferencedSOPInstanceUID == da.SOPInstanceUID
    # Standard UIDs are not touched.
    assert da.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1"
    # The audit lists actions and never values.
    audit = (out / "anonymize-audit.csv").read_text()
    assert "(0010,0010)" in audit and "ReferencedStudySequence" in audit or "(0008,1110)" in audit
    # Same key, second run: same identities. Another key: different ones.
    out2, out3 = tmp_path / "out2", tmp_path / "out3"
    assert runner.invoke(app, ["dicom-anonymize", str(src / "p1"), "-o", str(out2), "--key", "k1"]).exit_code == 0
    assert pydicom.dcmread(out2 / "a.dcm").SOPInstanceUID == da.SOPInstanceUID
    assert pydicom.dcmread(out2 / "a.dcm").PatientID == da.PatientID
    assert runner.invoke(app, ["dicom-anonymize", str(src / "p1"), "-o", str(out3), "--key", "k2"]).exit_code == 0
    assert pydicom.dcmread(out3 / "a.dcm").SOPInstanceUID != da.SOPInstanceUID
    # --check: clean output passes, the raw input does not.
    ok = runner.invoke(app, ["dicom-anonymize", "--check", str(out)])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["dicom-anonymize", "--check", str(src)])
    assert bad.exit_code == 4
    assert "Zyxwvutsrq" not in bad.output and "private attribute" in bad.output


def test_no_overwrite_clashes_dry_run_and_generated_key(tmp_path):
    one, two = tmp_path / "one" / "x", tmp_path / "two" / "x"
    make_file(one / "img.dcm")
    make_file(two / "img.dcm")
    out = tmp_path / "out"
    # Two input folders named x with the same file: both kept, the clash reported.
    result = runner.invoke(app, ["dicom-anonymize", str(one), str(two), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "x" / "img.dcm").exists() and (out / "x" / "img__2.dcm").exists()
    assert "name clash" in result.output
    key_file = out / "xaicli-anonymize.key"
    assert key_file.exists() and (key_file.stat().st_mode & 0o777) == 0o600
    # A rerun never overwrites: each file is listed as failed, exit 4 (the audit is refused first).
    again = runner.invoke(app, ["dicom-anonymize", str(one), str(two), "-o", str(out)])
    assert again.exit_code == 6 and "exists already" in again.output
    # The stored key maps identities the same way in another folder.
    out2 = tmp_path / "out2"
    assert runner.invoke(app, ["dicom-anonymize", str(one), "-o", str(out2), "--key-file", str(key_file)]).exit_code == 0
    assert pydicom.dcmread(out2 / "img.dcm").SOPInstanceUID == pydicom.dcmread(out / "x" / "img.dcm").SOPInstanceUID
    # An existing output file without --overwrite: that file fails, nothing replaced.
    out3 = tmp_path / "out3"
    out3.mkdir()
    (out3 / "img.dcm").write_bytes(b"keep me")
    clash = runner.invoke(app, ["dicom-anonymize", str(one / "img.dcm"), "-o", str(out3), "--key", "k"])
    assert clash.exit_code == 4 and (out3 / "img.dcm").read_bytes() == b"keep me"
    # --overwrite replaces it.
    assert runner.invoke(app, ["dicom-anonymize", str(one / "img.dcm"), "-o", str(out3), "--key", "k",
                               "--overwrite"]).exit_code == 0
    assert pydicom.dcmread(out3 / "img.dcm").PatientIdentityRemoved == "YES"
    # Dry run writes nothing at all.
    dry = tmp_path / "dry"
    result = runner.invoke(app, ["dicom-anonymize", str(one), "-o", str(dry), "--dry-run", "--key", "k"])
    assert result.exit_code == 0 and not dry.exists()
    assert "Dry run" in result.output


def test_options_modified_dates_recipe_and_mask(tmp_path):
    src = tmp_path / "in"
    make_file(src / "a.dcm", study_date="20200115")
    make_file(src / "b.dcm", study_date="20200301", burned="YES")
    recipe = tmp_path / "site.yaml"
    recipe.write_text("options: [retain-long-modified-dates, retain-institution-identity]\nremove: [StationName]\n"
                      "keep: [PatientSex]\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["dicom-anonymize", str(src), "-o", str(out), "--recipe", str(recipe), "--key", "k",
                                 "--burned-in", "mask", "--mask-box", "0,0,2,2", "--option", "clean-descriptors"])
    assert result.exit_code == 0, result.output
    a, b = pydicom.dcmread(out / "a.dcm"), pydicom.dcmread(out / "b.dcm")
    assert a.InstitutionName == "St Quintessa Hospital"  # retained by the option
    from datetime import date

    da, db = (date(int(x.StudyDate[:4]), int(x.StudyDate[4:6]), int(x.StudyDate[6:])) for x in (a, b))
    assert (db - da).days == (date(2020, 3, 1) - date(2020, 1, 15)).days  # interval kept
    assert a.StudyDate != "20200115" and a.LongitudinalTemporalInformationModified == "MODIFIED"
    assert "Quintessa" not in a.StudyDescription and a.StudyDescription.startswith("chest for")  # cleaned
    pixels = np.frombuffer(b.PixelData, dtype=np.uint16).reshape(4, 4)
    assert (pixels[:2, :2] == 0).all() and pixels[3, 3] == 15 and b.BurnedInAnnotation == "NO"
    assert "113101" in [i.CodeValue for i in b.DeidentificationMethodCodeSequence]
    bad = tmp_path / "bad.yaml"
    bad.write_text("options: [nope]\n")
    result = runner.invoke(app, ["dicom-anonymize", str(src), "-o", str(tmp_path / "o2"), "--recipe", str(bad)])
    assert result.exit_code == 2 and "unknown profile option" in result.output


def _pydicom_test_files() -> list[Path]:
    # Only the files shipped in the wheel: never trigger pydicom's on-demand downloads.
    import pydicom.data

    root = Path(pydicom.data.__file__).parent / "test_files"
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_pydicom_test_files(tmp_path):
    files = _pydicom_test_files()
    assert len(files) > 50
    src = tmp_path / "in"
    src.mkdir()
    for i, path in enumerate(files):  # flatten: one folder, stable distinct names
        (src / f"{i:03d}_{path.name}").write_bytes(path.read_bytes())
    before = digest_tree(src)
    out = tmp_path / "out"
    result = runner.invoke(app, ["dicom-anonymize", str(src), "-o", str(out), "--key", "k", "--jobs", "2",
                                 "--burned-in", "keep"])
    assert result.exit_code in (0, 4), result.output
    assert digest_tree(src) == before
    report = json.loads((out / "anonymize-report.json").read_text())
    listed = {Path(r["input"]).name for key in ("skipped", "failed") for r in report[key]}
    written = {p.name for p in out.iterdir()}
    for path in src.iterdir():  # every input has an output or a listed reason
        assert path.name in written or path.name in listed, path.name
    assert len(report["failed"]) <= 2, report["failed"]
    rules = build_rules()
    studies: dict[str, set[str]] = {}
    shared: dict[str, int] = {}
    for path in out.iterdir():
        if path.suffix in (".csv", ".json", ".key"):
            continue
        ds = pydicom.dcmread(path, force=True)  # every output readable
        assert [f for f in scan_findings(ds, rules, frozenset()) if "burned" not in f[2]] == []
        original = pydicom.dcmread(src / path.name, force=True)
        if "PixelData" in original:
            assert ds.PixelData == original.PixelData  # pixels untouched
        if "SOPInstanceUID" in original and original.SOPInstanceUID:
            assert ds.SOPInstanceUID != original.SOPInstanceUID
        if original.get("StudyInstanceUID"):
            studies.setdefault(str(original.StudyInstanceUID), set()).add(str(ds.StudyInstanceUID))
            shared[str(original.StudyInstanceUID)] = shared.get(str(original.StudyInstanceUID), 0) + 1
    # Files sharing a study (pydicom's set has several) keep sharing one new study UID.
    assert max(shared.values()) >= 2
    assert all(len(new) == 1 for new in studies.values()), studies
    assert not set(studies) & set().union(*studies.values())
    check = runner.invoke(app, ["dicom-anonymize", "--check", str(out), "--burned-in-modalities", ""])
    assert check.exit_code == 0, check.output[-2000:]
    os.sync()


def test_retain_safe_private_keeps_only_listed_private_attributes(tmp_path):
    src = tmp_path / "in"
    make_file(src / "a.dcm")
    recipe = tmp_path / "site.yaml"
    recipe.write_text('options: [retain-safe-private]\nsafe_private: ["ACME_PRIVATE (0009,xx02)"]\n')
    out = tmp_path / "out"
    result = runner.invoke(app, ["dicom-anonymize", str(src), "-o", str(out), "--recipe", str(recipe), "--key", "k"])
    assert result.exit_code == 0, result.output
    ds = pydicom.dcmread(out / "a.dcm")
    assert 0x00090010 in ds and 0x00091002 in ds  # the creator and the listed element
    assert 0x00091001 not in ds  # not listed: removed
    rules = build_rules(["retain-safe-private"], safe_private=["ACME_PRIVATE (0009,xx02)"])
    assert [f for f in scan_findings(ds, rules, frozenset()) if f[2] == "private attribute"] == []
    # The sequence kept inside the safe private attribute still had the profile applied.
    assert "PatientName" not in ds[0x00091002].value[0] or str(ds[0x00091002].value[0].PatientName) != NAME
