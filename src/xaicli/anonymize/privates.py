"""Private attributes (odd groups, PS3.5 7.8): removed, creators included (Table E.1-1 row
(gggg,eeee)), except those a recipe lists as safe under Retain Safe Private (PS3.15 E.3.10),
identified by their creator, group and element byte (``CREATOR (gggg,xxee)``).
"""

from __future__ import annotations

from xaicli.anonymize.elements import remove, text
from xaicli.anonymize.profile import Rules


def is_safe_private(ds, tag: int, rules: Rules) -> bool:
    """A private creator of a listed block, or a listed element of that creator's block."""
    if rules.private_action != "C" or not rules.safe_private:
        return False
    group, element = tag >> 16, tag & 0xFFFF
    if 0x0010 <= element <= 0x00FF:
        creator = text(ds, tag)
        return any(c == creator and g == group for c, g, _ in rules.safe_private)
    creator = text(ds, group << 16 | element >> 8)
    return bool(creator) and (creator, group, element & 0xFF) in rules.safe_private


def private_handler(level, tag: int, vr: str, walk) -> bool:
    if not tag >> 16 & 1:
        return False
    ds = level.ds
    if tag in walk.rules.user_keep:
        return True
    if is_safe_private(ds, tag, walk.rules):
        if vr == "SQ":
            walk.items(level, tag, False)  # a safe private sequence keeps its place, not its PHI
        return True
    remove(ds, tag)
    walk.record(level, tag, vr, "X")
    return True
