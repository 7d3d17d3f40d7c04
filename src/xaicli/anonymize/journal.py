"""The run journal: what a run has finished, so that a run killed midway can be resumed.

One JSON line per finished file (its result, audit rows included), appended by the worker that
wrote the file, right after the file got its final name: a file is complete when it is under its
final name and recorded here. The first line fingerprints the run (options, key, layout, inputs),
so that ``--resume`` never mixes two different runs. The journal names the inputs' own paths, so
it lives beside the key (``OUTPUT.journal``, mode 0600), never in the folder that is shared.

Lines are appended with one ``write`` each on a descriptor opened with O_APPEND, so lines of
several workers never interleave; a line cut short by a kill does not parse and its file is
simply done again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path

from xaicli.anonymize.settings import FileResult, Settings
from xaicli.errors import OutputError, UsageError

VERSION = 1


def journal_path(output: Path) -> Path:
    output = output.resolve()
    return output.with_name(output.name + ".journal")


def fingerprint(settings: Settings, inputs: list[str]) -> str:
    """What must be the same for a run to continue another: rules, key, layout and inputs."""
    rules = settings.rules
    described = {
        "actions": sorted(rules.actions.items()), "options": list(rules.options), "keep": sorted(rules.user_keep),
        "private": [rules.curve_action, rules.overlay_action, rules.private_action, sorted(rules.safe_private)],
        # The key itself never goes into the journal: a keyed digest of a constant tells runs apart.
        "key": hmac.new(settings.key, b"xaicli journal", hashlib.sha256).hexdigest(),
        "layout": settings.layout, "burned_in": [settings.burned_in, list(settings.mask_boxes),
                                                 sorted(settings.burned_in_modalities)],
        "version": settings.version, "inputs": [str(Path(p).resolve()) for p in inputs],
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


def start(path: Path, print_: str) -> None:
    """A new journal holding only its header (replacing an old one)."""
    header = json.dumps({"journal": VERSION, "run": print_}) + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(header)
        os.chmod(path, 0o600)
    except OSError as exc:
        raise OutputError(f"{path}: run journal cannot be written ({exc.strerror or exc})") from None


def read(path: Path, print_: str) -> dict[str, FileResult]:
    """src -> its last recorded result, for a journal written by the same run (else UsageError)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise OutputError(f"{path}: run journal cannot be read ({exc.strerror or exc})") from None
    try:
        header = json.loads(lines[0]) if lines else {}
    except ValueError:
        header = {}
    if header.get("journal") != VERSION or header.get("run") != print_:
        raise UsageError(f"{path}: the run to resume had other options, key, layout or inputs; give the same "
                         "ones, or pass --overwrite to start again")
    done: dict[str, FileResult] = {}
    for line in lines[1:]:
        try:
            result = FileResult.from_record(json.loads(line))
        except (ValueError, TypeError):
            continue  # cut short by a kill: that file is done again
        done[result.src] = result
    return done


class Writer:
    """Appends results to the journal; one per process, opened on first use."""

    def __init__(self, path: str | None):
        self.path = path
        self._fd: int | None = None

    def append(self, result: FileResult) -> None:
        if self.path is None:
            return
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        os.write(self._fd, (json.dumps(result.to_record(), separators=(",", ":")) + "\n").encode("utf-8"))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
