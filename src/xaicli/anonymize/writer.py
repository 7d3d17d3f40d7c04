"""Resuming the anonymiser's writes: whether an output already holds what it would write, and
removing the temporary files of a killed run. The files themselves are written by the shared
race-free writer, :func:`xaicli.io.write.write_new` (a file appears under its final name whole or
not at all; without ``overwrite`` an existing file is never replaced).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from xaicli.io.write import write_new

__all__ = ["holds", "remove_temporaries", "write_new"]

# .NAME.PID.HEX.tmp: what write_new leaves behind only when its process is killed mid-write.
_TEMPORARY = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp$")


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
