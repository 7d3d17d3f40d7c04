"""Planning a run: which files, under which names, with which key.

Two layouts (:data:`xaicli.anonymize.settings.LAYOUTS`). By default an output is named after the
de-identified file (``PATIENT/STUDY/SERIES/INSTANCE.dcm``, see
:meth:`xaicli.anonymize.fileproc.Worker._place`), so the plan only lists the inputs. With
``--layout mirror`` the input tree is mirrored (one input folder: its tree; several inputs: one
subfolder each), clashes renamed ``name__2.dcm``; its names can carry identity.

Inputs are named in what is shared by a number (``input-000001``, in plan order); the private path
map beside the key (``OUTPUT.paths.csv``, mode 0600) gives each number its path.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from xaicli.errors import InputError, OutputError, UsageError

KEY_FILE = "xaicli-anonymize.key"  # where earlier versions stored the key: inside the output
AUDIT_FILE = "anonymize-audit.csv"
REPORT_FILE = "anonymize-report.json"
# Names at the output root that belong to the run: an input landing there is renamed like a clash.
RESERVED = (AUDIT_FILE, REPORT_FILE, KEY_FILE)


@dataclass
class Plan:
    # (src, dst, quarantine dst): both None where the output is named after the de-identified file
    items: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    clashes: list[tuple[str, str]] = field(default_factory=list)  # (input, output it was renamed to)
    # src -> the input as the audit and report name it: its number, or with the mirror layout its
    # path relative to the input root (no folder level above what is mirrored gets shared).
    labels: dict[str, str] = field(default_factory=dict)


def files_under(root: Path, exclude: list[Path]) -> list[Path]:
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


def plan_run(inputs: list[str], output: Path, quarantine: Path, layout: str = "pseudonyms") -> Plan:
    """Every input file, in a stable order; with the mirror layout, its output and quarantine path."""
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
    if layout != "mirror":
        for path in paths:
            found = files_under(path, [output, quarantine]) if path.is_dir() else [path]
            for src in found:
                plan.labels[str(src)] = f"input-{len(plan.items) + 1:06d}"
                plan.items.append((str(src), None, None))
        return plan
    for path in paths:
        if path.is_dir():
            base = Path() if single_dir else Path(path.resolve().name)
            pairs = [(f, base / f.relative_to(path)) for f in files_under(path, [output, quarantine])]
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
