"""The report's view model: what the page shows, as plain data the templates lay out.

A :class:`Page` is a title, a few facts and a list of :class:`Section` s, each drawn by its own
template (``templates/sections/<template>.html.j2``) from its ``data``. Numbers are formatted here,
once (:func:`fmt`, four significant digits), and every numeric table cell also carries the value
as the run's file wrote it (``data-value``), so a reader, or a test, can check the page against the
CSV. :func:`build` chooses the sections for the run's kind.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from xaicli.report.load import Run, number

ARROWS = {True: "\u2191", False: "\u2193", None: ""}
HINTS = {True: "higher is better", False: "lower is better", None: ""}


def fmt(value: Any, digits: int = 4) -> str:
    """A number for people: four significant digits; None and NaN as an en dash."""
    if value is None or value == "":
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "\u2013" if not math.isfinite(value) else f"{value:.{digits}g}"
    text = str(value).strip()
    if text.lower() == "nan":
        return "\u2013"
    try:
        return str(int(text))
    except ValueError:
        parsed = number(text)
    return f"{parsed:.{digits}g}" if parsed is not None else text


@dataclass
class Cell:
    text: str
    value: Any = None  # as the run's file wrote it (numeric cells)
    css: str = ""
    title: str = ""
    shade: float | None = None  # 0..1: how strongly the cell is tinted (a confusion matrix's share)

    @classmethod
    def of(cls, value: Any, css: str = "", title: str = "") -> Cell:
        numeric = number(value) is not None or (isinstance(value, str) and value.strip().lower() == "nan")
        return cls(fmt(value), value if numeric else None, css, title)


@dataclass
class Column:
    label: str
    direction: bool | None = None
    numeric: bool = True
    key: str = ""

    @property
    def arrow(self) -> str:
        return ARROWS[self.direction]

    @property
    def hint(self) -> str:
        return HINTS[self.direction]


@dataclass
class Table:
    columns: list[Column]
    rows: list[list[Cell]]
    caption: str = ""
    id: str = ""
    css: str = ""


@dataclass
class Section:
    id: str
    title: str
    template: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Page:
    title: str
    kind: str
    facts: list[tuple[str, str]]
    sections: list[Section]
    written: str = ""
    version: str = ""
    colour_stops: list[str] = field(default_factory=list)


def table(columns: Sequence[Column | str], rows: Sequence[Sequence[Any]], **kwargs: Any) -> Table:
    """A table from plain values (strings become text cells, numbers numeric ones)."""
    made = [c if isinstance(c, Column) else Column(c, numeric=False) for c in columns]
    return Table(made, [[v if isinstance(v, Cell) else Cell.of(v) for v in row] for row in rows], **kwargs)


def colour_stops(colormap: str, count: int = 17) -> list[str]:
    """The colormap's colours from 0 to 1 as CSS hex, for the colour bars (a CSS gradient)."""
    import numpy as np

    from xaicli.io import colorize

    rgb = colorize(np.linspace(0.0, 1.0, count, dtype=np.float32)[None, :], colormap)[0]
    return [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb.tolist()]


def settings_section(run: Run, model: dict[str, Any] | None = None) -> Section | None:
    """The run's options as given (``run-<command>.json``) and its model's description."""
    settings = {k: v for k, v in run.settings.items() if not (v is None or v is False or v in ([], ""))}
    model = model or run.record.get("model") or {}
    facts = []
    if model:
        shape = "x".join(str(v) for v in model.get("input_shape") or [])
        facts = [("model file", model.get("file", "")), ("architecture", model.get("architecture") or "\u2013"),
                 ("task", model.get("task", "")), ("input", shape), ("preprocessing", model.get("preprocessing", "")),
                 ("classes", ", ".join(model.get("class_names") or []) or "\u2013"),
                 ("CAM layer", model.get("cam_layer") or "\u2013")]
        training = (model.get("extra") or {}).get("training") or {}
        if training:
            facts.append(("trained", ", ".join(f"{k} {v}" for k, v in training.items() if k != "data")))
    if not settings and not facts:
        return None
    rows = [(name.replace("_", "-"), _setting(value)) for name, value in settings.items()]
    return Section("settings", "Settings and model", "settings",
                   {"model": facts, "settings": table(["option", "value"], rows, id="settings-table"),
                    "command": run.record.get("command", run.kind), "version": run.record.get("xaicli", "")})


def _setting(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_setting(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_setting(v)}" for k, v in value.items())
    return str(value)


def build(run: Run) -> Page:
    """The page for a run of any kind (see :data:`xaicli.report.load.KINDS`)."""
    from xaicli.report import deid, explained, modelruns

    builders = {"compare": explained.compare_page, "score": explained.score_page, "predict": modelruns.predict_page,
                "train": modelruns.train_page, "consistency-study": modelruns.study_page,
                "dicom-anonymize": deid.deid_page}
    page = builders[run.kind](run)
    from xaicli import __version__

    page.written = run.record.get("written", "")
    page.version = run.record.get("xaicli") or __version__
    page.colour_stops = colour_stops(run.settings.get("colormap") or "jet")
    return page
