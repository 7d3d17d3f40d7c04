"""Finding the inputs of a run, naming their outputs, and matching masks to images: one place.

Every command that takes images (``predict``, ``explain``, ``compare``, ``serve``, the Python API)
finds them with :func:`discover`, so two commands never see different files in the same folder:

* a file named on the command line is taken whatever its suffix (the reader then says what is
  wrong with it); inside folders, image files are taken recursively in a stable sorted order
  (suffix-less files when they are DICOM), hidden files and folders skipped;
* the DRIVE layout is recognised at any depth: the expert masks and field-of-view masks beside an
  ``images/`` folder (``1st_manual/``, ``2nd_manual/``, ``mask/``) are ground truth, not inputs; a
  folder that *is* a DRIVE root contributes its ``images/``, named relative to it.

Each input gets a unique output name (:func:`output_names`): its path below the input folder,
without suffix. Masks are matched to images by :class:`MaskMatcher` (regions of interest,
segmentation targets and truth alike).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xaicli.errors import InputError
from xaicli.io.read import IMAGE_SUFFIXES

DRIVE_IMAGES = "images"
DRIVE_TRUTH = ("1st_manual", "2nd_manual", "mask")


@dataclass
class Source:
    """One input of a run: a file (``path``, found under ``root``) or an in-memory image (``array``,
    float (H, W, C) in [0, 1]); ``name`` is its unique output name."""

    path: Path | None
    root: Path | None
    name: str
    array: Any = None
    frame: int | None = None  # one frame of a multi-frame file (--frame all)

    @property
    def label(self) -> str:
        """What messages and CSVs call it: the file (with its frame), or the array's name."""
        if self.path is None:
            return self.name
        return str(self.path) if self.frame is None else f"{self.path}[{self.frame}]"


def _is_dicom_without_suffix(path: Path) -> bool:
    from xaicli.dicom import bare_dataset_offset

    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
            if len(head) >= 132 and head[128:132] == b"DICM":
                return True
            return bare_dataset_offset(head + handle.read()) is not None
    except OSError:
        return False


def is_image_file(path: Path) -> bool:
    """True for files whose suffix names a readable image, and for suffix-less DICOM files."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return True
    return suffix == "" and path.is_file() and _is_dicom_without_suffix(path)


def _drive_truth(folder: Path) -> bool:
    """A DRIVE ground-truth folder: ``1st_manual``/``mask``/... beside an ``images`` folder."""
    return folder.name in DRIVE_TRUTH and (folder.parent / DRIVE_IMAGES).is_dir()


def is_drive_root(folder: Path) -> bool:
    return (folder / DRIVE_IMAGES).is_dir() and (folder / DRIVE_TRUTH[0]).is_dir()


def _folder_files(folder: Path) -> list[Path]:
    found = []
    for p in folder.rglob("*"):
        parts = p.relative_to(folder).parts
        if any(part.startswith(".") for part in parts) or not p.is_file():
            continue
        if any(_drive_truth(folder.joinpath(*parts[: i + 1])) for i in range(len(parts) - 1)):
            continue
        if is_image_file(p):
            found.append(p)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def iter_image_files(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Image files under ``inputs`` (files as given, folders recursively; see the module docstring)."""
    return [s.path for s in discover(inputs) if s.path is not None]


