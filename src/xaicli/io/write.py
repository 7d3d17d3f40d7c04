"""Writing every output: atomic, never replacing a file unless told to, race-free.

A file is written under a temporary name in its own folder, flushed, then given its final name
in one step: ``os.link`` when it must not replace anything (``link`` fails if the name exists, so
there is no window in which another writer's file is lost, as there is between a check and a
rename) and ``os.replace`` with ``overwrite``. An interrupted run never leaves half a file, and a
rerun never destroys earlier results by accident. CSV rows can be streamed (:class:`CsvStream`).
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import secrets
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.errors import OutputError


def exists_error(path: Path) -> OutputError:
    return OutputError(f"{path}: exists already (pass overwrite to replace it)", parameter="overwrite")


def check_outputs(paths: Iterable[Path], overwrite: bool) -> None:
    """Refuse before any work when an output exists or cannot be written (a long run must not
    fail at its end): each path's folder must be creatable -- its nearest existing ancestor a
    writable folder, not a file."""
    seen: set[Path] = set()
    for path in paths:
        path = Path(path)
        if path.exists() and not overwrite:
            raise exists_error(path)
        folder = path.parent
        if folder not in seen:
            seen.add(folder)
            check_writable(folder)


def check_writable(folder: Path) -> None:
    """An OutputError now, not after the work, when ``folder`` cannot be created or written."""
    folder = Path(folder)
    ancestor = folder
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"{folder}: cannot be created: {ancestor} is a file, not a folder", parameter="output")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: cannot be written: {ancestor} is not writable", parameter="output")


@functools.cache
def _umask() -> int:
    # os.umask can only be read by setting it; read it once, before any worker threads start
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temporary(path: Path) -> tuple[int, Path]:
    """An exclusive temporary file beside ``path`` (our own name with O_EXCL: ``tempfile.mkstemp``
    costs about 20 times more per file, which shows when de-identifying thousands of files)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~_umask())
    except OSError as exc:
        raise OutputError(f"{path}: cannot be written ({exc.strerror or exc})") from None
    return fd, tmp


def _publish(tmp: Path, path: Path, overwrite: bool) -> None:
    """Give the finished temporary file its final name (see the module docstring)."""
    try:
        if overwrite:
            os.replace(tmp, path)
        else:
            _link(os.fspath(tmp), os.fspath(path))
    except FileExistsError:
        raise exists_error(path) from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


class AtomicFile:
    """A file written under a temporary name; :meth:`commit` gives it its name, :meth:`discard`
    removes it. As a context manager: committed if the block succeeds, discarded if it raises."""

    def __init__(self, path: str | os.PathLike[str], *, overwrite: bool = False, mode: str = "wb") -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        if self.path.exists() and not overwrite:
            raise exists_error(self.path)
        fd, self.tmp = _temporary(self.path)
        self.handle = os.fdopen(fd, mode, **({"newline": ""} if "b" not in mode else {}))
        self.done = False

    def commit(self) -> Path:
        if not self.done:
            self.done = True
            try:
                self.handle.flush()
                os.fsync(self.handle.fileno())
                self.handle.close()
            except BaseException:
                self.tmp.unlink(missing_ok=True)
                raise
            _publish(self.tmp, self.path, self.overwrite)
        return self.path

    def discard(self) -> None:
        if not self.done:
            self.done = True
            self.handle.close()
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> Any:
        return self.handle

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


def atomic_output(path: str | os.PathLike[str], *, overwrite: bool = False, mode: str = "wb") -> AtomicFile:
    """``with atomic_output(path) as handle:`` -- the file takes the name ``path`` only if the block succeeds."""
    return AtomicFile(path, overwrite=overwrite, mode=mode)


