"""Plan a de-identification run (mirror the tree, never collide), run it, audit it; and --check.

Everything here is plain Python for the CLI to call: no typer, no rich.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from xaicli.anonymize.engine import (
    DEFAULT_BURNED_IN_MODALITIES,
    FileResult,
    Settings,
    dicom_start,
    quiet_pydicom,
    run_batch,
    scan_findings,
)
from xaicli.anonymize.profile import Rules
from xaicli.errors import InputError, OutputError, UsageError

KEY_FILE = "xaicli-anonymize.key"  # where earlier versions stored the key: inside the output
AUDIT_FILE = "anonymize-audit.csv"
REPORT_FILE = "anonymize-report.json"
# Names at the output root that belong to the run: an input landing there is renamed like a clash.
RESERVED = (AUDIT_FILE, REPORT_FILE, KEY_FILE)
AUDIT_COLUMNS = ["input", "output", "location", "keyword", "vr", "action"]


@dataclass
class Plan:
    items: list[tuple[str, str, str | None]] = field(default_factory=list)  # src, dst, quarantine dst
    clashes: list[tuple[str, str]] = field(default_factory=list)  # (input, output it was renamed to)
    # src -> the input as the audit and report name it: relative to the input root, so that no
    # folder level above what is mirrored (a patient's name, say) gets into the shared folder.
    labels: dict[str, str] = field(default_factory=dict)


def _files_under(root: Path, exclude: list[Path]) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not any(_same(here / d, e) for e in exclude))
        found.extend(here / name for name in sorted(filenames))
    return found


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def plan_run(inputs: list[str], output: Path, quarantine: Path) -> Plan:
    """Mirror each input into ``output`` (one folder: its tree; several: one subfolder each)."""
    if not inputs:
        raise UsageError("give at least one input file or folder")
    paths = [Path(p) for p in inputs]
    for path in paths:
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        if _same(path, output):
            raise UsageError(f"{output}: the output folder must not be the input folder")
        if _inside(path, output):
            raise UsageError(f"{path}: input lies inside the output folder {output}")
    single_dir = len(paths) == 1 and paths[0].is_dir()
    plan = Plan()
    taken: set[str] = {name.lower() for name in RESERVED}
    for path in paths:
        if path.is_dir():
            base = Path() if single_dir else Path(path.resolve().name)
            pairs = [(f, base / f.relative_to(path)) for f in _files_under(path, [output, quarantine])]
        else:
            pairs = [(path, Path(path.name))]
        for src, rel in pairs:
            unique = rel
            n = 2
            while unique.as_posix().lower() in taken:
                unique = rel.with_name(f"{rel.stem}__{n}{rel.suffix}")
                n += 1
            if unique != rel:
                plan.clashes.append((str(src), unique.as_posix()))
            taken.add(unique.as_posix().lower())
            plan.items.append((str(src), str(output / unique), str(quarantine / unique)))
            plan.labels[str(src)] = rel.as_posix()
    return plan


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except (ValueError, OSError):
        return False


def key_path(output: Path) -> Path:
    """Where a generated key is kept: beside the output folder (OUTPUT.key), never inside it, so
    that sharing the folder does not share the key (with it, pseudonyms of guessable patient IDs
    can be confirmed)."""
    output = output.resolve()
    return output.with_name(output.name + ".key")


def resolve_key(key: str | None, key_file: str | None, output: Path, *, dry_run: bool) -> tuple[bytes, str]:
    """(key bytes, a sentence saying where it came from); generates and stores one if none given."""
    if key and key_file:
        raise UsageError("give --key or --key-file, not both")
    if key:
        return key.encode("utf-8"), "key from --key"
    if key_file:
        path = Path(key_file)
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InputError(f"{path}: key file cannot be read ({exc.strerror or exc})") from None
        if not text:
            raise InputError(f"{path}: key file is empty")
        return text.encode("utf-8"), f"key from {path}"
    stored = key_path(output)
    if stored.exists():
        return stored.read_text(encoding="utf-8").strip().encode("utf-8"), f"key reused from {stored}"
    legacy = output / KEY_FILE
    if legacy.exists():
        return legacy.read_text(encoding="utf-8").strip().encode("utf-8"), (
            f"key reused from {legacy}: it lies inside the output folder; move it to {stored} "
            "before sharing the folder"
        )
    text = secrets.token_hex(32)
    if dry_run:
        return text.encode("utf-8"), "a new random key (dry run: not stored)"
    try:
        stored.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(stored, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    except OSError as exc:
        raise OutputError(f"{stored}: key file cannot be written ({exc.strerror or exc})") from None
    return text.encode("utf-8"), (
        f"new key written to {stored} (mode 0600, beside the output folder): a later run into "
        f"{output} reuses it; pass --key-file {stored} to map the same identities elsewhere, "
        "and keep it out of what you share"
    )


@dataclass
class RunSummary:
    results: list[FileResult]
    clashes: list[tuple[str, str]]
    seconds: float
    audit_path: Path | None
    report_path: Path | None
    key_note: str
    labels: dict[str, str] = field(default_factory=dict)

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
    burned_in: str = "quarantine",
    mask_boxes: tuple[tuple[int, int, int, int], ...] = (),
    burned_in_modalities: tuple[str, ...] = DEFAULT_BURNED_IN_MODALITIES,
    quarantine: Path | None = None,
    version: str = "",
) -> RunSummary:
    """De-identify every file under ``inputs`` into ``output``; see the module docstring."""
    quiet_pydicom()
    if burned_in not in ("quarantine", "mask", "keep"):
        raise UsageError(f"--burned-in must be quarantine, mask or keep, not {burned_in!r}")
    if burned_in == "mask" and not mask_boxes:
        raise UsageError("--burned-in mask needs at least one --mask-box X,Y,WIDTH,HEIGHT")
    quarantine = quarantine or output.with_name(output.name + "-quarantine")
    plan = plan_run(inputs, output, quarantine)
    audit_path, report_path = output / AUDIT_FILE, output / REPORT_FILE
    if not dry_run and not overwrite:
        for path in (audit_path, report_path):
            if path.exists():
                raise OutputError(f"{path}: exists already (pass --overwrite to replace it)")
    key_bytes, key_note = resolve_key(key, key_file, output, dry_run=dry_run)
    settings = Settings(
        rules=rules,
        key=key_bytes,
        burned_in=burned_in,
        mask_boxes=tuple(mask_boxes),
        burned_in_modalities=frozenset(m.upper() for m in burned_in_modalities),
        overwrite=overwrite,
        dry_run=dry_run,
        version=version,
    )
    start = time.perf_counter()
    results = run_batch(plan.items, settings, jobs or os.cpu_count() or 1)
    seconds = time.perf_counter() - start
    summary = RunSummary(results, plan.clashes, seconds, None, None, key_note, plan.labels)
    if not dry_run:
        _write_audit(audit_path, summary, output, quarantine, overwrite)
        _write_report(report_path, summary, rules, output, quarantine, overwrite)
        summary.audit_path, summary.report_path = audit_path, report_path
    return summary


def _rel(path: str | None, *roots: Path) -> str:
    if not path:
        return ""
    for root in roots:
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:
            continue
    return str(path)


def _write_audit(path: Path, summary: RunSummary, output: Path, quarantine: Path, overwrite: bool) -> None:
    """One row per attribute action per file: where, which, what was done; never a value."""
    import csv

    from xaicli.io import atomic_output

    with atomic_output(path, overwrite=overwrite, mode="w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(AUDIT_COLUMNS)
        for result in summary.results:
            if result.status not in ("ok", "quarantined"):
                continue
            out = _rel(result.dst, output, quarantine.parent)
            source = summary.label(result.src)
            for location, keyword, vr, action in result.actions:
                writer.writerow([source, out, location, keyword, vr, action])


def _write_report(path: Path, summary: RunSummary, rules: Rules, output: Path, quarantine: Path, overwrite: bool) -> None:
    from xaicli.anonymize.profile import load_table
    from xaicli.io import write_bytes

    meta, rows = load_table()
    report = {
        "profile": "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile",
        "table": {"edition": meta.get("edition", ""), "source": meta.get("source", ""), "rows": len(rows)},
        "options": list(rules.options),
        "files": len(summary.results),
        "deidentified": len(summary.by_status("ok")),
        # Inputs relative to their input root (see Plan.labels), like the audit's input column.
        "quarantined": [{"input": summary.label(r.src), "output": _rel(r.dst, quarantine.parent), "reason": r.reason}
                        for r in summary.by_status("quarantined")],
        "skipped": [{"input": summary.label(r.src), "reason": r.reason} for r in summary.by_status("skipped")],
        "failed": [{"input": summary.label(r.src), "reason": r.reason} for r in summary.by_status("failed")],
        "held_back": [{"input": summary.label(r.src), "reason": r.reason} for r in summary.by_status("held back")],
        "clashes": [{"input": summary.label(src), "renamed_to": new} for src, new in summary.clashes],
        "burned_in_kept": [summary.label(r.src) for r in summary.results if r.status == "ok" and r.burned_in and not r.masked],
        "masked": [summary.label(r.src) for r in summary.results if r.masked],
        "seconds": round(summary.seconds, 3),
    }
    write_bytes(path, (json.dumps(report, indent=2) + "\n").encode("utf-8"), overwrite=overwrite)


# --------------------------------------------------------------------------------- check mode


@dataclass
class CheckResult:
    files: int
    checked: int
    skipped: list[tuple[str, str]]
    findings: list[tuple[str, str, str, str]]  # file, location, keyword, problem


def check(folder: Path, rules: Rules, burned_in_modalities: tuple[str, ...] = DEFAULT_BURNED_IN_MODALITIES) -> CheckResult:
    """Scan ``folder`` for anything the profile says must go, at any depth, and unmarked files."""
    import warnings

    import pydicom
    from pydicom.errors import InvalidDicomError

    quiet_pydicom()
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"{folder}: no such file or folder")
    files = _files_under(folder, []) if folder.is_dir() else [folder]
    modalities = frozenset(m.upper() for m in burned_in_modalities)
    skipped: list[tuple[str, str]] = []
    findings: list[tuple[str, str, str, str]] = []
    checked = 0
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            findings.append((str(path), "", "", f"cannot be read ({exc.strerror or type(exc).__name__})"))
            continue
        start = dicom_start(data)
        if start is None:
            skipped.append((str(path), "not a DICOM file"))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(io.BytesIO(data[start:]), force=True)
            except InvalidDicomError:
                skipped.append((str(path), "not a DICOM file"))
                continue
            except Exception as exc:  # noqa: BLE001
                findings.append((str(path), "", "", f"cannot be read ({type(exc).__name__})"))
                continue
            checked += 1
            for location, keyword, problem in scan_findings(ds, rules, modalities):
                findings.append((str(path), location, keyword, problem))
    return CheckResult(len(files), checked, skipped, findings)
