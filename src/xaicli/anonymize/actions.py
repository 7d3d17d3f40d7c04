"""The Annex E walk: every element of the file meta and the data set, at every depth, through one
list of small handlers (:data:`HANDLERS`), the first that takes an element acting on it.

Handlers, in order: private attributes (PS3.15 E.3.10), the marks rewritten afterwards (E.1.1),
group lengths, file meta (PS3.10 7.1), rows of Table E.1-1 (one function per action code of
E.3: X Z D K C U, and P for the keyed pseudonym), sequences the table does not list (walked
into), UIDs it does not list (replaced unless they name a class), and other attributes it does not
list (:mod:`xaicli.anonymize.unlisted`). Audit rows name the place, the keyword, the VR, the
action and its basis, never a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xaicli.anonymize import dates
from xaicli.anonymize.elements import (
    is_registered_uid,
    keyword,
    remove,
    replaces_unlisted_uid,
    set_strings,
    set_value,
    tag_text,
    values_of,
    vr_of,
)
from xaicli.anonymize.identities import Keyed, identifying_values, patient_identity
from xaicli.anonymize.masking import Masker, masker
from xaicli.anonymize.privates import private_handler
from xaicli.anonymize.profile import PATIENT_ID, PATIENT_NAME, Rules
from xaicli.anonymize.settings import (
    CODED_VRS,
    DUMMY,
    MARK_TAGS,
    MEDIA_INSTANCE_UID,
    META,
    META_KEEP,
    TABLE,
    TEXT_VRS,
    UNLISTED,
    Action,
    Settings,
)
from xaicli.anonymize.unlisted import CLEAN, REMOVE, unlisted_action


@dataclass
class Level:
    """One data set being walked: where it is, and what its siblings already did."""

    ds: object
    prefix: str
    depth: int
    cleaning: bool  # inside a sequence that is cleaned (C): free text is cleaned, not removed
    done: set[int] = field(default_factory=set)  # tags moved together with a sibling


class Walk:
    """The state of one file's walk: rules, keyed identities, masks, and the actions taken."""

    def __init__(self, ds, settings: Settings, keyed: Keyed, identity: str):
        self.rules: Rules = settings.rules
        self.options = settings.rules.options
        self.keyed = keyed
        self.pseudonym = keyed.pseudonym(identity)
        self.shift = keyed.shift(identity)
        self.modified_dates = "retain-long-modified-dates" in self.options
        self.clean_descriptors = "clean-descriptors" in self.options
        values = tuple(identifying_values(ds, self.options).items())
        self.screen = masker(values)  # the data set's own identifying values
        # Codes: values of three characters or more (a name part "No" must not take "NO" along).
        self.codes = masker(tuple((v, c) for v, c in values if len(v) >= 3))
        # Cleaned descriptors lose dates too, unless the full dates are retained on purpose.
        self.descriptor = masker(values, any_date="retain-long-full-dates" not in self.options)
        self.actions: list[Action] = []

    def record(self, level: Level, tag: int, vr: str, action: str, basis: str = TABLE) -> None:
        self.actions.append((level.prefix + tag_text(tag), keyword(tag), vr, action, basis))

    def dataset(self, ds, prefix: str, depth: int, cleaning: bool) -> None:
        level = Level(ds, prefix, depth, cleaning)
        for tag in list(ds.keys()):
            tag = int(tag)
            if tag in level.done:
                continue
            vr = vr_of(ds, tag)
            for handler in HANDLERS:
                if handler(level, tag, vr, self):
                    break

    def items(self, level: Level, tag: int, cleaning: bool) -> None:
        """Walk every item of a sequence; an item that names its own patient (a DICOMDIR record,
        a referenced patient) gets that patient's pseudonym and offset."""
        elem = level.ds[tag]
        if elem.VR != "SQ" or not elem.value:
            return
        location = level.prefix + tag_text(tag)
        for index, item in enumerate(elem.value):
            saved = self.pseudonym, self.shift
            if PATIENT_ID in item._dict or PATIENT_NAME in item._dict:
                identity = patient_identity(item)
                if identity:
                    self.pseudonym, self.shift = self.keyed.pseudonym(identity), self.keyed.shift(identity)
            try:
                self.dataset(item, f"{location}[{index}].", level.depth + 1, cleaning)
            finally:
                self.pseudonym, self.shift = saved


