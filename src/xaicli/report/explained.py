"""The pages of runs that explain and score maps: ``compare`` and ``score``.

At the top the verdict (failed gates, warnings, failed inputs), then the summary per method with
the direction of each column and the best method per column, the summary by group, the model's
quality (``compare``), the mean deletion and insertion curves, the consistency table with the
class-mean maps, the time per method, and the per-image rows (:mod:`xaicli.report.images`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xaicli.report.load import Run, number
from xaicli.report.view import Cell, Column, Page, Section, fmt, settings_section, table

ALL = "all"
RANDOM = "random"
SECONDS = "SecondsPerImage"
#: columns of summary.csv that are no metric mean
NOT_MEANS = ("Method", "Images", "Group", "Normalization", "Accuracy", "MAE", "Dice")
#: directions of the columns no metric plugin declares
FIXED = {"Reliability": True, SECONDS: None}


def metric_suffixes() -> list[tuple[str, bool | None]]:
    """``(column suffix, higher is better)`` of every metric plugin, longest suffix first: a
    column is its metric's label, or a region's label followed by the metric's (``lesionRatio``)."""
    from xaicli import plugins
    from xaicli.errors import XaicliError

    found = []
    for name in plugins.names("metrics"):
        try:
            metric = plugins.load("metrics", name)
            # the column of an unnamed region, read from the class (its label and region label only)
            suffixes = {metric.label or metric.name, metric.column(metric, "")}
        except (XaicliError, AttributeError, TypeError):  # a broken plugin: its columns get no direction
            continue
        found += [(suffix, getattr(metric, "higher_is_better", None)) for suffix in suffixes if suffix]
    return sorted(found, key=lambda item: -len(item[0]))


def directions(columns: list[str], recorded: dict[str, Any]) -> dict[str, bool | None]:
    """Which way each column is better: as the run recorded it, else from the metric plugins."""
    suffixes = None
    out: dict[str, bool | None] = {}
    for column in columns:
        if column in recorded:
            out[column] = {"higher": True, "lower": False}.get(recorded[column])
        elif column in FIXED:
            out[column] = FIXED[column]
        else:
            suffixes = suffixes if suffixes is not None else metric_suffixes()
            out[column] = next((d for suffix, d in suffixes if suffix and column.endswith(suffix)), None)
    return out


def mean_columns(summary: list[dict[str, str]]) -> list[str]:
    if not summary:
        return []
    return [c for c in summary[0] if c not in NOT_MEANS and not c.endswith(("_std", "_n"))]


def verdict_section(run: Run, expected_gates: bool) -> Section:
    """Failed gates, warnings, failed inputs and images without a region: what to read first."""
    verdict = run.verdict
    warnings = run.table("warnings.csv")
    gates = list(verdict.get("gate_failures") or [])
    given = list(run.settings.get("fail_if") or [])
    failures = list(verdict.get("failures") or [])
    reasons: dict[str, int] = {}
    for item in verdict.get("no_region") or []:
        reasons[item["reason"]] = reasons.get(item["reason"], 0) + 1
    if not run.record:
        note = f"this folder has no run-{run.kind}.json (a run from the Python API, or from before xaicli " \
               "recorded its runs): gates and failed inputs are not known"
    else:
        note = ""
    return Section("verdict", "Verdict", "verdict", {
        "gates": gates, "gates_given": given, "gates_known": bool(run.record) and expected_gates,
        "warnings": warnings, "failures": failures, "no_region": sorted(reasons.items()), "note": note})


