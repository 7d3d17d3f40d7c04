"""The anonymiser's one way of writing an output file: atomically, never over another file.

:func:`write_new` is the only writer of de-identified files (the audit, report and path map go
through :func:`xaicli.io.atomic_output`). It is meant to be swapped for the shared race-free
writer of :mod:`xaicli.io` once that one exists, so it keeps to that contract: a file appears
under its final name whole or not at all; without ``overwrite`` an existing file is never
replaced, with no window in which another writer's file could be lost.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

# .NAME.PID.HEX.tmp: what write_new leaves behind only when its process is killed mid-write.
_TEMPORARY = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp$")


def write_new(path: str | os.PathLike, data: bytes, *, overwrite: bool = False, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it (created with ``mode``), then
    link (or, with ``overwrite``, rename) it into place. FileExistsError when ``path`` exists and
    may not be replaced; the temporary file is gone in every case."""
    # Our own temporary name with O_EXCL: tempfile.mkstemp costs ~20x more per file here.
    # (String paths: pathlib's parsing costs more than the rest of this function.)
    folder, name = os.path.split(os.fspath(path))
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(tmp, flags, mode)
    except FileNotFoundError:  # the first file of its folder: make the folder, once
        os.makedirs(folder or ".", exist_ok=True)
        fd = os.open(tmp, flags, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if overwrite:
            os.replace(tmp, path)
        else:
            # link() fails if the name exists: no window in which another writer's file is lost.
            os.link(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def holds(path: str | os.PathLike, data: bytes) -> bool:
    """``path`` is a file with exactly ``data`` in it (an output written before, e.g. by a run
    that was killed between writing a file and recording it)."""
    try:
        if os.stat(path).st_size != len(data):
            return False
        with open(path, "rb") as handle:
            return handle.read() == data
    except OSError:
        return False


def remove_temporaries(root: Path) -> int:
    """Delete what write_new left behind in processes killed mid-write; returns how many."""
    removed = 0
    for folder, _, names in os.walk(root):
        for name in names:
            if _TEMPORARY.match(name):
                os.unlink(os.path.join(folder, name))
                removed += 1
    return removed