# ---------------------------------------------------------------------------------- handlers


def marks(level: Level, tag: int, vr: str, walk: Walk) -> bool:
    return level.depth == 0 and tag in MARK_TAGS  # rewritten after the walk


def group_length(level: Level, tag: int, vr: str, walk: Walk) -> bool:
    if tag & 0xFFFF or tag >> 16 == 0x0002:
        return False
    remove(level.ds, tag)  # retired group lengths would be wrong once elements are removed
    walk.record(level, tag, "UL", "X")
    return True


def file_meta(level: Level, tag: int, vr: str, walk: Walk) -> bool:
    if tag >> 16 != 0x0002:
        return False
    if tag == MEDIA_INSTANCE_UID:
        replace_uids(level, tag, walk)
        walk.record(level, tag, "UI", "U", META)
    elif tag not in META_KEEP and tag != 0x00020000:
        remove(level.ds, tag)
        walk.record(level, tag, vr, "X", META)
    return True


def table_row(level: Level, tag: int, vr: str, walk: Walk) -> bool:
    action = walk.rules.action_for(tag)
    if action is None:
        return False
    done = ACTIONS[action[0] if action[0] in "GO" else action](level, tag, vr, walk, action)
    if done:
        walk.record(level, tag, vr, done)
    return True


def sequence(level: Level, tag: int, vr: str, walk: Walk) -> bool:
    if vr != "SQ":
        return False
    walk.items(level, tag, level.cleaning)
    return True


def unlisted_uid(level: Level, tag: int, vr: str, walk: Walk) -> bool:
    # A UID the table does not list (private-looking or newer than the table) may still point
    # back to the source system: replace it unless it is a standard (registered) UID or names a
    # class (a private SOP Class UID names a kind of object, not a patient; remapping it would
    # also part the data set from its file meta, which keeps Media Storage SOP Class UID).
    if vr != "UI":
        return False
    if "retain-uids" in walk.options or not replaces_unlisted_uid(tag):
        return True
    values = values_of(level.ds, tag)
    if values and not all(is_registered_uid(v) for v in values):
        replace_uids(level, tag, walk)
        walk.record(level, tag, "UI", "U", UNLISTED)
    return True


def unlisted_value(level: Level, tag: int, vr: str, walk: Walk) -> bool:
    ds = level.ds
    action = unlisted_action(tag, vr, walk.options, level.cleaning or walk.clean_descriptors)
    if action is None:
        return True
    if action == REMOVE:
        remove(ds, tag)
        walk.record(level, tag, vr, "X", UNLISTED)
        return True
    values = values_of(ds, tag)
    if action != CLEAN and vr in CODED_VRS:
        if any(walk.codes.find(v) for v in values):
            remove(ds, tag)
            walk.record(level, tag, vr, "X", UNLISTED)
        return True
    if mask_text(ds, tag, vr, values, walk.descriptor if action == CLEAN else walk.screen):
        walk.record(level, tag, vr, "C", UNLISTED)
    return True


HANDLERS = (private_handler, marks, group_length, file_meta, table_row, sequence, unlisted_uid, unlisted_value)


# --------------------------------------------------------------- one function per action code


def act_remove(level: Level, tag: int, vr: str, walk: Walk, action: str) -> str:
    remove(level.ds, tag)
    return "X"


def act_keep(level: Level, tag: int, vr: str, walk: Walk, action: str) -> str:
    if vr == "SQ" and tag not in walk.rules.user_keep:
        walk.items(level, tag, level.cleaning)  # the table keeps the sequence, not what is in it
    return "K"


