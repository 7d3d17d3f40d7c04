"""Keyed replacements, and the identifying values of one data set.

:class:`Keyed`: HMAC-SHA256 (RFC 2104) of the original with the run's key, so that the same
original maps to the same replacement in every file, folder and run that shares the key, and
nothing is reversible without it: UIDs become ``2.25.<128-bit integer>`` (PS3.5 B.2), a patient a
pseudonym ``ANON-<16 hex>``, and a patient's dates and times move by one keyed :class:`Shift`
(PS3.15 E.3.6).

:func:`identifying_values`: what a reviewer would look for in a de-identified copy of a data set:
the patient's names (every component group of PS3.5 6.2.1, alphabetic, ideographic and phonetic,
decoded with the data set's character set; each name part of two letters or more), birth and
other names, IDs, the accession number, the birth date (:func:`date_forms`), address and
telephone, institution and physician names. The cleaner masks them in free text
(:mod:`xaicli.anonymize.masking`); ``--check --against`` searches outputs for them.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re

from xaicli.anonymize.dates import Shift
from xaicli.anonymize.elements import text, values_of
from xaicli.anonymize.profile import PATIENT_ID, PATIENT_NAME


class Keyed:
    """HMAC-SHA256 derived replacements; UIDs cached per process (many files share a study)."""

    def __init__(self, key: bytes):
        self.key = key
        self._uids: dict[str, str] = {}

    def digest(self, purpose: bytes, value: str) -> bytes:
        message = purpose + b"\x00" + value.encode("utf-8", "surrogateescape")
        return hmac.new(self.key, message, hashlib.sha256).digest()

    def uid(self, value: str) -> str:
        from pydicom.uid import UID_dictionary

        value = value.strip("\x00 ")
        if not value or value in UID_dictionary:
            return value  # standard UIDs (SOP classes, transfer syntaxes, ...) identify no one
        new = self._uids.get(value)
        if new is None:
            # 128 bits under the 2.25 root: at most 44 characters, well inside the 64 allowed.
            new = "2.25." + str(int.from_bytes(self.digest(b"uid", value)[:16], "big"))
            self._uids[value] = new
        return new

    def pseudonym(self, identity: str) -> str:
        return "ANON-" + self.digest(b"patient", identity).hex()[:16].upper()

    def shift(self, identity: str) -> Shift:
        """This patient's offset: 1 to 3650 days back, plus 0 to 86399 seconds; fixed per key."""
        digest = self.digest(b"date", identity)
        days = -(1 + int.from_bytes(digest[:4], "big") % 3650)
        return Shift(days, int.from_bytes(digest[4:8], "big") % 86400)

    def name(self, value: str) -> str:
        """A keyed name for an output that has no UID to be named after."""
        return self.digest(b"name", value).hex()[:16]


def patient_identity(ds, data: bytes = b"") -> str:
    """What keys a file's pseudonym and offset: its patient (ID, else name); a file that names no
    patient gets its study's, else its instance's, else its bytes': unnamed files never share one."""
    identity = text(ds, PATIENT_ID) or text(ds, PATIENT_NAME)
    if identity:
        return identity
    study, sop = text(ds, 0x0020000D), text(ds, 0x00080018)
    if study:
        return f"study:{study}"
    if sop:
        return f"instance:{sop}"
    return "file:" + hashlib.sha256(data).hexdigest() if data else ""


# Categories of identifying values: what a finding or a masked text says, never the value.
PATIENT_NAME_PART, RELATIVE, PATIENT_IDS, ACCESSION = "patient name", "relative's name", "patient ID", "accession number"
BIRTH_DATE, ADDRESS, PHONE, INSTITUTION, PHYSICIAN = "birth date", "address", "telephone", "institution", "physician name"

_PATIENT_NAMES = (PATIENT_NAME, 0x00101001, 0x00101005)  # Patient's, Other Patient, Patient's Birth Name
_RELATIVE_NAMES = (0x00101060, 0x00102297)  # Mother's Birth Name, Responsible Person
_PHYSICIANS = (0x00080090, 0x00081048, 0x00081050, 0x00081060, 0x00081070, 0x00321032)
_IDS = (PATIENT_ID, 0x00101000, 0x00101090)  # Patient ID, Other Patient IDs, Medical Record Locator
_INSTITUTION = (0x00080080, 0x00080081, 0x00081040)  # Institution Name, Address, Department Name
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
           "october", "november", "december")