def discover(inputs: Iterable[str | os.PathLike[str]], *, frames: str | None = None) -> list[Source]:
    """Every input image as a :class:`Source`, in a stable order, with unique output names;
    ``frames="all"``: one source per frame of each multi-frame file (``NAME-frame003``)."""
    pairs: list[tuple[Path, Path]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            root = path / DRIVE_IMAGES if is_drive_root(path) else path
            pairs.extend((f, root) for f in _folder_files(root))
        elif path.is_file():
            pairs.append((path, path.parent))
        else:
            raise InputError(f"{path}: no such file or folder")
    names = output_names([f for f, _ in pairs], [r for _, r in pairs])
    sources = [Source(f, r, n) for (f, r), n in zip(pairs, names, strict=True)]
    if frames is not None and str(frames).strip().lower() == "all":
        from xaicli.io.read import frame_count

        sources = [Source(s.path, s.root, f"{s.name}-frame{k:03d}" if count > 1 else s.name, frame=k if count > 1 else None)
                   for s in sources for count in [frame_count(s.path)] for k in range(count)]
    return sources


def output_names(files: Sequence[Path], roots: Sequence[Path | None]) -> list[str]:
    """A unique name per file for output paths: its path below its input folder, without suffix;
    a second file of the same name gets ``-2``, and so on."""
    names = []
    for f, root in zip(files, roots, strict=True):
        name = f.stem
        if root is not None:
            try:
                name = f.relative_to(root).with_suffix("").as_posix()
            except ValueError:
                pass
        names.append(name)
    return unique(names)


def unique(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        out.append(name if count == 0 else f"{name}-{count + 1}")
    return out


# ------------------------------------------------------------------------------------ masks

#: name endings that mark a file as a mask of the image with the same name without them
MASK_ENDINGS = ("_mask", "-mask", "_masks", "_manual1", "_seg", "_segmentation", "_label", "_gt",
                "_lesion", "_lung", "_lungs", "_face", "_roi")
#: name endings of images whose masks drop them (DRIVE: 21_training.tif -> 21_manual1.gif)
IMAGE_ENDINGS = ("_training", "_test", "_image", "_img")


def _strip(stem: str, endings: tuple[str, ...]) -> str:
    stem = stem.lower()
    for ending in endings:
        if stem.endswith(ending) and len(stem) > len(ending):
            return stem[: -len(ending)]
    return stem


class MaskMatcher:
    """The mask file of each image in a mask folder (or one mask file for every image).

    Matching, first that succeeds: the same file name stem anywhere in the folder; then the stems
    with a mask ending (``_mask``, ``_manual1``, ``_lesion``, ...) and an image ending
    (``_training``, ``_test``, ...) removed. Among several candidates, the one whose folders agree
    longest with the image's (``test/nodule``); a tie names both. No candidate: :meth:`get` gives
    None and :meth:`find` raises ``NoRegion``.
    """

    def __init__(self, location: str | os.PathLike[str]) -> None:
        self.location = Path(location)
        if not self.location.exists():
            raise InputError(f"{self.location}: no such mask file or folder")
        self._index: dict[str, dict[str, list[Path]]] | None = None

    def _build(self) -> dict[str, dict[str, list[Path]]]:
        index: dict[str, dict[str, list[Path]]] = {"stem": {}, "key": {}}
        for source in discover([self.location]):
            path = source.path
            index["stem"].setdefault(path.stem.lower(), []).append(path)
            index["key"].setdefault(_strip(path.stem, MASK_ENDINGS), []).append(path)
        if not index["stem"]:
            raise InputError(f"{self.location}: mask folder holds no image files")
        return index

    def find(self, image: Path) -> Path:
        from xaicli.api import NoRegion

        if self.location.is_file():
            return self.location
        if self._index is None:
            self._index = self._build()
        image = Path(image)
        stem = image.stem.lower()
        for table, key in (("stem", stem), ("key", stem), ("key", _strip(stem, IMAGE_ENDINGS))):
            found = self._index[table].get(key, [])
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                return self._closest(image, found)
        raise NoRegion(f"{image}: no mask for it in {self.location}")

    def get(self, image: Path) -> Path | None:
        from xaicli.api import NoRegion

        try:
            return self.find(image)
        except NoRegion:
            return None

    def _closest(self, image: Path, found: list[Path]) -> Path:
        from xaicli.api import NoRegion

        image_dirs = [part.lower() for part in reversed(image.resolve().parent.parts)]

        def shared_tail(mask: Path) -> int:
            count = 0
            for a, b in zip(image_dirs, reversed(mask.resolve().parent.parts), strict=False):
                if a != b.lower():
                    break
                count += 1
            return count

        scores = [shared_tail(mask) for mask in found]
        best = max(scores)
        winners = [mask for mask, score in zip(found, scores, strict=True) if score == best]
        if len(winners) > 1:
            names = ", ".join(str(p) for p in winners[:3])
            raise NoRegion(f"{image}: several masks match it in {self.location} ({names})")
        return winners[0]