def summary_section(summary: list[dict[str, str]], columns: list[str], direction: dict[str, bool | None],
                    quality: str | None) -> Section:
    """The means per method on all images (best per column marked), and per group."""
    base = [r for r in summary if r.get("Group", ALL) == ALL]
    best = {}
    for column in columns:
        values = [(number(r.get(column)), r["Method"]) for r in base if r["Method"] != RANDOM]
        values = [(v, m) for v, m in values if v is not None]
        if values and direction.get(column) is not None and len(values) > 1:
            best[column] = (max if direction[column] else min)(values)[1]
    heads = [Column("Method", numeric=False)] + [Column(c, direction.get(c)) for c in columns] + [Column("Images")]
    rows = []
    for r in base:
        cells = [Cell(r["Method"], css="chance" if r["Method"] == RANDOM else "")]
        for c in columns:
            spread = f"\u00b1 {fmt(number(r.get(f'{c}_std')))} over {r.get(f'{c}_n', '?')} image(s)"
            cells.append(Cell.of(r.get(c), css="best" if best.get(c) == r["Method"] else "", title=spread))
        cells.append(Cell.of(r.get("Images")))
        rows.append(cells)
    main = table(heads, rows, id="summary-table", caption="Mean per image over all images; \u2191 higher is better, "
                 "\u2193 lower is better; the best method per column in bold; random: a uniform-noise map, the chance "
                 "level every method should beat.")
    groups = list(dict.fromkeys(r.get("Group", ALL) for r in summary))
    methods = list(dict.fromkeys(r["Method"] for r in summary))
    by_group = []
    for column in columns if len(groups) > 1 else []:
        cells = {(r["Group"], r["Method"]): r for r in summary}
        heads = [Column("Group", numeric=False), Column("Images")] + ([Column(quality)] if quality else [])
        heads += [Column(m, direction.get(column)) for m in methods]
        body = []
        for group in groups:
            first = next(r for r in summary if r["Group"] == group)
            body.append([Cell(group), Cell.of(first.get("Images"))] + ([Cell.of(first.get(quality))] if quality else [])
                        + [Cell.of(cells.get((group, m), {}).get(column)) for m in methods])
        by_group.append((column, table(heads, body, id=f"group-{column}")))
    headline = next((c for suffix in ("Lift", "Ratio", "PointingHit", "Deletion", "Entropy")
                     for c in columns if c.endswith(suffix)), columns[0] if columns else "")
    return Section("summary", "Summary per method", "summary",
                   {"table": main, "by_group": by_group, "headline": headline})


def timing_section(summary: list[dict[str, str]]) -> Section | None:
    base = [r for r in summary if r.get("Group", ALL) == ALL and number(r.get(SECONDS)) is not None]
    if not base:
        return None
    slowest = max(number(r[SECONDS]) for r in base) or 1.0
    rows = []
    for r in base:
        mean, images = number(r[SECONDS]), number(r.get("Images")) or 0
        rows.append({"method": r["Method"], "mean": Cell.of(r[SECONDS]), "std": Cell.of(r.get(f"{SECONDS}_std")),
                     "total": Cell.of(mean * images), "share": 100.0 * mean / slowest})
    return Section("timing", "Time per method", "timing", {"rows": rows})


def curves_section(run: Run) -> Section | None:
    """The mean deletion and insertion curves per method (``curves.csv``), drawn with their AUC."""
    from xaicli.report.figures import curves_figure

    rows = run.table("curves.csv")
    if not rows:
        return None
    grouped: dict[str, dict[str, list[tuple[float, float, float, float]]]] = {}
    for r in rows:
        grouped.setdefault(r["metric"], {}).setdefault(r["method"], []).append(
            (number(r["fraction"]) or 0.0, number(r["mean"]), number(r["std"]) or 0.0, number(r["n"]) or 1.0))
    curves = {}
    for metric, methods in grouped.items():
        curves[metric] = {}
        for method, points in methods.items():
            points = [p for p in points if p[1] is not None]
            f, m, s, n = (np.array(v, np.float64) for v in zip(*points, strict=True))
            curves[metric][method] = (f, m, s / np.sqrt(np.maximum(n, 1)))
    task = (run.record.get("model") or {}).get("task")
    label = {"classification": "probability of the explained class", "regression": "predicted value"}.get(
        task, "target score")
    return Section("curves", "Deletion and insertion curves", "curves",
                   {"figure": curves_figure(curves, {m: label for m in curves}), "metrics": list(curves)})


