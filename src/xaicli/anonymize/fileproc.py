"""One file: read it, de-identify it, mark it, encode it, place it, write it, record it.

Every failure becomes a :class:`FileResult` with a reason naming no value (headers hold patient
data), never an exception: one bad file never stops a batch.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

from xaicli.anonymize import journal
from xaicli.anonymize.actions import anonymize_dataset
from xaicli.anonymize.detect import DICOMDIR_REASON, dicom_start, is_dicomdir, truncated
from xaicli.anonymize.elements import text
from xaicli.anonymize.encoder import encode
from xaicli.anonymize.identities import Keyed
from xaicli.anonymize.marks import burned_in_status, mark, mask_pixels
from xaicli.anonymize.settings import FileResult, Settings
from xaicli.anonymize.writer import holds, write_new

EXISTS = "output exists already (pass --overwrite to replace it)"

# An item of a plan: (input path, output path and quarantine path in the mirrored layout, or
# None for both when the output is named after the de-identified file itself).
Item = tuple[str, str | None, str | None]


class Worker:
    """Processes files with one run's settings; one per process (keyed UIDs cached in it)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.keyed = Keyed(settings.key)
        self.journal = journal.Writer(None if settings.dry_run else settings.journal)

    def process(self, item: Item) -> FileResult:
        result = self._process(item)
        if result.status in ("ok", "quarantined") and not self.settings.dry_run:
            self.journal.append(result)  # after the file got its final name: now it is complete
        return result

    def _process(self, item: Item) -> FileResult:
        import pydicom
        from pydicom.errors import InvalidDicomError

        src = item[0]
        try:
            data = Path(src).read_bytes()  # one read; pydicom then parses from memory
        except OSError as exc:
            return FileResult(src, None, "failed", f"cannot be read ({exc.strerror or type(exc).__name__})")
        start = dicom_start(data)
        if start is None:
            return FileResult(src, None, "skipped", "not a DICOM file")
        if start:
            data = data[start:]  # stray bytes before a headerless data set
        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
        except InvalidDicomError:
            return FileResult(src, None, "skipped", "not a DICOM file")
        except Exception as exc:  # noqa: BLE001 - any reader failure is this file's, not the batch's
            return FileResult(src, None, "failed", f"cannot be read ({type(exc).__name__})")
        if len(ds) == 0:
            if len(getattr(ds, "file_meta", []) or []):
                return FileResult(src, None, "failed", "no data set after the file meta (truncated?)")
            return FileResult(src, None, "skipped", "not a DICOM file (no data elements)")
        if truncated(ds):
            return FileResult(src, None, "failed", "file is truncated (its last element is incomplete)")
        if is_dicomdir(ds):
            # Its records point at each other by byte offset: rewriting it moves them. A de-identified
            # set of files gets a new DICOMDIR from a tool that builds one (e.g. pydicom's FileSet).
            return FileResult(src, None, "held back", DICOMDIR_REASON)
        return self._deidentify(item, ds, data)

    def _deidentify(self, item: Item, ds, data: bytes) -> FileResult:
        settings, src = self.settings, item[0]
        try:
            burned = burned_in_status(ds, settings.burned_in_modalities)
            place = self._place(ds, data)  # from the original UIDs, before the walk replaces them
            walk = anonymize_dataset(ds, settings, self.keyed, data)
            masked, quarantined = False, False
            if burned:
                if settings.burned_in == "mask" and settings.mask_boxes:
                    try:
                        mask_pixels(ds, settings.mask_boxes)
                    except Exception as exc:  # noqa: BLE001 - no decoder, big endian, odd layout
                        return FileResult(src, None, "failed", f"burned-in pixels cannot be masked ({type(exc).__name__})", burned)
                    masked = True
                elif settings.burned_in == "quarantine":
                    quarantined = True
            mark(ds, settings, masked)
            encoded = encode(ds)
        except Exception as exc:  # noqa: BLE001
            return FileResult(src, None, "failed", f"cannot be de-identified ({type(exc).__name__})")
        if settings.layout == "mirror":
            target = item[2] if quarantined else item[1]
        else:
            target = os.path.join(settings.quarantine if quarantined else settings.output, place)
        status, reason = ("quarantined", f"burned-in annotation {burned}") if quarantined else ("ok", "")
        result = FileResult(src, target, status, reason, burned, walk.actions, masked)
        return self._write(result, encoded)

    def _place(self, ds, data: bytes) -> str:
        """PATIENT/STUDY/SERIES/INSTANCE.dcm from the keyed pseudonym and keyed UIDs (never the
        input's names); a level the file lacks is named ``none``, a file with no instance UID
        after a keyed digest of its bytes."""
        from xaicli.anonymize.identities import patient_identity

        keyed = self.keyed
        study, series, sop = (text(ds, tag) for tag in (0x0020000D, 0x0020000E, 0x00080018))
        instance = keyed.uid(sop) if sop else "file-" + keyed.name(hashlib.sha256(data).hexdigest())
        parts = [keyed.pseudonym(patient_identity(ds, data)), keyed.uid(study) if study else "none",
                 keyed.uid(series) if series else "none", instance + ".dcm"]
        return "/".join(parts)

    def _write(self, result: FileResult, encoded: bytes) -> FileResult:
        settings, target = self.settings, result.dst
        try:
            if settings.dry_run:
                if not settings.overwrite and os.path.lexists(target):
                    raise FileExistsError
                return result
            write_new(target, encoded, overwrite=settings.overwrite)
        except FileExistsError:
            # Already there byte for byte: written by the interrupted run (killed before it could
            # record it), or, named after its own UIDs, the output of an identical input.
            if (settings.resume or settings.layout != "mirror") and holds(target, encoded):
                return result
            if settings.layout == "mirror" or result.renamed:
                return FileResult(result.src, target, "failed", EXISTS, result.burned_in)
            # Two inputs with one instance UID but other contents: keep both, the second under a
            # name keyed by its contents (so that copies of it still make one output).
            stem, suffix = os.path.splitext(target)
            result.dst = f"{stem}__{self.keyed.name(hashlib.sha256(encoded).hexdigest())}{suffix}"
            result.renamed = True
            return result if settings.dry_run else self._write(result, encoded)
        except OSError as exc:
            return FileResult(result.src, target, "failed",
                              f"output cannot be written ({exc.strerror or type(exc).__name__})", result.burned_in)
        return result
