"""The run journal: which images of a run are done, so that a crashed or interrupted run resumes.

A run keeps its state in ``OUT/.xaicli-run/`` while it works (the hidden folder is never taken as
an input): ``journal.jsonl`` -- a header line naming the command, a digest of its settings and of
its inputs, then one JSON line per finished image, named by its output name, with the fields its
CSV rows and summaries are rebuilt from (:mod:`xaicli.pipeline.transfer`) -- and ``records/``, one
``.npz`` per image with its maps and image (what the grid, the map files and the consistency
metric need). An image's arrays file is written atomically (and synced) *before* its journal line
is appended and synced, so a line always names a complete file; the line is one ``write`` of a
whole line, and a torn last line (a power cut) is dropped on resume. The driver is the only writer
of the journal; workers of a cluster write arrays files only, each under its own name, idempotently
(a retried batch writes the same bytes again).

``resume`` restores the finished images from the journal and computes only the others; the sinks
then see every image again, in input order, so the final files are those of an uninterrupted run.
A successful run removes the folder. Without ``resume`` an unfinished run's folder is refused (the
message says that ``resume`` continues it) unless ``overwrite`` starts again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.errors import OutputError, UsageError
from xaicli.io import Source
from xaicli.pipeline.record import Record

STATE = ".xaicli-run"
JOURNAL = "journal.jsonl"
RECORDS = "records"
VERSION = 1
#: the temporary files of :mod:`xaicli.io.write` and of the grid writer, with their writer's process id
TEMPORARY = re.compile(r"^\..+\.(\d+)(?:\.[0-9a-f]+\.tmp|-[0-9a-f]+\.part)$")


def arrays_path(records: Path, name: str) -> Path:
    """Where the arrays of the image with output name ``name`` are kept (workers use it too)."""
    return Path(records) / f"{name}.npz"


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return value.as_posix()
    raise TypeError(f"cannot journal a {type(value).__name__}")


def dumps(document: Any) -> str:
    """One journal line (NaN kept as NaN: the file is read back only by :func:`json.loads`)."""
    return json.dumps(document, separators=(",", ":"), default=_plain)


def model_key(loaded: Any) -> list[Any]:
    """What identifies a run's model in its settings: the file and its size (an in-memory model: its info)."""
    path = getattr(loaded, "path", None)
    if path is None or not Path(path).exists():
        return [None, loaded.info.to_json()]
    size = sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) if Path(path).is_dir() else Path(path).stat().st_size
    return [Path(path).as_posix(), size]


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


