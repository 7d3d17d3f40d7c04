"""Run a de-identification: plan, key, journal, the batch, then the audit, report and path map.

What lands in the shared output folder names inputs only by number (``input-000001``) and
outputs only by their pseudonymised paths; the inputs' own paths go to the path map beside the
key (``OUTPUT.paths.csv``, mode 0600), as the run journal does (``OUTPUT.journal``). A run that
was killed continues with ``--resume``: outputs recorded in the journal and present are kept,
the rest are done again, and one audit covers the whole run, row for row as an uninterrupted
run writes it. A run that completes deletes its journal. Everything here is plain Python for the CLI to call: no typer, no rich.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from xaicli.anonymize import journal
from xaicli.anonymize.plan import AUDIT_FILE, REPORT_FILE, plan_run, resolve_key
from xaicli.anonymize.profile import Rules
from xaicli.anonymize.runner import run_batch
from xaicli.anonymize.settings import (
    DEFAULT_BURNED_IN_MODALITIES,
    LAYOUTS,
    UNLISTED,
    FileResult,
    Settings,
)
from xaicli.anonymize.writer import remove_temporaries, write_new
from xaicli.errors import OutputError, UsageError

AUDIT_COLUMNS = ["input", "output", "location", "keyword", "vr", "action", "basis"]
DONE = ("ok", "quarantined")


def paths_map_path(output: Path) -> Path:
    output = output.resolve()
    return output.with_name(output.name + ".paths.csv")


@dataclass
class RunSummary:
    results: list[FileResult]
    clashes: list[tuple[str, str]]
    seconds: float
    audit_path: Path | None
    report_path: Path | None
    key_note: str
    labels: dict[str, str] = field(default_factory=dict)
    kept: int = 0  # outputs of an earlier, interrupted run kept by --resume
    paths_path: Path | None = None

    def label(self, src: str) -> str:
        return self.labels.get(src, Path(src).name)

    def by_status(self, status: str) -> list[FileResult]:
        return [r for r in self.results if r.status == status]

    @property
    def not_deidentified(self) -> list[FileResult]:
        return [r for r in self.results if r.status in ("failed", "quarantined", "held back")]


def anonymize(
    inputs: list[str],
    output: Path,
    rules: Rules,
    *,
    key: str | None = None,
    key_file: str | None = None,
    jobs: int | None = None,
    dry_run: bool = False,
    overwrite: bool = False,
    resume: bool = False,
    layout: str = "pseudonyms",
    burned_in: str = "quarantine",
    mask_boxes: tuple[tuple[int, int, int, int], ...] = (),
    burned_in_modalities: tuple[str, ...] = DEFAULT_BURNED_IN_MODALITIES,
    quarantine: Path | None = None,
    version: str = "",
) -> RunSummary:
    """De-identify every file under ``inputs`` into ``output``; see the module docstring."""
    if burned_in not in ("quarantine", "mask", "keep"):
        raise UsageError(f"--burned-in must be quarantine, mask or keep, not {burned_in!r}")
    if burned_in == "mask" and not mask_boxes:
        raise UsageError("--burned-in mask needs at least one --mask-box X,Y,WIDTH,HEIGHT")
    if layout not in LAYOUTS:
        raise UsageError(f"--layout must be {' or '.join(LAYOUTS)}, not {layout!r}")
    if resume and (overwrite or dry_run):
        raise UsageError("--resume continues a run: give it without --overwrite and --dry-run")
    quarantine = quarantine or output.with_name(output.name + "-quarantine")
    plan = plan_run(inputs, output, quarantine, layout)
    audit_path, report_path, journal_file = output / AUDIT_FILE, output / REPORT_FILE, journal.journal_path(output)
    if not dry_run and not overwrite and not resume:
        _refuse_rerun(output, audit_path, report_path, journal_file)
    key_bytes, key_note = resolve_key(key, key_file, output, dry_run=dry_run)
    settings = Settings(
        rules=rules, key=key_bytes, burned_in=burned_in, mask_boxes=tuple(mask_boxes),
        burned_in_modalities=frozenset(m.upper() for m in burned_in_modalities), overwrite=overwrite,
        dry_run=dry_run, version=version, layout=layout, output=str(output), quarantine=str(quarantine),
        journal=None if dry_run else str(journal_file), resume=resume,
    )
    run = journal.fingerprint(settings, inputs)
    kept: dict[str, FileResult] = {}
    if resume:
        if not journal_file.exists():
            finished = " (the run into it finished)" if audit_path.exists() else ""
            raise UsageError(f"{output}: no run to resume{finished}: no {journal_file}; run it without --resume")
        kept = {src: r for src, r in journal.read(journal_file, run).items()
                if r.status in DONE and r.dst and Path(r.dst).is_file()}
        for root in (output, quarantine):
            if root.exists():
                remove_temporaries(root)
    elif not dry_run:
        journal_file.parent.mkdir(parents=True, exist_ok=True)
        journal.start(journal_file, run)
    start = time.perf_counter()
    todo = [item for item in plan.items if item[0] not in kept]
    fresh = iter(run_batch(todo, settings, jobs or os.cpu_count() or 1))
    results = [kept[item[0]] if item[0] in kept else next(fresh) for item in plan.items]
    summary = RunSummary(results, plan.clashes, time.perf_counter() - start, None, None, key_note, plan.labels,
                         kept=len(kept))
    if not dry_run:
        replace = overwrite or resume
        output.mkdir(parents=True, exist_ok=True)
        _write_audit(audit_path, summary, output, quarantine, replace)
        _write_report(report_path, summary, rules, output, quarantine, replace, layout)
        summary.paths_path = _write_paths(paths_map_path(output), summary, output, quarantine)
        summary.audit_path, summary.report_path = audit_path, report_path
        journal_file.unlink(missing_ok=True)  # the run is complete: nothing is left to resume
    return summary


def _refuse_rerun(output: Path, audit: Path, report: Path, journal_file: Path) -> None:
    """A second run into the same output would list every file written before as failed: say
    what to do instead, once, before anything is read."""
    finished = audit.exists() or report.exists()
    if journal_file.exists() and not finished:
        raise OutputError(f"{output}: holds an interrupted run (its journal is {journal_file}); pass --resume "
                          "to continue it, or --overwrite to start again")
    for path in (audit, report):
        if path.exists():
            raise OutputError(f"{path}: exists already (pass --overwrite to replace it, or --resume to finish "
                              "an interrupted run)")


def _rel(path: str | None, *roots: Path) -> str:
    """``path`` relative to the first of ``roots`` it lies under (string work: thousands of rows)."""
    if not path:
        return ""
    for root in roots:
        prefix = str(root).rstrip(os.sep) + os.sep
        if path.startswith(prefix):
            return path[len(prefix):].replace(os.sep, "/")
    return str(path)


def _write_audit(path: Path, summary: RunSummary, output: Path, quarantine: Path, overwrite: bool) -> None:
    """One row per attribute action per file: where, which, what was done, on what basis; never
    a value, and inputs by number (or mirrored path) only."""
    from xaicli.io import atomic_output

    with atomic_output(path, overwrite=overwrite, mode="w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(AUDIT_COLUMNS)
        for result in summary.results:
            if result.status not in DONE:
                continue
            out = _rel(result.dst, output, quarantine.parent)
            source = summary.label(result.src)
            for location, keyword, vr, action, basis in result.actions:
                writer.writerow([source, out, location, keyword, vr, action, basis])


def _write_report(path: Path, summary: RunSummary, rules: Rules, output: Path, quarantine: Path,
                  overwrite: bool, layout: str) -> None:
    """The run's counts and lists. No timings: a resumed run writes the same report as an
    uninterrupted one."""
    from xaicli.anonymize.profile import load_table
    from xaicli.io import write_bytes

    meta, rows = load_table()
    done = [r for r in summary.results if r.status in DONE]
    unlisted = [a[3] for r in done for a in r.actions if a[4] == UNLISTED]

    def listed(status: str) -> list[dict]:
        return [{"input": summary.label(r.src), "reason": r.reason} for r in summary.by_status(status)]

    report = {
        "profile": "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile",
        "table": {"edition": meta.get("edition", ""), "source": meta.get("source", ""), "rows": len(rows)},
        "options": list(rules.options),
        "layout": layout,
        "files": len(summary.results),
        "deidentified": len(summary.by_status("ok")),
        # Attributes Table E.1-1 does not list, removed or cleaned (unlisted.py), over all files.
        "outside_table": {"removed": unlisted.count("X"), "cleaned": unlisted.count("C"),
                          "uids_replaced": unlisted.count("U")},
        "quarantined": [{"input": summary.label(r.src), "output": _rel(r.dst, quarantine.parent), "reason": r.reason}
                        for r in summary.by_status("quarantined")],
        "skipped": listed("skipped"),
        "failed": listed("failed"),
        "held_back": listed("held back"),
        "clashes": [{"input": summary.label(src), "renamed_to": new} for src, new in summary.clashes]
        + [{"input": summary.label(r.src), "renamed_to": _rel(r.dst, output, quarantine.parent)}
           for r in done if r.renamed],
        "burned_in_kept": [summary.label(r.src) for r in done if r.status == "ok" and r.burned_in and not r.masked],
        "masked": [summary.label(r.src) for r in summary.results if r.masked],
        "paths_map": f"{paths_map_path(output).name}, beside this folder (mode 0600: not part of what is shared)",
    }
    write_bytes(path, (json.dumps(report, indent=2) + "\n").encode("utf-8"), overwrite=overwrite)


def _write_paths(path: Path, summary: RunSummary, output: Path, quarantine: Path) -> Path:
    """input number -> the input's own path -> its output: kept beside the key, as private as it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["input", "path", "output", "status"])
    for result in summary.results:
        writer.writerow([summary.label(result.src), result.src, _rel(result.dst, output, quarantine.parent),
                         result.status])
    try:
        write_new(path, buffer.getvalue().encode("utf-8"), overwrite=True, mode=0o600)
    except OSError as exc:
        raise OutputError(f"{path}: path map cannot be written ({exc.strerror or exc})") from None
    return path
