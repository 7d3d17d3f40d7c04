"""The ``dicom/`` sample set: one CR series made from chest images, carrying a fictitious patient's
data in the places real files do (names, IDs, dates, institution, descriptions, a nested reference
sequence, a private tag holding the patient's name), for the de-identification demo and tests.
Part of :mod:`xaicli.sampledata`, which calls :func:`make_dicom`.
"""

from __future__ import annotations

import io as _io
from pathlib import Path

import numpy as np

from xaicli.io import write_bytes

#: The fictitious patient the DICOM demo files describe (no real person).
FICTITIOUS_PATIENT = {
    "PatientName": "Kowalczyk^Annabel^Maria",
    "PatientID": "PID-448812-X",
    "PatientBirthDate": "19580314",
    "PatientSex": "F",
    "PatientAge": "068Y",
    "InstitutionName": "St. Elsewhere General Hospital",
    "InstitutionAddress": "12 Harbour Road, Port Alder",
    "ReferringPhysicianName": "Okonkwo^Chidi",
    "OperatorsName": "Lindqvist^Sven",
    "AccessionNumber": "ACC20260311001",
}


def _uid(*parts: object) -> str:
    # A "2.25." UID (an integer form of a UUID, PS3.5 B.2) derived from a hash: reproducible.
    import hashlib

    digest = hashlib.sha256("/".join(["xaicli-sample", *map(str, parts)]).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def make_dicom(out: Path, chest_test: list[np.ndarray], *, overwrite=False) -> int:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian

    study, series = _uid("study"), _uid("series")
    for number, image in enumerate(chest_test, start=1):
        sop = _uid("instance", number)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # CR Image Storage
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
        ds = Dataset()
        ds.file_meta = meta
        for keyword, value in FICTITIOUS_PATIENT.items():
            setattr(ds, keyword, value)
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.FrameOfReferenceUID = _uid("frame")
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20260311"
        ds.StudyTime = ds.SeriesTime = "091532"
        ds.ContentTime = f"0916{number:02d}"
        ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "S1104", 1, number
        ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "CR", "CHEST", "PA"
        ds.StudyDescription = "Chest PA follow-up A. Kowalczyk"
        ds.SeriesDescription = "PA erect"
        ds.StationName, ds.DeviceSerialNumber = "CR-ROOM-3", "SN-77120"
        ds.Manufacturer = "Fictional Imaging Co."
        ds.BurnedInAnnotation = "NO"
        ds.PatientIdentityRemoved = "NO"
        referenced = Dataset()
        referenced.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
        referenced.ReferencedSOPInstanceUID = _uid("referenced-study")
        ds.ReferencedStudySequence = Sequence([referenced])
        request = Dataset()
        request.RequestedProcedureID = "RP-5521"
        request.ScheduledProcedureStepID = "SPS-5521-1"
        request.RequestingPhysician = "Okonkwo^Chidi"
        ds.RequestAttributesSequence = Sequence([request])
        block = ds.private_block(0x0011, "FICTIONAL PACS 1.0", create=True)
        block.add_new(0x01, "PN", FICTITIOUS_PATIENT["PatientName"])
        block.add_new(0x02, "LO", FICTITIOUS_PATIENT["PatientID"])
        # 12-bit stored values in a 16-bit container; modality units via rescale, shown by window.
        stored = np.round(image * 4000.0 + 40.0).astype(np.uint16)
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = stored.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "US"
        ds.WindowCenter, ds.WindowWidth = "1016", "4000"
        ds.PixelData = stored.tobytes()
        buffer = _io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        write_bytes(out / f"IM{number:04d}.dcm", buffer.getvalue(), overwrite=overwrite)
    return len(chest_test)


__all__ = ["FICTITIOUS_PATIENT", "make_dicom"]