class RunJournal:
    """The journal of one run into ``out`` (see the module docstring).

    ``settings``: what the per-image results depend on (plain values: methods and parameters,
    metrics, target, model, ...); a resumed run must name the same, and the same inputs.
    Nothing is written until :meth:`begin`, so a run refused by a later check leaves no trace.
    """

    def __init__(self, out: str | os.PathLike[str], command: str, sources: Sequence[Source], settings: Any, *,
                 resume: bool = False, overwrite: bool = False) -> None:
        if resume and overwrite:
            raise UsageError("resume keeps the finished images and overwrite starts again: pass one of them",
                             parameter="resume")
        self.out = Path(out)
        self.folder = self.out / STATE
        self.path = self.folder / JOURNAL
        self.records = self.folder / RECORDS
        self.total = len(sources)
        self.header = {"journal": VERSION, "command": command, "settings": digest(settings),
                       "inputs": digest([s.name for s in sources]), "images": len(sources)}
        self.done: dict[str, dict[str, Any]] = {}
        self.resuming = False
        self.added = 0
        self._valid_bytes: int | None = None
        self._fd: int | None = None
        if self.path.is_file():
            if resume:
                self._load(command)
                self.resuming = True
            elif not overwrite:
                done = self._count()
                raise OutputError(f"{self.out}: holds an unfinished {command} run ({done} of {self.total} images "
                                  "done): resume continues it, overwrite starts it again", parameter="resume")

    # ------------------------------------------------------------------------------ reading

    def _lines(self) -> tuple[list[dict[str, Any]], int]:
        """The complete lines and the byte length they span (a torn last line is left out)."""
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        lines = []
        for raw in data[:end].splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                raise OutputError(f"{self.path}: a corrupt journal line; pass overwrite to start again",
                                  parameter="overwrite") from None
        return lines, end

    def _count(self) -> int:
        try:
            lines, _ = self._lines()
        except OutputError:
            return 0
        return len({line["name"] for line in lines[1:] if "name" in line})

    def _load(self, command: str) -> None:
        lines, self._valid_bytes = self._lines()
        header = lines[0] if lines else {}
        if header.get("journal") != VERSION or header.get("command") != command:
            raise OutputError(f"{self.out}: the unfinished run there is not a {command} run xaicli can resume; "
                              "pass overwrite to start again", parameter="overwrite")
        if header.get("inputs") != self.header["inputs"]:
            raise UsageError(f"{self.out}: the unfinished run there had other inputs; resume it with the same "
                             "inputs, or pass overwrite to start again", parameter="resume")
        if header.get("settings") != self.header["settings"]:
            raise UsageError(f"{self.out}: the unfinished run there used other settings (methods, parameters, "
                             "metrics, target or model); resume it with the same options, or pass overwrite to "
                             "start again", parameter="resume")
        for line in lines[1:]:
            # an image whose arrays file went missing is simply done again
            if not line.get("arrays") or arrays_path(self.records, line["name"]).is_file():
                self.done[line["name"]] = line

    def restore(self, source: Source, truth: Any = None) -> Record:
        """A finished image's record, as it was when it was journaled."""
        from xaicli.pipeline.transfer import decode_arrays, unpack

        fields = self.done[source.name]
        arrays: dict[str, np.ndarray] = {}
        if fields.get("arrays"):
            path = arrays_path(self.records, source.name)
            try:
                arrays = decode_arrays(path.read_bytes())
            except (OSError, ValueError) as exc:
                raise OutputError(f"{path}: cannot be read back ({exc}); pass overwrite to start again",
                                  parameter="overwrite") from None
        return unpack(fields, arrays, source, truth)

    # ------------------------------------------------------------------------------ writing

    def begin(self) -> None:
        """Start writing: a fresh journal (an earlier one removed), or append to the resumed one."""
        crashed = self.folder.exists()
        if not self.resuming and crashed:
            shutil.rmtree(self.folder)
        try:
            self.records.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot be written ({exc.strerror or exc})") from None
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # no advisory locks on this platform
            pass
        except OSError:
            os.close(fd)
            raise OutputError(f"{self.out}: another run is writing there now") from None
        self._fd = fd
        if crashed:
            self._sweep()
        if self.resuming:
            os.truncate(self.path, self._valid_bytes or 0)  # drop a torn last line
        else:
            self._append(self.header)

    def _sweep(self) -> None:
        """Remove the temporary files a killed run left (its CSVs and grid pages in the making); the
        lock says no live run writes here, and a file whose writer still runs is left alone."""
        for path in self.out.rglob(".*"):
            match = TEMPORARY.match(path.name)
            if match is None or not path.is_file() or self.folder in path.parents:
                continue
            try:
                os.kill(int(match.group(1)), 0)
            except ProcessLookupError:
                path.unlink(missing_ok=True)
            except OSError:  # a live process of another user
                pass

    def _append(self, document: dict[str, Any]) -> None:
        os.write(self._fd, (dumps(document) + "\n").encode("utf-8"))
        os.fsync(self._fd)

    def add(self, record: Record, *, fields: dict[str, Any] | None = None, data: bytes | None = None,
            stored: bool = False, with_image: bool = True) -> None:
        """Journal a finished record: its arrays file first (unless a worker ``stored`` it), then its line.

        ``fields``/``data``: the record already packed elsewhere (a worker); else it is packed here.
        """
        from xaicli.io import write_bytes
        from xaicli.pipeline.transfer import encode_arrays, pack

        if fields is None:
            fields, arrays = pack(record, with_image=with_image)
            data = encode_arrays(arrays) if arrays else None
            stored = False
        if data:
            write_bytes(arrays_path(self.records, record.name), data, overwrite=True)
        self._append({**fields, "arrays": bool(data) or stored})
        self.added += 1

    def interrupted(self, error: BaseException) -> None:
        """The run stops on ``error``: close the journal and tell how to continue."""
        self.close()
        finished = len(self.done) + self.added
        if not finished and self.folder.exists():  # nothing to resume: no unfinished run to refuse later
            shutil.rmtree(self.folder, ignore_errors=True)
        if finished and hasattr(error, "add_note"):
            error.add_note(f"{finished} of {self.total} images are done and kept in {self.folder}; "
                           "the same command with --resume (resume=True) continues the run")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def finish(self) -> None:
        """The run's outputs are complete: the state is no longer needed."""
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)
