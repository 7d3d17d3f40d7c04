"""What one de-identification run is told (:class:`Settings`) and what it says of each file
(:class:`FileResult`); the constants the other modules of ``anonymize`` share.

Nothing here imports pydicom: a :class:`Settings` is pickled once per worker process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xaicli.anonymize.profile import Rules

DEFAULT_BURNED_IN_MODALITIES = ("US", "SC", "OT", "XA", "RF", "ES")

# Output layouts. "pseudonyms": PATIENT/STUDY/SERIES/INSTANCE.dcm from the keyed pseudonym and the
# keyed UIDs, so no input folder or file name reaches the output. "mirror": the input tree as it
# is (its names can carry a patient's name or ID: an explicit choice, warned about).
LAYOUTS = ("pseudonyms", "mirror")

# Value representations (PS3.5 6.2). Free text: any person or place can be written in them.
TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "PN"})
# Strings of a controlled form (codes, numbers, dates, AE titles, ages; PS3.5 6.2): kept when
# outside Table E.1-1 unless they hold one of the data set's identifying values.
CODED_VRS = frozenset({"CS", "AE", "AS", "DA", "DT", "TM", "DS", "IS"})
STRING_VRS = TEXT_VRS | CODED_VRS | {"UI", "UR"}
NUMERIC_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "AT", "OB", "OW", "OF", "OD", "OL", "OV", "SV", "UV"})

# Dummy values for D (PS3.15 E.3: "a non-zero length value that may be a dummy value").
DUMMY = {
    "PN": "ANONYMOUS", "LO": "ANONYMIZED", "SH": "ANONYMIZED", "LT": "ANONYMIZED", "ST": "ANONYMIZED",
    "UT": "ANONYMIZED", "UC": "ANONYMIZED", "CS": "ANONYMIZED", "AE": "ANONYMIZED",
    "DA": "19000101", "TM": "000000", "DT": "19000101000000", "AS": "000Y", "IS": "0", "DS": "0",
    "US": 0, "SS": 0, "UL": 0, "SL": 0, "FL": 0.0, "FD": 0.0,
}
MASK = "***"  # what replaces an identifying value inside a cleaned text

# Attributes written after the walk (PS3.15 E.1.1; PS3.3 C.12.1.1.1).
MARK_TAGS = frozenset({0x00120062, 0x00120063, 0x00120064, 0x00280303})
# File meta (PS3.10 7.1, Table 7.1-1) kept as it is: version, SOP class and transfer syntax.
# Media Storage SOP Instance UID gets the keyed UID; Implementation Class UID and Version Name
# are xaicli's (it writes the file: see marks.py). Everything else goes: Source, Sending and
# Receiving AE Titles and Presentation Addresses name the sites that handled the file, and
# Private Information (Creator UID) is private.
META_KEEP = frozenset({0x00020001, 0x00020002, 0x00020010, 0x00020012, 0x00020013})
MEDIA_INSTANCE_UID = 0x00020003
PIXEL_DATA = 0x7FE00010
BURNED_IN_ANNOTATION = 0x00280301
SPECIFIC_CHARACTER_SET = 0x00080005

# The basis an audit row gives for an action.
TABLE = "E.1-1"  # a row of Table E.1-1 (or the user's recipe and overrides over it)
UNLISTED = "outside E.1-1"  # xaicli's rule for attributes the table does not list
META = "file meta"  # PS3.10 7.1: the file meta information xaicli rewrites


@dataclass
class Settings:
    """Everything a worker needs; pickled once per worker process."""

    rules: Rules
    key: bytes
    burned_in: str = "quarantine"  # quarantine | mask | keep
    mask_boxes: tuple[tuple[int, int, int, int], ...] = ()
    burned_in_modalities: frozenset[str] = frozenset(DEFAULT_BURNED_IN_MODALITIES)
    overwrite: bool = False
    dry_run: bool = False
    version: str = ""
    layout: str = "pseudonyms"
    output: str = ""  # root of the pseudonymised layout
    quarantine: str = ""  # root of the quarantined files in that layout
    journal: str | None = None  # the run journal workers append to (None: no journal, e.g. dry run)
    resume: bool = False  # an output already there byte for byte is this run's own: keep it


# One attribute acted on: (location, keyword, VR, action code, basis). Never a value.
Action = tuple[str, str, str, str, str]


@dataclass
class FileResult:
    src: str
    dst: str | None
    status: str  # ok | quarantined | held back | skipped | failed
    reason: str = ""
    burned_in: str = ""  # "YES", "unknown (US)" or ""
    actions: list[Action] = field(default_factory=list)
    masked: bool = False
    renamed: bool = False  # another input's output held the name: written under a derived one

    def to_record(self) -> dict:
        return {"src": self.src, "dst": self.dst, "status": self.status, "reason": self.reason,
                "burned_in": self.burned_in, "actions": self.actions, "masked": self.masked,
                "renamed": self.renamed}

    @classmethod
    def from_record(cls, record: dict) -> FileResult:
        fields = dict(record)
        fields["actions"] = [tuple(a) for a in fields.get("actions", [])]
        return cls(**fields)
