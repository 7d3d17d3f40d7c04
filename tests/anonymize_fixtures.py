"""DICOM files for the anonymiser's tests (importable: pytest puts tests/ on sys.path).

Every identifying value here is made up and unique, so that finding any of it in an output is a
leak and nothing else.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from typer.testing import CliRunner

MIRROR = ["--layout", "mirror"]  # the tests written for the mirrored layout ask for it
NAME = "Zyxwvutsrq^Quintessa"  # unique: must appear in no output of any kind
PID = "PID-99887766"
runner = CliRunner()


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


# ------------------------------------------------------------- a patient for the leak tests

# Made-up values: the given name has two letters (issue 14: parts shorter than three were missed).
LEAK_NAME, LEAK_PID, LEAK_BIRTH = "Qorvath^Jo", "MRN505050", "19700102"
LEAK_ADDRESS, LEAK_INSTITUTION = "12 Brindlewood Lane, Marrowgate", "Kestrelford Royal Infirmary"
LEAK_PHYSICIAN, LEAK_BIRTH_NAME = "Vantreese^Odalys", "Hartigan^Jo"
LEAK_WORDS = ("Qorvath", "MRN505050", "19700102", "Brindlewood", "Marrowgate", "Kestrelford", "Vantreese", "Odalys",
              "Hartigan")


def patient_file(path: Path | None = None, *, charset: str | None = None, name: str = LEAK_NAME,
                 implicit: bool = False, **attributes) -> Dataset:
    """A small CR image of the leak tests' patient; ``attributes`` (keyword or tag -> value, or
    tag -> (VR, value)) are added; written to ``path`` when given."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = "1.2.840.10008.1.2" if implicit else ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    if charset:
        ds.SpecificCharacterSet = charset.split("\\")
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = name, LEAK_PID, LEAK_BIRTH
    ds.PatientBirthName, ds.PatientAddress = LEAK_BIRTH_NAME, LEAK_ADDRESS
    ds.InstitutionName, ds.ReferringPhysicianName = LEAK_INSTITUTION, LEAK_PHYSICIAN
    ds.StudyDate, ds.StudyTime, ds.Modality, ds.BurnedInAnnotation = "20200115", "101500", "CR", "NO"
    for key, value in attributes.items():
        if isinstance(value, tuple):
            ds.add_new(int(key, 16) if isinstance(key, str) else key, *value)
        else:
            setattr(ds, key, value)
    ds.Rows = ds.Columns = 2
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.arange(4, dtype=np.uint16).tobytes()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True, implicit_vr=implicit)
    return ds


def item(**attributes) -> Dataset:
    out = Dataset()
    for key, value in attributes.items():
        setattr(out, key, value)
    return out
