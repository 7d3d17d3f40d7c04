"""The service's private temporary storage: the only place an upload is ever written.

One folder per service (``xaicli-serve-<pid>-<random>``, mode 0700, in the system's temporary
folder or ``--temp-dir``), and inside it one folder per upload with a random name (never the
upload's file name: names carry patient data). An upload's folder is removed when its response is
built; the sweeper removes any folder older than the TTL whatever happened to its request (a
client that vanished, a request still waiting); shutdown removes the service's folder. A service
killed before it could clean up leaves its folder behind: the next service started in the same
parent removes the folders of services whose process is gone.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path

PREFIX = "xaicli-serve-"
_ROOT_NAME = re.compile(rf"^{PREFIX}(\d+)-\w+$")


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's process: alive
        return False
    return False


def remove_orphans(parent: Path) -> int:
    """Remove the folders of services (of this user) that died without cleaning up; returns how many."""
    removed = 0
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return 0
    for entry in entries:
        match = _ROOT_NAME.match(entry.name)
        if not match or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_uid != os.getuid() or not _process_gone(int(match.group(1))):
                continue
        except OSError:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed += 1
    return removed


class TempStore:
    """The service's folder and its per-upload folders (see the module docstring)."""

    def __init__(self, ttl: float, parent: Path | None = None) -> None:
        self.ttl = float(ttl)
        self.parent = Path(parent) if parent is not None else Path(tempfile.gettempdir())
        self.root: Path | None = None

    def open(self) -> Path:
        if self.root is None:
            self.parent.mkdir(parents=True, exist_ok=True)
            remove_orphans(self.parent)
            # mkdtemp creates the folder 0700 (readable by this user only), race-free
            self.root = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=self.parent))
            os.chmod(self.root, 0o700)
        return self.root

    def new(self) -> Path:
        """A fresh folder (0700) for one upload."""
        root = self.open()
        while True:
            folder = root / secrets.token_hex(8)
            try:
                folder.mkdir(mode=0o700)
                return folder
            except FileExistsError:  # 64 random bits: practically never
                continue

    def write(self, folder: Path, name: str, data: bytes) -> Path:
        """``data`` as ``folder/name`` (atomically; no fsync: the file lives for one request)."""
        from xaicli.io import write_bytes

        return write_bytes(folder / name, data, sync=False)

    def remove(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)

    def entries(self) -> list[Path]:
        """The upload folders there now."""
        if self.root is None or not self.root.exists():
            return []
        return sorted(self.root.iterdir())

    def sweep(self, now: float | None = None) -> int:
        """Remove every upload folder older than the TTL; returns how many went."""
        now = time.time() if now is None else now
        removed = 0
        for folder in self.entries():
            try:
                age = now - folder.stat().st_mtime
            except OSError:
                continue
            if age >= self.ttl:
                self.remove(folder)
                removed += 1
        return removed

    def close(self) -> None:
        """Remove the service's folder and everything in it (shutdown)."""
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
