"""The per-image rows of a report: one row per image, sortable and filterable in the page, each
opening the image with every method's overlay, colour scale and region outline.

The rows are the predictions table (``predictions.csv``: the age study's ``# | predicted | true |
abs error``, or the class, confidence and outcome) joined with every method's scores
(``scores.csv``) and the pictures the run kept (``report/views.jsonl``, :mod:`xaicli.report.keep`;
made here from ``maps/maps.csv`` when the run saved maps instead). They go into the page as one
JSON document that a small script renders a screenful at a time, so a report of thousands of images
opens as fast as one of ten (pictures load only for the rows on screen).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xaicli.report.load import Run, number
from xaicli.report.view import Section

#: columns of the predictions tables that the rows do not show (paths of masks)
HIDDEN = ("file", "mask", "true_mask")
#: scores.csv columns that are no metric of a map
NOT_METRICS = ("image", "method", "target", "prediction", "truth", "region", "normalization", "flags", "layer")
LABELS = {"abs_error": "abs error", "true": "true", "correct": "correct", "prediction": "predicted"}


def common_folder(files: list[str]) -> str:
    """The folder every file is under (``/data/test/``), left out of the names the rows show."""
    import os

    try:
        common = os.path.commonpath([os.path.dirname(f) for f in files]) if files else ""
    except ValueError:  # absolute and relative paths mixed
        return ""
    return common.rstrip("/") + "/" if common else ""


def _label(column: str) -> str:
    if column.startswith("p_"):
        return f"p({column[2:]})"
    return LABELS.get(column, column.replace("_", " "))


def _value(text: Any) -> Any:
    parsed = number(text)
    if parsed is not None:
        return int(parsed) if parsed.is_integer() and "." not in str(text) else parsed
    return None if text is None or str(text).strip().lower() in ("", "nan") else str(text)


def _direction(column: str, direction: dict[str, bool | None]) -> str | None:
    if column == "reliability":  # scores.csv's own column, the summary's Reliability
        return "higher"
    return {True: "higher", False: "lower"}.get(direction.get(column))


def views(run: Run) -> dict[str, dict[str, Any]]:
    """The kept pictures by image file: ``report/views.jsonl``, made from the run's maps if absent."""
    from xaicli.report.keep import VIEWS, views_from_maps

    path = run.folder / "report" / VIEWS
    if not path.is_file():
        index = _maps_index(run)
        if index is None:
            return {}
        views_from_maps(index, run.folder / "report", overwrite=run.overwrite)
    found = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                view = json.loads(line)
                found[view["file"]] = view
    return found


def _maps_index(run: Run) -> Path | None:
    """The ``maps.csv`` a run's maps are listed in: ``maps/`` (compare), the folder or the run it
    scored (score)."""
    given = run.settings.get("run")
    for candidate in (run.folder / "maps" / "maps.csv", run.folder / "maps.csv",
                      Path(given) / "maps.csv" if given else None, Path(given) if given else None):
        if candidate is not None and candidate.is_file() and candidate.suffix == ".csv":
            return candidate
    return None


def _scores(run: Run) -> tuple[dict[str, dict[str, dict[str, str]]], list[str], list[str]]:
    """scores.csv as image -> method -> row, with the methods and metric columns in file order."""
    by_image: dict[str, dict[str, dict[str, str]]] = {}
    methods: list[str] = []
    columns: list[str] = []
    for row in run.rows("scores.csv"):
        if not columns:
            columns = [c for c in row if c not in NOT_METRICS]
        if row["method"] not in methods:
            methods.append(row["method"])
        by_image.setdefault(row["image"], {})[row["method"]] = row
    return by_image, methods, columns


def images_section(run: Run, predictions: list[dict[str, str]], direction: dict[str, bool | None]) -> Section:
    """The per-image rows and their pictures (see the module docstring)."""
    scores, methods, metrics = _scores(run)
    pictures = views(run)
    if predictions:
        columns = [c for c in predictions[0] if c not in HIDDEN]
        files = [r["file"] for r in predictions]
        values = {r["file"]: r for r in predictions}
    else:  # score: what scores.csv says of each image
        columns = ["prediction", "truth"]
        files = list(scores)
        values = {f: next(iter(scores[f].values())) for f in files}
    rows_per_page = int(run.settings.get("rows_per_page") or 8)
    truth_column = next((c for c in ("true", "truth") if c in columns), None)
    predicted_column = next((c for c in ("predicted", "prediction") if c in columns), None)
    prefix = common_folder(files)
    rows = []
    for n, name in enumerate(files, start=1):
        source = values[name]
        per_method = scores.get(name, {})
        row: dict[str, Any] = {"n": n, "name": name[len(prefix):], "v": [_value(source.get(c)) for c in columns],
                               "s": {m: [_value(per_method[m].get(c)) for c in metrics] for m in per_method},
                               "flags": {m: r.get("flags", "") for m, r in per_method.items() if r.get("flags")},
                               "region": next((r.get("region", "") for r in per_method.values()), "")}
        view = pictures.get(name)
        if view is not None and view.get("strip"):
            row["pic"] = {"strip": f"report/{view['strip']}", "tiles": view["tiles"], "size": view["size"],
                          "maps": {k: [m["mode"], m["lo"], m["hi"]] for k, m in view["maps"].items()},
                          "outlines": view.get("outlines", {})}
        elif not pictures:
            row["page"] = (n - 1) // rows_per_page + 1  # the grid page that shows it
        rows.append(row)
    data = {
        "columns": [{"key": c, "label": _label(c), "numeric": any(isinstance(r["v"][i], (int, float)) for r in rows),
                     "direction": {"abs_error": "lower", "confidence": None}.get(c)} for i, c in enumerate(columns)],
        "truth": columns.index(truth_column) if truth_column else None,
        "predicted": columns.index(predicted_column) if predicted_column else None,
        "correct": columns.index("correct") if "correct" in columns else None,
        "methods": methods,
        "folder": prefix,
        "pictured": [m for m in methods if any(m in r.get("pic", {}).get("maps", {}) for r in rows)],
        "metrics": [{"key": c, "direction": _direction(c, direction)} for c in metrics],
        "grids": bool(list(run.folder.glob("grid-*.png"))),
        "rows": rows,
    }
    return Section("images", f"Images ({len(rows)})", "images", {"data": data, "count": len(rows)})
