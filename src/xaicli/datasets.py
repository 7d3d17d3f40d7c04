"""Datasets for ``train`` and ground truth for ``predict``: where labels come from.

* classification: folder-per-class (``DATA/<class>/**/image``);
* regression: a labels CSV (``file,value``) or a filename pattern; UTKFace's
  ``{age}_{gender}_{race}_*`` is built in (``--pattern utkface``, and recognised by itself);
* segmentation: an image folder plus a mask folder (masks matched by :class:`xaicli.io.MaskMatcher`,
  as DRIVE's 21_training -> 21_manual1); the DRIVE layout (``images/`` + ``1st_manual/``) is
  recognised by itself.

Plain Python and NumPy: no TensorFlow here.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.errors import InputError, UsageError
from xaicli.io import MaskMatcher, Source, iter_image_files
from xaicli.io.discover import DRIVE_IMAGES, is_drive_root

UTKFACE_PATTERN = "{age}_{gender}_{race}_*"
PATTERN_ALIASES = {"utkface": UTKFACE_PATTERN}
DRIVE_MASKS = "1st_manual"


@dataclass
class Dataset:
    """Labelled images: ``labels`` holds class indices, float values or mask paths."""

    task: str
    files: list[Path]
    labels: list[Any]
    class_names: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)  # how the labels were found


# ------------------------------------------------------------------------ filename patterns


def compile_pattern(pattern: str) -> tuple[re.Pattern[str], str]:
    """A filename template as a regex, and the field that holds the value (the first one).

    ``{name}`` matches a number, ``*`` anything; the template is matched against the file's stem.
    ``utkface`` stands for ``{age}_{gender}_{race}_*``.
    """
    template = PATTERN_ALIASES.get(pattern.lower(), pattern)
    fields = re.findall(r"\{(\w+)\}", template)
    if not fields:
        raise UsageError(f"pattern {pattern!r} names no field; write e.g. '{{age}}_*' or 'utkface'")
    regex, position = "", 0
    for match in re.finditer(r"\{(\w+)\}|\*", template):
        regex += re.escape(template[position : match.start()])
        regex += rf"(?P<{match.group(1)}>-?\d+(?:\.\d+)?)" if match.group(1) else ".*"
        position = match.end()
    regex += re.escape(template[position:])
    return re.compile(f"^{regex}$"), fields[0]


def value_from_name(path: Path, pattern: str) -> float | None:
    regex, name = compile_pattern(pattern)
    match = regex.match(Path(path).stem)
    return float(match.group(name)) if match else None


def _all_match(files: Sequence[Path], pattern: str) -> bool:
    return bool(files) and all(value_from_name(f, pattern) is not None for f in files)


# ------------------------------------------------------------------------------ labels CSV


def read_labels_csv(path: str | Path, column: str | None = None) -> dict[str, float]:
    """``file -> value`` from a CSV with a file column (file/filename/image/path) and a value
    column (``column``, or the first other numeric column). Keys are the names as written."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise InputError(f"{path}: no such labels file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read the labels CSV ({exc})") from None
    if not rows:
        raise InputError(f"{path}: the labels CSV has no rows")
    header = list(rows[0])
    file_col = next((c for c in header if c and c.strip().lower() in ("file", "filename", "image", "path", "name")), None)
    if file_col is None:
        raise InputError(f"{path}: the labels CSV needs a 'file' column (found: {', '.join(header)})")
    if column is None:
        column = next((c for c in header if c != file_col), None)
    if column not in header:
        raise InputError(f"{path}: the labels CSV has no column {column!r} (found: {', '.join(header)})")
    labels: dict[str, float] = {}
    for number, row in enumerate(rows, start=2):
        try:
            labels[row[file_col].strip()] = float(row[column])
        except (TypeError, ValueError):
            raise InputError(f"{path}: line {number}: {column} value {row[column]!r} is not a number") from None
    return labels


def _label_for(file: Path, labels: dict[str, float], root: Path | None) -> float | None:
    keys = [file.as_posix(), file.name, file.stem]
    if root is not None:
        try:
            keys.insert(0, file.relative_to(root).as_posix())
        except ValueError:
            pass
    for key in keys:
        if key in labels:
            return labels[key]
    return None


def truths(
    sources: Sequence[Source],
    info: Any,
    *,
    labels: str | Path | None = None,
    label_column: str | None = None,
    pattern: str | None = None,
    masks: str | Path | None = None,
) -> tuple[list[Any], str | None]:
    """The known truth per input (None where unknown) for a model's task, and where it came from.

    classification: the parent folder's name when it is one of the model's classes;
    regression: ``labels`` CSV, else ``pattern``, else the pattern the model was trained with,
    else UTKFace names; segmentation: ``masks`` folder, else DRIVE's ``1st_manual`` beside
    ``images/``. Returns mask *paths* for segmentation. In-memory inputs have no truth.
    """
    files = [s.path if s.path is not None else Path(s.name) for s in sources]
    roots = [s.root for s in sources]
    known = [s.path is not None for s in sources]
    found, source = _truths(files, roots, info, labels, label_column, pattern, masks)
    return [v if k else None for v, k in zip(found, known, strict=True)], source