def consistency_section(run: Run) -> Section | None:
    """L_CAM per method and class (``consistency.csv``), and the class-mean maps the run kept."""
    from xaicli.report.keep import CLASS_MEANS

    rows = run.table("consistency.csv")
    if not rows:
        return None
    classes = list(dict.fromkeys(r["class"] for r in rows if r["class"] != "(all)")) + ["(all)"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cells = {(r["method"], r["class"]): r for r in rows}
    body = [[Cell(m)] + [Cell.of(cells.get((m, c), {}).get("consistency"),
                                 title=f"{cells.get((m, c), {}).get('n', 0)} correctly predicted image(s)")
                         for c in classes] for m in methods]
    heads = [Column("Method", numeric=False)] + [Column(c, False) for c in classes]
    means = run.document(f"report/{CLASS_MEANS}") or []
    grid = {(m["method"], m["class"]): m for m in means}
    pictures = [(m, [grid.get((m, c)) for c in classes[:-1]]) for m in methods] if means else []
    return Section("consistency", "Consistency of each method's maps", "consistency",
                   {"table": table(heads, body, id="consistency-table"), "classes": classes[:-1],
                    "pictures": pictures})


def grids_section(run: Run) -> Section | None:
    pages = sorted(p.name for p in run.folder.glob("grid-*.png"))
    if not pages:
        return None
    return Section("grids", "Grid pages", "grids", {"pages": pages})


def explained_sections(run: Run, predictions: list[dict[str, str]]) -> tuple[list[Section], dict[str, Any]]:
    """The sections shared by ``compare`` and ``score`` (the per-image rows included)."""
    from xaicli.report.images import images_section

    summary = run.table("summary.csv")
    columns = mean_columns(summary)
    direction = directions(columns, run.verdict.get("directions") or {})
    quality = next((q for q in ("Accuracy", "MAE", "Dice") if summary and q in summary[0]), None)
    sections = [verdict_section(run, expected_gates=True)]
    sections += [s for s in (settings_section(run),) if s]
    sections.append(summary_section(summary, [c for c in columns if c != SECONDS], direction, quality))
    sections += [s for s in (curves_section(run), consistency_section(run), timing_section(summary)) if s]
    sections.append(images_section(run, predictions, direction))
    sections += [s for s in (grids_section(run),) if s]
    return sections, {"summary": summary, "quality": quality}


def compare_page(run: Run) -> Page:
    from xaicli.report.modelruns import quality_from_predictions

    predictions = run.table("predictions.csv")
    sections, found = explained_sections(run, predictions)
    model = run.record.get("model") or {}
    quality = quality_from_predictions(predictions, model.get("class_names") or [])
    if quality is not None:
        sections.insert(1, quality)
    methods = [r["Method"] for r in found["summary"] if r.get("Group", ALL) == ALL and r["Method"] != RANDOM]
    images = len(predictions) or (number(found["summary"][0].get("Images")) if found["summary"] else 0)
    facts = [("run", "compare"), ("images", fmt(images)), ("methods", ", ".join(methods))]
    facts += [("model", model["file"])] if model.get("file") else []
    region = run.verdict.get("region")
    facts += [("region", region)] if region else []
    return Page(f"Comparison of {len(methods)} method(s) on {fmt(images)} image(s)", "compare", facts, sections)


def score_page(run: Run) -> Page:
    sections, found = explained_sections(run, [])
    methods = [r["Method"] for r in found["summary"] if r.get("Group", ALL) == ALL and r["Method"] != RANDOM]
    facts = [("run", "score"), ("methods", ", ".join(methods))]
    return Page(f"Scores of {len(methods)} method(s)", "score", facts, sections)
