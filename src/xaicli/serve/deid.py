"""The service's one call into the project's anonymiser (:mod:`xaicli.anonymize`).

Every DICOM upload goes through :func:`deidentify` before anything else reads it: the PS3.15
Annex E Basic Application Level Confidentiality Profile (Table E.1-1), as ``xaicli
dicom-anonymize`` applies it, at every depth of the data set and in its file meta. The key is the
service's own, random per start: nothing de-identified here leaves the service, so no pseudonym
has to match another run's. Whether pixels may show burned-in patient data is the anonymiser's
call too (Burned In Annotation, or a modality that usually carries it): such a file is refused,
as ``dicom-anonymize`` quarantines it, because an overlay would show it back.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def _basic_profile() -> Any:
    from xaicli.anonymize.profile import build_rules

    return build_rules()


def deidentify(ds: Any, key: bytes) -> str:
    """De-identify the pydicom data set ``ds`` in place; returns why its pixels may show patient
    data (``"YES"``, ``"unknown (US)"``) or ``""`` when nothing suggests so."""
    from xaicli.anonymize.actions import anonymize_dataset
    from xaicli.anonymize.marks import burned_in_status
    from xaicli.anonymize.settings import Settings

    settings = Settings(rules=_basic_profile(), key=key)
    burned = burned_in_status(ds, settings.burned_in_modalities)
    anonymize_dataset(ds, settings)
    return burned