def write_new(path: str | os.PathLike[str], data: bytes, *, overwrite: bool = False, mode: int | None = None,
              sync: bool = False) -> None:
    """The fast core of every whole-file write: a temporary file beside ``path`` (created with
    ``mode``, by default what a plain open() would give), then link (or, with ``overwrite``,
    rename) into place. ``FileExistsError`` when ``path`` exists and may not be replaced; the
    temporary file is gone in every case. String paths and no fsync by default: the
    de-identifier writes thousands of files a minute through it (its run journal is synced)."""
    folder, name = os.path.split(os.fspath(path))
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    mode = 0o666 & ~_umask() if mode is None else mode
    try:
        fd = os.open(tmp, flags, mode)
    except FileNotFoundError:  # the first file of its folder: make the folder, once
        os.makedirs(folder or ".", exist_ok=True)
        fd = os.open(tmp, flags, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link(tmp, os.fspath(path))
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def _link(tmp: str, path: str) -> None:
    """link() fails if the name exists: no window in which another writer's file is lost."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: claim the name, then move onto it
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~_umask()))
        os.replace(tmp, path)


def write_bytes(path: str | os.PathLike[str], data: bytes, *, overwrite: bool = False, sync: bool = True,
                mode: int | None = None) -> Path:
    """Write ``data`` atomically (see :func:`write_new`), fsynced by default; an existing file is
    an :class:`OutputError` unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise exists_error(path)
    try:
        write_new(path, data, overwrite=overwrite, mode=mode, sync=sync)
    except FileExistsError:
        raise exists_error(path) from None
    except OSError as exc:
        raise OutputError(f"{path}: cannot be written ({exc.strerror or exc})") from None
    return path


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB / grayscale uint8 or uint16 array (float in [0, 1] is scaled to uint8)."""
    from xaicli.io.read import cv2_module

    cv2 = cv2_module()
    array = np.asarray(image)
    if np.issubdtype(array.dtype, np.floating):
        array = np.clip(np.round(array * 255.0), 0, 255).astype(np.uint8)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3:
        array = array[:, :, ::-1]  # RGB -> BGR for OpenCV
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(array))
    if not ok:
        raise OutputError("cannot encode PNG")
    return buffer.tobytes()


def write_png(path: str | os.PathLike[str], image: np.ndarray, *, overwrite: bool = False) -> Path:
    return write_bytes(path, encode_png(image), overwrite=overwrite)


def write_npy(path: str | os.PathLike[str], array: np.ndarray, *, overwrite: bool = False) -> Path:
    with atomic_output(path, overwrite=overwrite) as handle:
        np.save(handle, np.asarray(array), allow_pickle=False)
    return Path(path)


def write_npz(path: str | os.PathLike[str], *, overwrite: bool = False, **arrays: np.ndarray) -> Path:
    with atomic_output(path, overwrite=overwrite) as handle:
        np.savez_compressed(handle, **{k: np.asarray(v) for k, v in arrays.items()})
    return Path(path)


def write_json(path: str | os.PathLike[str], document: Any, *, overwrite: bool = False) -> Path:
    """Strict JSON (NaN and infinities as null, NumPy values as plain numbers), atomically."""
    return write_bytes(path, (to_json(document) + "\n").encode("utf-8"), overwrite=overwrite)


def to_json(payload: Any) -> str:
    """Strict JSON text: NaN and infinities become null, NumPy scalars plain numbers."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if isinstance(value, np.ndarray):
            return clean(value.tolist())
        if hasattr(value, "item") and not isinstance(value, (str, bytes)):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, (str, int, float, bool)) or value is None:
            return value
        return str(value)

    return json.dumps(clean(payload), indent=2, allow_nan=False)


def csv_value(value: Any) -> Any:
    """A value as written in CSVs: floats with 6 significant digits (``nan`` for NaN)."""
    if isinstance(value, (float, np.floating)):
        return "nan" if math.isnan(value) else f"{float(value):.6g}"
    if isinstance(value, (np.integer, np.bool_)):
        return int(value)
    return value


def write_csv(
    path: str | os.PathLike[str],
    rows: Iterable[dict[str, Any]],
    *,
    columns: Sequence[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write dict rows as CSV; ``columns`` fixes the column order (default: first row's keys)."""
    rows = list(rows)
    if columns is None:
        columns = list(rows[0]) if rows else []
    with atomic_output(path, overwrite=overwrite, mode="w") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="raise")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: csv_value(v) for k, v in row.items()})
    return Path(path)


class CsvStream:
    """A CSV written row by row into an :class:`AtomicFile` (memory does not grow with the rows):
    :meth:`close` names it, :meth:`discard` drops it."""

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str], *, overwrite: bool) -> None:
        self.path = Path(path)
        self.columns = list(columns)
        self.file = AtomicFile(path, overwrite=overwrite, mode="w")
        self.writer = csv.DictWriter(self.file.handle, fieldnames=self.columns, extrasaction="ignore")
        self.writer.writeheader()
        self.count = 0

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow({k: csv_value(v) for k, v in row.items()})
        self.count += 1

    def close(self) -> Path:
        return self.file.commit()

    def discard(self) -> None:
        self.file.discard()

    def written_rows(self) -> Iterator[dict[str, str]]:
        """The rows written so far, read back from the unfinished file (as text)."""
        if self.file.done:
            return
        self.file.handle.flush()
        with open(self.file.tmp, newline="") as handle:
            yield from csv.DictReader(handle)


def remove_written(root: Path, names: Iterable[str]) -> None:
    """Remove the files ``root/name`` a failed run wrote, and the folders under ``root`` it leaves
    empty, so that an interrupted run neither leaves half its results nor blocks its rerun."""
    folders = set()
    for name in names:
        if name:
            path = root / name
            path.unlink(missing_ok=True)
            folders.update(parent for parent in path.parents if root in parent.parents)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:  # not empty: files of an earlier run, or not ours
            pass