_WORDS = re.compile(r"[\s^=,\\]+")
# Values that stand in for a value and identify no one (xaicli's own dummies among them): test
# and anonymised data are full of them, and finding them is no finding.
PLACEHOLDERS = frozenset({"anonymized", "anonymised", "anonymous", "anonymize", "anon", "unknown", "none", "null",
                          "n/a", "test", "patient", "name", "here", "the", "and", "xxx", "yyy", "zzz"})


def identifying_values(ds, options: tuple[str, ...] = ()) -> dict[str, str]:
    """Identifying value (lower case) -> its category, for one data set (see the module doc).
    Values the chosen options keep on purpose (the institution under retain-institution-identity)
    are left out: they are not leaks."""
    found: dict[str, str] = {}

    def add(value: str, category: str, shortest: int = 3) -> None:
        value = value.strip().lower()
        if value.isdigit():
            shortest = max(shortest, 5)  # "134" is as likely a matrix size as an accession number
        if len(value) >= shortest and value not in PLACEHOLDERS and not value.startswith("anon-"):
            found.setdefault(value, category)

    for tag in _PATIENT_NAMES:
        for value in _person_names(ds, tag):
            _add_name(add, value, PATIENT_NAME_PART, shortest=2)
    for tag in _RELATIVE_NAMES:
        for value in _person_names(ds, tag):
            _add_name(add, value, RELATIVE, shortest=3)
    for tag in _PHYSICIANS:
        for value in _person_names(ds, tag):
            _add_name(add, value, PHYSICIAN, shortest=3)
    for tag in _IDS:
        for value in values_of(ds, tag):
            add(value, PATIENT_IDS)
    for item in _items(ds, 0x00101002):  # Other Patient IDs Sequence
        add(text(item, PATIENT_ID), PATIENT_IDS)
    add(text(ds, 0x00080050), ACCESSION)
    for form in date_forms(text(ds, 0x00100030)):
        found.setdefault(form, BIRTH_DATE)
    for value in values_of(ds, 0x00101040):
        add(value, ADDRESS, shortest=5)
        for piece in value.split(","):
            add(piece, ADDRESS, shortest=5)
    for value in values_of(ds, 0x00102154):
        add(value, PHONE, shortest=5)
    if "retain-institution-identity" not in options:
        for tag in _INSTITUTION:
            for value in values_of(ds, tag):
                add(value, INSTITUTION, shortest=4)
    return found


def _add_name(add, value: str, category: str, shortest: int) -> None:
    """A person name (PS3.5 6.2.1.1): every component group, its family, given and middle names
    and each of their words (prefixes and suffixes such as "Mr" or "Jr" identify no one)."""
    for component in value.split("="):
        names = component.split("^")[:3]
        add(" ".join(names).strip(), category, shortest)
        for group in names:
            add(group, category, shortest)
            for word in _WORDS.split(group):
                add(word, category, shortest)


def _person_names(ds, tag: int) -> list[str]:
    if ds is None or tag not in ds._dict:
        return []
    try:
        return values_of(ds, tag)  # decoded with the data set's Specific Character Set
    except Exception:  # noqa: BLE001 - a name pydicom cannot decode identifies no one we can find
        return []


def _items(ds, tag: int) -> list:
    if tag not in ds._dict:
        return []
    try:
        elem = ds[tag]
    except Exception:  # noqa: BLE001 - a sequence pydicom cannot read names no one we can find
        return []
    return list(elem.value or []) if elem.VR == "SQ" else []


@functools.lru_cache(maxsize=1024)
def date_forms(value: str) -> frozenset[str]:
    """A DA value (YYYYMMDD) as people write it: ISO and its separators, day first and month first
    (with and without leading zeros, two- and four-digit years), and with the month's name."""
    value = value.strip()
    if len(value) != 8 or not value.isdigit():
        return frozenset({value.lower()} if len(value) >= 6 else ())
    year, month, day = value[:4], value[4:6], value[6:]
    if not 1 <= int(month) <= 12:
        return frozenset({value})
    m, d = str(int(month)), str(int(day))
    forms = {value}
    for sep in "-/. ":
        forms.add(sep.join((year, month, day)))
        for yy in (year, year[2:]):
            for first, second in ((day, month), (d, m), (month, day), (m, d)):
                forms.add(sep.join((first, second, yy)))
    name = _MONTHS[int(month) - 1]
    for mon in (name, name[:3]):
        for dd in (d, day):
            forms |= {f"{dd} {mon} {year}", f"{dd}-{mon}-{year}", f"{dd} {mon}, {year}", f"{mon} {dd} {year}",
                      f"{mon} {dd}, {year}", f"{dd}. {mon} {year}", f"{dd}-{mon}-{year[2:]}"}
    return frozenset(f.lower() for f in forms)
