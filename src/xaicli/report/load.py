"""Loading a run folder for its report: which command wrote it, and its files as tables.

The kind of run is the command that recorded it (``run-<command>.json``, :mod:`xaicli.report.runfile`;
the first in the order below when several did), else the one its files show: ``anonymize-report.json`` (``dicom-anonymize``), ``study.csv`` (``consistency-study``),
``scores.csv`` with ``predictions.csv`` (``compare``) or without (``score``), ``predictions.csv``
(``predict``), ``history.csv`` (``train``). Tables are read as the CSV writer wrote them: text, with
:func:`number` turning a cell into a float (``nan`` and empty cells become None).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xaicli.errors import InputError
from xaicli.report.runfile import read_run, recorded_commands

KINDS = ("compare", "score", "predict", "train", "consistency-study", "dicom-anonymize")
#: the file that shows each kind, in the order they are looked for
SIGNS = (("dicom-anonymize", ("anonymize-report.json",)), ("consistency-study", ("study.csv",)),
         ("compare", ("scores.csv", "predictions.csv")), ("score", ("scores.csv",)),
         ("predict", ("predictions.csv",)), ("train", ("history.csv",)))


def number(text: Any) -> float | None:
    """A CSV cell as a finite float, or None (empty, ``nan``, text)."""
    if text is None or isinstance(text, bool):
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


@dataclass
class Run:
    """A run folder: its kind, what its command recorded (``record``, {} when nothing) and its files."""

    folder: Path
    kind: str
    record: dict[str, Any] = field(default_factory=dict)
    overwrite: bool = False  # whether pictures made for the report may replace earlier ones

    @property
    def settings(self) -> dict[str, Any]:
        return self.record.get("settings") or {}

    @property
    def verdict(self) -> dict[str, Any]:
        return self.record.get("verdict") or {}

    def has(self, name: str) -> bool:
        return (self.folder / name).is_file()

    def table(self, name: str) -> list[dict[str, str]]:
        """The rows of a CSV in the folder ([] when it is absent)."""
        path = self.folder / name
        if not path.is_file():
            return []
        try:
            with open(path, newline="", encoding="utf-8") as handle:
                return list(csv.DictReader(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"{path}: not a readable CSV table ({exc})") from None

    def rows(self, name: str) -> Any:
        """The rows of a CSV one at a time (a de-identification audit can hold millions)."""
        path = self.folder / name
        if not path.is_file():
            return
        try:
            with open(path, newline="", encoding="utf-8") as handle:
                yield from csv.DictReader(handle)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"{path}: not a readable CSV table ({exc})") from None

    def document(self, name: str) -> Any:
        """A JSON file of the folder (None when it is absent)."""
        path = self.folder / name
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(f"{path}: not a readable JSON file ({exc})") from None


def detect(folder: Path) -> str:
    recorded = [kind for kind, _ in SIGNS if kind in recorded_commands(folder)]
    if recorded:
        return recorded[0]
    for kind, names in SIGNS:
        if all((folder / name).is_file() for name in names):
            return kind
    shown = ", ".join(dict.fromkeys(name for _, names in SIGNS for name in names))
    raise InputError(f"{folder}: not the output folder of a run xaicli reports on ({', '.join(KINDS)}): "
                     f"it holds none of {shown}")


def load(folder: str | Path) -> Run:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such run folder")
    kind = detect(folder)
    return Run(folder, kind, read_run(folder, kind))