def _truths(files: list[Path], roots: list[Path | None], info: Any, labels: Any, label_column: Any,
            pattern: Any, masks: Any) -> tuple[list[Any], str | None]:
    if info.task == "classification":
        names = {name: i for i, name in enumerate(info.class_names)}
        found = [names.get(f.parent.name) for f in files]
        return found, "folder names" if any(v is not None for v in found) else None
    if info.task == "regression":
        if labels is not None:
            table = read_labels_csv(labels, label_column)
            return [_label_for(f, table, r) for f, r in zip(files, roots, strict=True)], f"labels CSV {labels}"
        candidates = [pattern] if pattern else []
        trained = (info.extra or {}).get("label_pattern")
        if not pattern:
            candidates += [p for p in (trained, "utkface") if p]
        for candidate in candidates:
            found = [value_from_name(f, candidate) for f in files]
            if pattern or any(v is not None for v in found):
                return found, f"file names ({candidate})"
        return [None] * len(files), None
    given = MaskMatcher(masks) if masks is not None else None
    beside: dict[Path, MaskMatcher] = {}
    found = []
    for f in files:
        matcher = given
        folder = drive_mask_dir(f) if given is None else None
        if folder is not None:
            matcher = beside.setdefault(folder, MaskMatcher(folder))
        found.append(matcher.get(f) if matcher is not None else None)
    source = (f"mask folder {masks}" if masks is not None else "DRIVE 1st_manual") if any(found) else None
    return found, source


def drive_mask_dir(image: Path) -> Path | None:
    """``../1st_manual`` beside an image in a DRIVE ``images/`` folder, if it exists."""
    if image.parent.name == DRIVE_IMAGES and (image.parent.parent / DRIVE_MASKS).is_dir():
        return image.parent.parent / DRIVE_MASKS
    return None


# -------------------------------------------------------------------------- training datasets


def _class_folders(root: Path) -> list[Path]:
    return sorted(
        d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and iter_image_files([d])
    )


def discover(
    data: str | Path,
    *,
    task: str | None = None,
    labels: str | Path | None = None,
    label_column: str | None = None,
    pattern: str | None = None,
    masks: str | Path | None = None,
) -> Dataset:
    """Find the labelled images of a training folder (see the module docstring for the layouts)."""
    root = Path(data)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder" if not root.exists() else f"{root}: not a folder")
    if task is None:
        if masks is not None or is_drive_root(root):
            task = "segmentation"
        elif labels is not None or pattern is not None:
            task = "regression"
        elif _class_folders(root):
            task = "classification"
        elif _all_match(iter_image_files([root]), UTKFACE_PATTERN):
            task = "regression"
            pattern = "utkface"
        else:
            raise InputError(
                f"{root}: cannot tell the task: no class sub-folders, no --labels/--pattern, no "
                "--masks or DRIVE layout (images/ + 1st_manual/)"
            )

    if task == "classification":
        folders = _class_folders(root)
        if len(folders) < 2:
            raise InputError(f"{root}: classification needs at least two class folders with images, found {len(folders)}")
        files, found = [], []
        for index, folder in enumerate(folders):
            for f in iter_image_files([folder]):
                files.append(f)
                found.append(index)
        return Dataset(task, files, found, [f.name for f in folders], {"kind": "folders"})

    if task == "regression":
        files = iter_image_files([root])
        if not files:
            raise InputError(f"{root}: no images found")
        if labels is not None:
            table = read_labels_csv(labels, label_column)
            found = [_label_for(f, table, root) for f in files]
            source = {"kind": "csv", "labels": str(labels)}
        else:
            pattern = pattern or "utkface"
            found = [value_from_name(f, pattern) for f in files]
            source = {"kind": "pattern", "pattern": pattern}
        keep = [(f, v) for f, v in zip(files, found, strict=True) if v is not None]
        if not keep:
            where = f"labels CSV {labels}" if labels is not None else f"pattern {pattern!r}"
            raise InputError(f"{root}: no image has a value from the {where}")
        return Dataset(task, [f for f, _ in keep], [v for _, v in keep], [], source)

    if task == "segmentation":
        image_dir = root / DRIVE_IMAGES if is_drive_root(root) else root
        mask_dir = Path(masks) if masks is not None else root / DRIVE_MASKS
        if not mask_dir.is_dir():
            raise InputError(f"{root}: segmentation needs --masks FOLDER or the DRIVE layout (images/ + 1st_manual/)")
        matcher = MaskMatcher(mask_dir)
        files = [f for f in iter_image_files([image_dir]) if mask_dir not in f.parents]
        pairs = [(f, matcher.get(f)) for f in files]
        matched = [(f, m) for f, m in pairs if m is not None]
        if not matched:
            raise InputError(f"{image_dir}: no image has a mask in {mask_dir}")
        return Dataset(task, [f for f, _ in matched], [m for _, m in matched], ["foreground"],
                       {"kind": "masks", "masks": str(mask_dir)})
    raise UsageError(f"unknown task {task!r}")


def stratified_split(labels: Sequence[Any], fraction: float, seed: int, *, stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices; with ``stratify`` each class keeps its share in both."""
    if not 0.0 <= fraction < 1.0:
        raise UsageError(f"validation split must lie in [0, 1), not {fraction}")
    rng = np.random.default_rng(seed)
    n = len(labels)
    if fraction == 0.0 or n < 2:
        return np.arange(n), np.arange(0)
    groups = {}
    if stratify:
        for i, label in enumerate(labels):
            groups.setdefault(label, []).append(i)
    else:
        groups[None] = list(range(n))
    val: list[int] = []
    for members in groups.values():
        members = np.array(members)
        rng.shuffle(members)
        take = int(round(len(members) * fraction))
        if take == 0 and len(members) >= 2:
            take = 1  # every class is seen in validation
        val.extend(members[:take].tolist())
    val_idx = np.array(sorted(val), dtype=int)
    train_idx = np.setdiff1d(np.arange(n), val_idx)
    return train_idx, val_idx


def looks_gray(image: np.ndarray) -> bool:
    return image.shape[2] == 1 or bool(np.allclose(image[..., 0], image[..., 1], atol=2 / 255) and np.allclose(image[..., 1], image[..., 2], atol=2 / 255))
