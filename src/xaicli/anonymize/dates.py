"""Moving dates, times and date-times by one patient's offset (PS3.15 E.3.6, Retain Longitudinal
Temporal Information with Modified Dates), in the forms of PS3.5 6.2 (DA, TM, DT).

The offset is a whole number of days back plus a number of seconds (both keyed per patient, see
:mod:`xaicli.anonymize.identities`), so times move as well as dates. A date and its time (Study
Date and Study Time, Content Date and Content Time, ...) are one instant: they move together, and a
time pushed past midnight moves its date by one more day, as a DT does. A date without its time
moves by the whole days only; a time without its date moves within the day.
Every function returns None for a value it cannot read (the caller then empties it).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass

from xaicli.anonymize.elements import set_strings, set_value, values_of

_TM = re.compile(r"^(\d{2})(?::?(\d{2})(?::?(\d{2})(\.\d{1,6})?)?)?$")
_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,6})?([+-]\d{4})?$")


@dataclass(frozen=True)
class Shift:
    days: int  # negative: dates move back
    seconds: int  # 0 <= seconds < 86400


def shift_date(value: str, shift: Shift) -> str | None:
    """A DA value (or a query range of them) moved by the whole days of ``shift``."""
    parts = value.split("-")
    out = []
    for part in parts:
        day = _date(part)
        if part.strip() and day is None:
            return None
        out.append("" if day is None else _format_date(day + dt.timedelta(days=shift.days), part))
    return "-".join(out)


def shift_time(value: str, shift: Shift) -> str | None:
    """A TM value moved by the seconds of ``shift`` within the day."""
    moved = _moved_time(value, shift.seconds)
    return None if moved is None else moved[0]


def shift_pair(date: str, time: str, shift: Shift) -> tuple[str, str] | None:
    """A date and its time moved together: (new date, new time)."""
    day = _date(date)
    moved = _moved_time(time, shift.seconds)
    if day is None or moved is None:
        return None
    new_time, carry = moved
    return _format_date(day + dt.timedelta(days=shift.days + carry), date), new_time


def shift_datetime(value: str, shift: Shift) -> str | None:
    """A DT value moved by ``shift``, kept at its own precision and time zone suffix."""
    match = _DT.match(value.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        start = dt.datetime(int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
                            int(second or 0))
        moved = start + dt.timedelta(days=shift.days, seconds=shift.seconds if hour else 0)
    except (ValueError, OverflowError):
        return None
    digits = 4 + sum(2 for part in (month, day, hour, minute, second) if part)
    return moved.strftime("%Y%m%d%H%M%S")[:digits] + (fraction or "") + (zone or "")


def shift_values(values: list[str], vr: str, shift: Shift) -> list[str] | None:
    """Every value of a DA, TM or DT element moved (None if any cannot be read)."""
    move = {"DA": shift_date, "TM": shift_time, "DT": shift_datetime}[vr]
    out = [move(v, shift) if v else "" for v in values]
    return None if any(v is None for v in out) else out


def _date(text: str) -> dt.date | None:
    text = text.strip().replace(".", "")  # ACR-NEMA wrote YYYY.MM.DD
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def _format_date(day: dt.date, like: str) -> str:
    return day.strftime("%Y.%m.%d" if "." in like else "%Y%m%d")


def _moved_time(value: str, seconds: int) -> tuple[str, int] | None:
    """(moved TM value at the same precision and separators, days carried)."""
    text = value.strip()
    match = _TM.match(text)
    if not match:
        return None
    hour, minute, second, fraction = match.groups()
    if int(hour) > 23 or int(minute or 0) > 59 or int(second or 0) > 60:
        return None
    total = int(hour) * 3600 + int(minute or 0) * 60 + min(int(second or 0), 59) + seconds
    carry, total = divmod(total, 86400)
    fields = [f"{total // 3600:02d}", f"{total // 60 % 60:02d}", f"{total % 60:02d}"]
    kept = 1 + (minute is not None) + (second is not None)
    joiner = ":" if ":" in text else ""
    return joiner.join(fields[:kept]) + (fraction or ""), carry


def shift_element(ds, tag: int, vr: str, shift: Shift, moves_too, done: set[int]) -> list[tuple[int, str, str]]:
    """Move one DA, TM or DT element of ``ds`` in place; a date and its time (the partner, when it
    is there, ``moves_too(partner)`` and not yet in ``done``) move as one instant. Returns
    (tag, VR, action) for the element and its partner: C moved, Z emptied (unreadable)."""
    partner = (time_of_date() if vr == "DA" else date_of_time() if vr == "TM" else {}).get(tag)
    if partner in ds._dict and partner not in done and moves_too(partner):
        date_tag, time_tag = (tag, partner) if vr == "DA" else (partner, tag)
        day, time = values_of(ds, date_tag), values_of(ds, time_tag)
        if len(day) == len(time) == 1:
            done.add(partner)
            moved = shift_pair(day[0], time[0], shift)
            set_value(ds, date_tag, "DA", moved and moved[0])
            set_value(ds, time_tag, "TM", moved and moved[1])
            action = "Z" if moved is None else "C"  # a value we cannot read cannot be moved: emptied
            return [(tag, vr, action), (partner, "TM" if vr == "DA" else "DA", action)]
    moved_values = shift_values(values_of(ds, tag), vr, shift)
    if moved_values is None:
        set_value(ds, tag, vr, None)
        return [(tag, vr, "Z")]
    set_strings(ds, tag, vr, moved_values)
    return [(tag, vr, "C")]


@functools.lru_cache(maxsize=1)
def time_of_date() -> dict[int, int]:
    """DA tag -> TM tag of the same instant, from the data dictionary's keywords (XDate, XTime)."""
    from pydicom.datadict import DicomDictionary, tag_for_keyword

    pairs = {}
    for tag, entry in DicomDictionary.items():
        vr, keyword = entry[0], entry[4]
        if vr == "DA" and keyword.endswith("Date"):
            time_tag = tag_for_keyword(keyword[:-4] + "Time")
            if time_tag is not None and DicomDictionary[time_tag][0] == "TM":
                pairs[tag] = int(time_tag)
    return pairs


@functools.lru_cache(maxsize=1)
def date_of_time() -> dict[int, int]:
    return {time: date for date, time in time_of_date().items()}
