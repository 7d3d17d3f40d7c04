"""xaicli dicom-anonymize: Table E.1-1 data, the engine at every depth, the CLI, --check."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
from anonymize_fixtures import MIRROR, NAME, PID, all_bytes, digest_tree, make_file, runner
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from xaicli.anonymize.checker import PSEUDONYM_RE, scan_findings
from xaicli.anonymize.profile import OPTIONS, build_rules, load_table, parse_tag
from xaicli.cli import app
from xaicli.dicom import quiet_pydicom


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


TABLE_CSV = Path(__file__).parents[1] / "src" / "xaicli" / "anonymize" / "table_e1_1.csv"
REPEATING = {"(50XX,XXXX)", "(60XX,3000)", "(60XX,4000)", "(GGGG,EEEE)"}


def _tag_int(text: str) -> int:
    return int(text[1:5] + text[6:10], 16)


def test_table_is_the_current_edition():
    """Checks that do not come from the table itself: landmark rows of recent editions, the size of
    the current table, pydicom's data dictionary."""
    from pydicom.datadict import DicomDictionary

    meta, rows = load_table()
    assert meta["edition"].startswith("2026c") and "dicom-anonymizer" in meta["source"]
    by_tag = {r.tag: r for r in rows}
    assert len(by_tag) == len(rows) == int(meta["rows"])
    # PS3.15 2026c lists about 650 attributes; the 2021-era transcription had 460.
    assert len(rows) >= 640
    # Rows added to Table E.1-1 in recent editions, with their Basic Profile action.
    for tag, code in {"(0008,0012)": "X/D", "(0008,0013)": "X/Z/D", "(0040,A032)": "X/D", "(0008,0017)": "U",
                      "(0040,A030)": "D", "(0014,407E)": "X", "(0074,1234)": "X", "(0074,1236)": "X",
                      "(2100,0070)": "X", "(3006,002D)": "X", "(0010,0020)": "Z/D"}.items():
        assert by_tag[tag].basic == code, tag
    assert by_tag["(0008,0012)"].options_source == "derived"
    assert by_tag["(0008,0012)"].options == {"long_full_dates": "K", "long_modified_dates": "C"}
    assert by_tag["(0008,0080)"].options == {"institution_identity": "K"}
    assert by_tag["(0008,0080)"].options_source == "standard"
    assert REPEATING <= set(by_tag)
    valid = {"D", "Z", "X", "K", "C", "U", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"}
    assert {r.basic for r in rows} <= valid
    columns = {col for col, _, _ in OPTIONS.values()}
    header = next(line for line in TABLE_CSV.read_text().splitlines() if not line.startswith("#")).split(",")
    assert columns | {"options_source"} <= set(header)
    for row in rows:
        assert set(row.options) <= columns and set(row.options.values()) <= {"K", "C", "X"}
        assert row.options_source in ("standard", "derived")
    # Every tag is pydicom's, under the same name; the few it does not know yet (attributes newer
    # than its dictionary, e.g. Gender Identity Sequence) stay few.
    unknown = []
    normal = lambda text: "".join(c for c in text.lower() if c.isalnum())  # noqa: E731
    for row in rows:
        if row.tag in REPEATING:
            continue
        entry = DicomDictionary.get(_tag_int(row.tag))
        if entry is None:
            unknown.append(row.tag)
        else:
            assert normal(entry[2]) == normal(row.name), row.tag
    assert len(unknown) <= 30, unknown
    # Every current person-name, date, date-time and time attribute of the dictionary is in the
    # table (a stale table misses dozens), except the few the standard leaves out: DICONDE (0014),
    # DICOS (4010) and inventory (0008,04xx) ones.
    missing = {
        tag for tag, entry in DicomDictionary.items()
        if entry[0] in ("PN", "DA", "DT", "TM") and entry[3] != "Retired" and not tag >> 16 & 1
        and f"({tag >> 16:04X},{tag & 0xFFFF:04X})" not in by_tag
    }
    assert {t for t in missing if t >> 16 not in (0x0014, 0x4010) and not 0x00080400 <= t <= 0x000804FF} == set()


def test_table_regenerates_from_its_script():
    """scripts/update_dicom_table.py rebuilds the CSV byte for byte from dicom-anonymizer (in the
    test extra: imported, never skipped)."""
    import importlib.util

    import dicomanonymizer.dicom_anonymization_databases.dicomfields_2026c  # noqa: F401
    spec = importlib.util.spec_from_file_location("update_dicom_table", TABLE_CSV.parents[3] / "scripts" / "update_dicom_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    existing = [r for r in module.read_existing() if r["options_source"] == "standard"]
    table, _ = module.build(existing, module.read_edition())
    text = module.render(table, module.previous_changes(), module.measure(existing))
    assert text == TABLE_CSV.read_text(encoding="utf-8")


def test_new_rows_reach_the_files():
    """Instance Creation Date and Observation DateTime (added rows) no longer pass through."""
    ds = Dataset()
    ds.InstanceCreationDate, ds.InstanceCreationTime, ds.StudyDate = "20040119", "072730", "20040119"
    item = Dataset()
    item.ObservationDateTime = "20040119072730"
    item.VerificationDateTime = "20040119072730"
    item.InstanceCreationDate = "20040119"
    ds.AnatomicRegionSequence = Sequence([item])  # not in the table: walked into, rows applied inside
    from xaicli.anonymize.actions import anonymize_dataset
    from xaicli.anonymize.settings import Settings

    anonymize_dataset(ds, Settings(rules=build_rules(), key=b"k"))
    assert "20040119" not in str(ds)
    kept = build_rules(["retain-long-full-dates"])
    assert kept.actions[parse_tag("InstanceCreationDate")] == "K"


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
    result = runner.invoke(app, ["dicom-anonymize", *MIRROR, str(src), "-o", str(out), "--key", "k1", "--jobs", "1"])
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
    header, *rows = csv.reader(io.StringIO(audit))
    assert header == ["input", "output", "location", "keyword", "vr", "action", "basis"]
    # Both files' Patient's Name (P) and Referenced Study Sequence (Z), each a row of its own.
    for out_name in ("p1/a.dcm", "p1/sub/b.dcm"):
        assert [out_name, out_name, "(0010,0010)", "PatientName", "PN", "P", "E.1-1"] in rows
        assert [out_name, out_name, "(0008,1110)", "ReferencedStudySequence", "SQ", "Z", "E.1-1"] in rows
    # Same key, second run: same identities. Another key: different ones.
    out2, out3 = tmp_path / "out2", tmp_path / "out3"
    assert runner.invoke(app, ["dicom-anonymize", *MIRROR, str(src / "p1"), "-o", str(out2), "--key", "k1"]).exit_code == 0
    assert pydicom.dcmread(out2 / "a.dcm").SOPInstanceUID == da.SOPInstanceUID
    assert pydicom.dcmread(out2 / "a.dcm").PatientID == da.PatientID
    assert runner.invoke(app, ["dicom-anonymize", *MIRROR, str(src / "p1"), "-o", str(out3), "--key", "k2"]).exit_code == 0
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
    result = runner.invoke(app, ["dicom-anonymize", *MIRROR, str(one), str(two), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "x" / "img.dcm").exists() and (out / "x" / "img__2.dcm").exists()
    assert "name clash" in result.output
    # The generated key lies beside the output folder, never inside what is shared.
    key_file = tmp_path / "out.key"
    assert key_file.exists() and (key_file.stat().st_mode & 0o777) == 0o600
    assert not list(out.rglob("*.key")) and str(key_file) in result.output.replace("\n", "")
    # The audit names inputs relative to their input root: no folder above what is mirrored.
    audit = (out / "anonymize-audit.csv").read_text()
    assert str(tmp_path) not in audit and "\nx/img.dcm," in audit
    # A rerun never overwrites: each file is listed as failed, exit 4 (the audit is refused first).
    again = runner.invoke(app, ["dicom-anonymize", *MIRROR, str(one), str(two), "-o", str(out)])
    assert again.exit_code == 6 and "exists already" in again.output
    # A later run into the same output (its audit replaced) reuses the key beside it, and says so.
    make_file(one / "later.dcm", sop="1.2.3.4.5.6.7")
    later = runner.invoke(app, ["dicom-anonymize", *MIRROR, str(one / "later.dcm"), "-o", str(out), "--json", "--overwrite"])
    assert later.exit_code == 0, later.output
    assert json.loads(later.output)["key"].startswith(f"key reused from {key_file}")
    assert runner.invoke(app, ["dicom-anonymize", *MIRROR, str(one / "later.dcm"), "-o", str(tmp_path / "o4"),
                               "--key-file", str(key_file)]).exit_code == 0
    assert pydicom.dcmread(out / "later.dcm").SOPInstanceUID == pydicom.dcmread(tmp_path / "o4" / "later.dcm").SOPInstanceUID
    # The stored key maps identities the same way in another folder.
    out2 = tmp_path / "out2"
    assert runner.invoke(app, ["dicom-anonymize", *MIRROR, str(one), "-o", str(out2), "--key-file", str(key_file)]).exit_code == 0
    assert pydicom.dcmread(out2 / "img.dcm").SOPInstanceUID == pydicom.dcmread(out / "x" / "img.dcm").SOPInstanceUID
    # An existing output file without --overwrite: that file fails, nothing replaced.
    out3 = tmp_path / "out3"
    out3.mkdir()
    (out3 / "img.dcm").write_bytes(b"keep me")
    clash = runner.invoke(app, ["dicom-anonymize", *MIRROR, str(one / "img.dcm"), "-o", str(out3), "--key", "k"])
    assert clash.exit_code == 4 and (out3 / "img.dcm").read_bytes() == b"keep me"
    # --overwrite replaces it.
    assert runner.invoke(app, ["dicom-anonymize", *MIRROR, str(one / "img.dcm"), "-o", str(out3), "--key", "k",
                               "--overwrite"]).exit_code == 0
    assert pydicom.dcmread(out3 / "img.dcm").PatientIdentityRemoved == "YES"
    # A dry run into an output that already holds the file reports it failing, as the run would.
    dry_clash = runner.invoke(app, ["dicom-anonymize", *MIRROR, str(one / "img.dcm"), "-o", str(out3), "--key", "k",
                                    "--dry-run"])
    assert dry_clash.exit_code == 4 and "exists already" in dry_clash.output
    # Dry run writes nothing at all.
    dry = tmp_path / "dry"
    result = runner.invoke(app, ["dicom-anonymize", *MIRROR, str(one), "-o", str(dry), "--dry-run", "--key", "k"])
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
    result = runner.invoke(app, ["dicom-anonymize", *MIRROR, str(src), "-o", str(out), "--recipe", str(recipe), "--key", "k",
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
    result = runner.invoke(app, ["dicom-anonymize", *MIRROR, str(src), "-o", str(tmp_path / "o2"), "--recipe", str(bad)])
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
    result = runner.invoke(app, ["dicom-anonymize", *MIRROR, str(src), "-o", str(out), "--key", "k", "--jobs", "2",
                                 "--burned-in", "keep"])
    assert result.exit_code in (0, 4), result.output
    assert digest_tree(src) == before
    report = json.loads((out / "anonymize-report.json").read_text())
    listed = {Path(r["input"]).name for key in ("skipped", "failed", "held_back") for r in report[key]}
    # The headerless no_meta.dcm is de-identified, not skipped; DICOMDIRs are held back with the reason.
    assert any(p.name.endswith("_no_meta.dcm") for p in out.iterdir())
    assert not any(r["input"].endswith("no_meta.dcm") for r in report["skipped"] + report["failed"])
    held = report["held_back"]
    assert held and all("DICOMDIR" in r["input"] and r["reason"].startswith("DICOMDIR: regenerate") for r in held)
    written = {p.name for p in out.iterdir()}
    for path in src.iterdir():  # every input has an output or a listed reason
        assert path.name in written or path.name in listed, path.name
    assert len(report["failed"]) <= 2, report["failed"]  # the two truncated files
    print(f"pydicom test files: {len(files)}, de-identified {report['deidentified']}, held back {len(held)}, "
          f"skipped {len(report['skipped'])}, failed {len(report['failed'])}")
    rules = build_rules()
    studies: dict[str, set[str]] = {}
    shared: dict[str, int] = {}
    for path in out.iterdir():
        if path.suffix in (".csv", ".json", ".key"):
            continue
        ds = pydicom.dcmread(path, force=True)  # every output readable
        assert [f for f in scan_findings(ds, rules, frozenset()) if "burned" not in f[2]] == []
        with quiet_pydicom():  # pydicom warns about the originals' own oddities
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
    # Nothing of any input's names, IDs, birth dates, addresses, institutions or physicians either.
    against = runner.invoke(app, ["dicom-anonymize", "--check", str(out), "--against", str(src),
                                  "--burned-in-modalities", ""])
    assert against.exit_code == 0, against.output[-2000:]
    os.sync()


def test_retain_safe_private_keeps_only_listed_private_attributes(tmp_path):
    src = tmp_path / "in"
    make_file(src / "a.dcm")
    recipe = tmp_path / "site.yaml"
    recipe.write_text('options: [retain-safe-private]\nsafe_private: ["ACME_PRIVATE (0009,xx02)"]\n')
    out = tmp_path / "out"
    result = runner.invoke(app, ["dicom-anonymize", *MIRROR, str(src), "-o", str(out), "--recipe", str(recipe), "--key", "k"])
    assert result.exit_code == 0, result.output
    ds = pydicom.dcmread(out / "a.dcm")
    assert 0x00090010 in ds and 0x00091002 in ds  # the creator and the listed element
    assert 0x00091001 not in ds  # not listed: removed
    rules = build_rules(["retain-safe-private"], safe_private=["ACME_PRIVATE (0009,xx02)"])
    assert [f for f in scan_findings(ds, rules, frozenset()) if f[2] == "private attribute"] == []
    # The sequence kept inside the safe private attribute still had the profile applied.
    item = ds[0x00091002].value[0]
    assert PSEUDONYM_RE.match(str(item.PatientName))  # the item's own patient, pseudonymised
    assert b"Zyxwvutsrq" not in (out / "a.dcm").read_bytes() and b"Quintessa" not in (out / "a.dcm").read_bytes()


# ----------------------------------------------------------------------- --check and the rest


def _clean_output(tmp_path) -> tuple[Path, Path]:
    src = tmp_path / "in"
    make_file(src / "a.dcm")
    out = tmp_path / "out"
    assert runner.invoke(app, ["dicom-anonymize", *MIRROR, str(src), "-o", str(out), "--key", "k"]).exit_code == 0
    return src, out


def test_check_finds_every_kind_of_residual(tmp_path):
    src, out = _clean_output(tmp_path)
    rules = build_rules()
    clean = pydicom.dcmread(out / "a.dcm")
    assert scan_findings(clean, rules, frozenset()) == []
    original = pydicom.dcmread(src / "a.dcm")
    tampered = {
        "(0010,0010)": lambda ds: setattr(ds, "PatientName", NAME),  # not a pseudonym
        "(0010,0020)": lambda ds: setattr(ds, "PatientID", PID),
        "(0010,0030)": lambda ds: setattr(ds, "PatientBirthDate", "19610203"),  # Z with a value
        "(0008,0020)": lambda ds: setattr(ds, "StudyDate", "20200115"),
        "(0008,0050)": lambda ds: setattr(ds, "AccessionNumber", "ACC123456"),
        "(0008,0080)": lambda ds: setattr(ds, "InstitutionName", "St Quintessa Hospital"),  # D, not the dummy
        "(0008,0018)": lambda ds: setattr(ds, "SOPInstanceUID", original.SOPInstanceUID),  # U not replaced
        "(0008,0012)": lambda ds: setattr(ds, "InstanceCreationDate", "20200115"),  # a row of the new edition
    }
    for location, tamper in tampered.items():
        ds = pydicom.dcmread(out / "a.dcm")
        tamper(ds)
        found = {f[0] for f in scan_findings(ds, rules, frozenset())}
        assert location in found, location
    # A non-empty sequence the profile empties (Z), with an X attribute inside it: both found.
    ds = pydicom.dcmread(out / "a.dcm")
    item = Dataset()
    item.PatientAddress = "1 Main Street"
    item.PatientName = NAME
    ds.ReferencedStudySequence = Sequence([item])
    found = {f[0]: f[2] for f in scan_findings(ds, rules, frozenset())}
    assert "still has items" in found["(0008,1110)"]
    assert "(0008,1110)[0].(0010,1040)" in found and "(0008,1110)[0].(0010,0010)" in found
    # Through the CLI: exit 4, the findings named, no value printed.
    ds.save_as(out / "a.dcm")
    result = runner.invoke(app, ["dicom-anonymize", "--check", str(out)])
    assert result.exit_code == 4 and "Zyxwvutsrq" not in result.output and "1 Main" not in result.output


def test_headerless_dicom_is_read_in_run_and_check(tmp_path):
    ds = Dataset()
    ds.PatientName = NAME  # the first element: (0010,0010), no preamble, no file meta
    ds.PatientID = PID
    ds.StudyInstanceUID = generate_uid()
    src = tmp_path / "in"
    src.mkdir()
    ds.save_as(src / "bare.dcm", implicit_vr=True, little_endian=True)
    assert (src / "bare.dcm").read_bytes()[:4] == b"\x10\x00\x10\x00"
    (src / "text.txt").write_text("(0010,0010) is not a data set\n" * 20)
    out = tmp_path / "out"
    result = runner.invoke(app, ["dicom-anonymize", *MIRROR, str(src), "-o", str(out), "--key", "k", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["deidentified"] == 1 and json.loads(result.output)["skipped"] == 1
    done = pydicom.dcmread(out / "bare.dcm", force=True)
    assert str(done.PatientName).startswith("ANON-") and done.PatientIdentityRemoved == "YES"
    bad = runner.invoke(app, ["dicom-anonymize", "--check", str(src), "--json"])
    assert bad.exit_code == 4 and json.loads(bad.output.splitlines()[0])["checked"] == 1
    assert runner.invoke(app, ["dicom-anonymize", "--check", str(out)]).exit_code == 0


def test_reserved_names_at_the_output_root(tmp_path):
    src = tmp_path / "in"
    make_file(src / "anonymize-audit.csv")
    make_file(src / "sub" / "anonymize-report.json")  # not at the root: no clash
    out = tmp_path / "out"
    for extra in ([], ["--overwrite"]):
        result = runner.invoke(app, ["dicom-anonymize", *MIRROR, str(src), "-o", str(out), "--key", "k", *extra])
        assert result.exit_code == 0, result.output
        assert "written as anonymize-audit__2.csv" in result.output.replace("\n", "")
        assert (out / "anonymize-audit.csv").read_text().startswith("input,output,")
        assert pydicom.dcmread(out / "anonymize-audit__2.csv").PatientIdentityRemoved == "YES"
        assert pydicom.dcmread(out / "sub" / "anonymize-report.json").PatientIdentityRemoved == "YES"
        report = json.loads((out / "anonymize-report.json").read_text())
        assert report["clashes"] == [{"input": "anonymize-audit.csv", "renamed_to": "anonymize-audit__2.csv"}]


def test_identity_per_item_and_per_study(tmp_path):
    from xaicli.anonymize.actions import anonymize_dataset
    from xaicli.anonymize.settings import Settings

    settings = Settings(rules=build_rules(["retain-long-modified-dates"]), key=b"k")
    ds = Dataset()
    ds.PatientName, ds.PatientID = "Doe^Archibald", "77654033"
    records = []
    for name, pid in (("Doe^Archibald", "77654033"), ("Doe^Peter", "98890234")):
        record = Dataset()
        record.PatientName, record.PatientID = name, pid
        records.append(record)
    ds.AnatomicRegionSequence = Sequence(records)  # a sequence the profile walks into
    anonymize_dataset(ds, settings)
    first, second = ds.AnatomicRegionSequence
    assert first.PatientID == ds.PatientID != second.PatientID
    assert str(second.PatientName) == second.PatientID and second.PatientID.startswith("ANON-")
    # Files that name no patient: one identity per study, not one shared by all such files.
    unnamed = []
    for study in ("1.2.3.1", "1.2.3.1", "1.2.3.2"):
        item = Dataset()
        item.StudyInstanceUID, item.StudyDate = study, "20200115"
        anonymize_dataset(item, settings)
        unnamed.append(item.StudyDate)
    assert unnamed[0] == unnamed[1] != unnamed[2]


def test_clean_graphics_cleans_overlay_and_curve_text(tmp_path):
    src = tmp_path / "in"
    make_file(src / "a.dcm")
    ds = pydicom.dcmread(src / "a.dcm")
    ds.add_new(0x60000022, "LO", f"ov {NAME}")  # Overlay Description
    ds.add_new(0x50002500, "LO", f"curve of {NAME}")  # Curve Label
    ds.save_as(src / "a.dcm")
    out = tmp_path / "out"
    result = runner.invoke(app, ["dicom-anonymize", *MIRROR, str(src), "-o", str(out), "--key", "k", "--option", "clean-graphics"])
    assert result.exit_code == 0, result.output
    done = pydicom.dcmread(out / "a.dcm")
    assert done[0x60003000].value == b"\x01\x02"  # the bitmap is kept
    for tag, start in ((0x60000022, "ov "), (0x60004000, "overlay by "), (0x50002500, "curve of ")):
        assert done[tag].value.startswith(start) and "Quintessa" not in done[tag].value, hex(tag)


def test_class_uids_kept_and_safe_private_without_list(tmp_path):
    src = tmp_path / "in"
    make_file(src / "a.dcm")
    ds = pydicom.dcmread(src / "a.dcm")
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.113619.4.26"  # a private SOP class
    ds.save_as(src / "a.dcm")
    out = tmp_path / "out"
    result = runner.invoke(app, ["dicom-anonymize", *MIRROR, str(src), "-o", str(out), "--key", "k",
                                 "--option", "retain-safe-private"])
    assert result.exit_code == 0, result.output
    assert "no private attribute is retained" in result.output.replace("\n", " ")
    done = pydicom.dcmread(out / "a.dcm")
    assert done.SOPClassUID == done.file_meta.MediaStorageSOPClassUID == "1.2.840.113619.4.26"
    assert "113111" not in [i.CodeValue for i in done.DeidentificationMethodCodeSequence]
    assert not any(int(t) >> 16 & 1 for t in done.keys())
