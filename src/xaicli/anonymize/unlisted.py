"""Attributes that Table E.1-1 does not list: what happens to them.

The table lists the attributes the standard knows to identify; everything else the Basic Profile
would pass through, and free text passes whatever someone typed into it (a Document Title, a Film
Session Label, a Body Part Examined holding a name or an MRN). So, outside the table (PS3.5 6.2
for the VRs):

- free text (LO, SH, ST, LT, UT, UC, UR, UN) and every even-group attribute unknown to the data
  dictionary: **removed**, unless on :data:`SAFE_TEXT` below, where it is kept with the data set's
  own identifying values masked. Inside a sequence that is cleaned (C), and under
  ``clean-descriptors``, it is cleaned like a descriptor instead (identifying values and dates
  masked). Person names (PN) are removed in every case: a name is not a descriptor.
- coded strings (CS, AE, AS, DA, DT, TM, DS, IS): kept, unless they hold one of the data set's
  identifying values, then removed (a code that spells a patient is no code).
- ``--option unsafe-keep-unlisted-text`` keeps unlisted free text verbatim, for users who must:
  it risks exactly what this module prevents.

Each safe entry is a value set by a coding scheme or by the equipment, with where the standard
defines it.
"""

from __future__ import annotations

from xaicli.anonymize.elements import dictionary_vr
from xaicli.anonymize.settings import CODED_VRS

UNSAFE_KEEP = "unsafe-keep-unlisted-text"  # profile.XAICLI_OPTIONS

#: tag -> (keyword, why it is safe, its source in the standard)
SAFE_TEXT: dict[int, tuple[str, str]] = {
    0x00080100: ("CodeValue", "a code of a coding scheme: PS3.3 Section 8.8, Table 8.8-1a"),
    0x00080102: ("CodingSchemeDesignator", "names a coding scheme: PS3.3 Table 8.8-1a, PS3.16 Section 8"),
    0x00080103: ("CodingSchemeVersion", "version of a coding scheme: PS3.3 Table 8.8-1a"),
    0x00080104: ("CodeMeaning", "the scheme's meaning of a code: PS3.3 Table 8.8-1a, Section 8.3"),
    0x00080119: ("LongCodeValue", "a code of a coding scheme: PS3.3 Table 8.8-1a"),
    0x00080115: ("CodingSchemeName", "names a coding scheme: PS3.3 C.12.1, Table C.12-1"),
    0x00080116: ("CodingSchemeResponsibleOrganization", "a scheme's publisher: PS3.3 C.12.1, Table C.12-1"),
    0x00080122: ("MappingResourceName", "names a mapping resource: PS3.3 Table 8.8-1"),
    0x00080070: ("Manufacturer", "the equipment's maker: PS3.3 C.7.5.1, Table C.7-8"),
    0x00081090: ("ManufacturerModelName", "the maker's model designation: PS3.3 C.7.5.1, Table C.7-8"),
    0x00181210: ("ConvolutionKernel", "the reconstruction kernel's label: PS3.3 C.8.2.1, Table C.8-29"),
    0x00181160: ("FilterType", "the X-ray filter's type: PS3.3 C.8.2.1, Table C.8-29; C.8.7.10"),
    0x00180085: ("ImagedNucleus", "a nucleus such as 1H: PS3.3 C.8.3.1, Table C.8-4"),
    0x00180024: ("SequenceName", "the scanner's pulse sequence name: PS3.3 C.8.3.1, Table C.8-4"),
    0x00189005: ("PulseSequenceName", "the scanner's pulse sequence name: PS3.3 C.8.13.4"),
    0x00181250: ("ReceiveCoilName", "the coil's name: PS3.3 C.8.3.1, Table C.8-4"),
    0x00181251: ("TransmitCoilName", "the coil's name: PS3.3 C.8.3.1, Table C.8-4"),
    0x00281054: ("RescaleType", "units of the rescaled values (defined terms): PS3.3 C.11.1.1.2"),
    0x00201040: ("PositionReferenceIndicator", "an anatomical landmark: PS3.3 C.7.4.1, C.7.4.1.1.2"),
    0x00209421: ("DimensionDescriptionLabel", "labels a dimension of a multi-frame image: PS3.3 C.7.6.17"),
}
#: kept like SAFE_TEXT under retain-device-identity (PS3.15 E.3.2), removed otherwise
DEVICE_TEXT: dict[int, tuple[str, str]] = {
    0x00181020: ("SoftwareVersions", "the equipment's software: PS3.3 C.7.5.1, Table C.7-8"),
}

FREE_TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "UR", "UN"})

# What unlisted_action returns (besides None: nothing to do).
REMOVE = "X"
CLEAN = "C"  # mask identifying values and dates (a descriptor)
SCREEN = "S"  # kept; masked (text) or removed (coded) if it holds an identifying value


def unlisted_action(tag: int, vr: str, options: tuple[str, ...], cleaning: bool) -> str | None:
    """The action for an even-group attribute that Table E.1-1 does not list (not a UID, not a
    sequence). ``cleaning``: inside a sequence that is cleaned, or under clean-descriptors."""
    unknown = dictionary_vr(tag) is None
    if vr == "PN":
        return REMOVE
    if unknown or vr in FREE_TEXT_VRS:
        if tag in SAFE_TEXT or (tag in DEVICE_TEXT and "retain-device-identity" in options):
            return SCREEN
        if UNSAFE_KEEP in options:
            return None
        return CLEAN if cleaning and vr != "UN" else REMOVE
    if vr in CODED_VRS:
        return SCREEN
    return None