def act_empty(level: Level, tag: int, vr: str, walk: Walk, action: str) -> str:
    set_value(level.ds, tag, vr, [] if vr == "SQ" else None)
    return "Z"


def act_dummy(level: Level, tag: int, vr: str, walk: Walk, action: str) -> str:
    if vr == "UI":
        replace_uids(level, tag, walk)
    else:
        set_value(level.ds, tag, vr, [] if vr == "SQ" else DUMMY.get(vr))
    return "D"


def act_pseudonym(level: Level, tag: int, vr: str, walk: Walk, action: str) -> str:
    set_value(level.ds, tag, vr if vr in ("PN", "LO") else "LO", walk.pseudonym)
    return "P"


def act_uid(level: Level, tag: int, vr: str, walk: Walk, action: str) -> str | None:
    if vr == "SQ":
        walk.items(level, tag, level.cleaning)
        return "U"
    if vr == "UI":
        # Under retain-uids the table's own column says K for the UIDs it keeps; the few it
        # does not (Digital Signature UID, UID) are still replaced.
        replace_uids(level, tag, walk)
        return "U"
    remove(level.ds, tag)
    return "X"


def act_clean(level: Level, tag: int, vr: str, walk: Walk, action: str) -> str | None:
    """C: keep the meaning, drop what identifies: dates and times moved by the patient's offset
    (modified dates), free text with identifying values and dates masked, sequences kept with the
    whole profile applied inside and their free text cleaned."""
    ds = level.ds
    if vr == "SQ":
        walk.items(level, tag, cleaning=True)
        return None
    if vr in ("DA", "TM", "DT"):
        if not walk.modified_dates:
            return None
        moves_too = lambda other: walk.rules.action_for(other) == "C"  # noqa: E731
        moved = dates.shift_element(ds, tag, vr, walk.shift, moves_too, level.done)
        for other, other_vr, done in moved[1:]:  # the partner moved with it
            walk.record(level, other, other_vr, done)
        return moved[0][2]
    if vr in TEXT_VRS:
        mask_text(ds, tag, vr, values_of(ds, tag), walk.descriptor)
    return "C"


def act_graphics(level: Level, tag: int, vr: str, walk: Walk, action: str) -> str | None:
    """Curves (50xx) and overlays (60xx). Clean Graphics keeps the bitmap and the curve; their
    labels, descriptions and comments are free text like any descriptor: cleaned the same way."""
    if action[1] == "C" and vr in TEXT_VRS:
        return "C" if mask_text(level.ds, tag, vr, values_of(level.ds, tag), walk.descriptor) else None
    if action[1] in "KC":
        return None
    remove(level.ds, tag)
    return "X"


ACTIONS = {"X": act_remove, "K": act_keep, "Z": act_empty, "D": act_dummy, "P": act_pseudonym, "U": act_uid,
           "C": act_clean, "G": act_graphics, "O": act_graphics}


# -------------------------------------------------------------------------------- the edits


def replace_uids(level: Level, tag: int, walk: Walk) -> None:
    set_strings(level.ds, tag, "UI", [walk.keyed.uid(v) for v in values_of(level.ds, tag)])


def mask_text(ds, tag: int, vr: str, values: list[str], masker: Masker) -> bool:
    """Mask identifying values in a text element; True when anything changed."""
    masked = [masker.mask(v) for v in values]
    if masked == values:
        return False
    set_strings(ds, tag, vr, masked)
    return True


def anonymize_dataset(ds, settings: Settings, keyed: Keyed | None = None, data: bytes = b"") -> Walk:
    """De-identify ``ds`` in place (file meta included); returns the walk (its actions, the
    patient's pseudonym). ``data``, the file's bytes, keys the identity of a file that names no
    patient and no study."""
    keyed = keyed or Keyed(settings.key)
    walk = Walk(ds, settings, keyed, patient_identity(ds, data))
    meta = getattr(ds, "file_meta", None)
    if meta is not None and len(meta):
        walk.dataset(meta, "meta:", 1, False)
    walk.dataset(ds, "", 0, False)
    return walk
