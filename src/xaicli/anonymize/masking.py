"""Finding and masking identifying values inside text: the matcher shared by the cleaner (Clean,
PS3.15 E.3.5 Clean Descriptors Option: "free text ... replaced by a value of similar meaning known
not to contain identifying information") and by ``--check --against``.

A value matches as whole words, case-insensitively (so "Li" is found in "Li, Wu" but not in
"Little"), except values in scripts written without spaces (CJK ideographs and kana), which match
anywhere. Lookups go by word, then by substring only for the values whose words all occur, so
that a text with none of the values costs one split and a few set look-ups.
"""

from __future__ import annotations

import functools
import re

from xaicli.anonymize.settings import MASK

# A "word": a run of letters and digits. Scripts without spaces (U+2E80 onwards: CJK, kana,
# Hangul) are matched as substrings instead.
_WORD = re.compile(r"[^\W_]+")
_SPACELESS = 0x2E80

_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
          r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
# Dates written in free text: YYYYMMDD with or without separators, D.M.Y and M/D/Y with two- or
# four-digit years, "2 Jan 1970", "January 2, 1970".
ANY_DATE = re.compile(
    r"(?<![^\W_])(?:(?:1[89]|20)\d\d[-/. ]?(?:0[1-9]|1[0-2])[-/. ]?(?:0[1-9]|[12]\d|3[01])"
    r"|\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d\d)"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\.?[ -]{_MONTH},?[ -](?:\d{{4}}|\d\d)"
    rf"|{_MONTH} \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}})(?![^\W_])",
    re.IGNORECASE,
)


def _spaceless(value: str) -> bool:
    return bool(value) and ord(max(value)) >= _SPACELESS


@functools.lru_cache(maxsize=256)
def masker(values: tuple[tuple[str, str], ...], any_date: bool = False) -> Masker:
    """One Masker per set of values: a patient's files share it (building one costs more than
    using it)."""
    return Masker(dict(values), any_date)


class Masker:
    """Finds (:meth:`find`) and masks (:meth:`mask`) the values of one data set in texts;
    ``any_date`` also masks every date written in the text (cleaned descriptors)."""

    def __init__(self, values: dict[str, str], any_date: bool = False):
        self.values = values
        self.any_date = any_date
        self.words: dict[str, list[str]] = {}  # a word of a value -> the values holding it
        self._seen: dict[str, str | None] = {}
        self.anywhere: list[str] = []
        for value in values:
            words = _WORD.findall(value)
            if _spaceless(value) or not words:
                self.anywhere.append(value)
            else:
                self.words.setdefault(max(words, key=len), []).append(value)

    def __bool__(self) -> bool:
        return bool(self.values) or self.any_date

    def find(self, text: str) -> str | None:
        """The category of the first identifying value in ``text`` (None when there is none)."""
        if not text:
            return None
        if len(text) <= 64:  # codes and short texts recur in every file of a series: remember them
            if text not in self._seen:
                if len(self._seen) > 8192:
                    self._seen.clear()
                self._seen[text] = self._find(text)
            return self._seen[text]
        return self._find(text)

    def _find(self, text: str) -> str | None:
        lowered = text.lower()
        for word in _WORD.findall(lowered):  # in the text's order: the same answer every run
            for value in self.words.get(word, ()):
                if value == word or _whole(lowered, value):
                    return self.values[value]
        for value in self.anywhere:
            if value in lowered:
                return self.values[value]
        if self.any_date and ANY_DATE.search(text):
            return "date"
        return None

    def mask(self, text: str) -> str:
        """``text`` with every identifying value (and date, with ``any_date``) replaced by ***."""
        if self.find(text) is None:
            return text
        if self.values:
            text = _pattern(tuple(sorted(self.values, key=lambda v: (-len(v), v)))).sub(MASK, text)
        return ANY_DATE.sub(MASK, text) if self.any_date else text


def _whole(lowered: str, value: str) -> bool:
    """``value`` occurs in ``lowered`` with no letter or digit glued to either end."""
    start = lowered.find(value)
    while start >= 0:
        end = start + len(value)
        before = lowered[start - 1] if start else " "
        after = lowered[end] if end < len(lowered) else " "
        if not (before.isalnum() and value[0].isalnum()) and not (after.isalnum() and value[-1].isalnum()):
            return True
        start = lowered.find(value, start + 1)
    return False


@functools.lru_cache(maxsize=256)
def _pattern(values: tuple[str, ...]) -> re.Pattern:
    parts = []
    for value in values:
        body = re.escape(value)
        if _spaceless(value):
            parts.append(body)
            continue
        head = r"(?<![^\W_])" if value[0].isalnum() else ""
        tail = r"(?![^\W_])" if value[-1].isalnum() else ""
        parts.append(head + body + tail)
    return re.compile("|".join(parts), re.IGNORECASE)
