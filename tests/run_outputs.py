"""The runs the engine and resume tests make, and comparing their output folders: the same files,
the same rows."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from xaicli.pipeline.journal import JOURNAL, STATE

REPO = Path(__file__).resolve().parents[1]
CHEST = REPO / "sample_data" / "models" / "chest" / "model.keras"
LESIONS = REPO / "sample_data" / "chest" / "masks" / "lesion" / "test"

#: timings differ from run to run by nature; every other column must agree
TIMING = ("seconds", "SecondsPerImage")


def chest_images(per_class: int = 2) -> list[str]:
    """A slice of the shipped chest test set: the first images of each class."""
    root = REPO / "sample_data" / "chest" / "test"
    return [str(p) for folder in sorted(root.iterdir()) for p in sorted(folder.glob("*.png"))[:per_class]]


def compare_args(out: Path, methods: str = "gradcam,ig,rise") -> list[str]:
    """``compare`` on 8 shipped chest images, two batches, three grid pages."""
    steps = ["--steps", "8"] if "ig" in methods.split(",") else []
    return ["compare", *chest_images(), "--model", str(CHEST), "--methods", methods, "--roi", str(LESIONS), *steps,
            "--masks", "200", "--deletion-steps", "6", "--batch-size", "4", "--rows-per-page", "3", "--save-maps",
            "--output", str(out)]


def journaled(out: Path) -> list[dict]:
    """The image lines of a run's journal."""
    lines = (Path(out) / STATE / JOURNAL).read_text().splitlines()
    return [json.loads(line) for line in lines[1:]]


def files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in Path(folder).rglob("*") if p.is_file())


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _timing(column: str) -> bool:
    return any(column == t or column.startswith(f"{t}_") for t in TIMING)


def _close(a: str, b: str, rel: float) -> bool:
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    if math.isnan(x) and math.isnan(y):
        return True
    return math.isclose(x, y, rel_tol=rel, abs_tol=rel)


def assert_same_csv(a: Path, b: Path, rel: float = 0.0) -> None:
    """Same header, same rows in the same order; values equal (within ``rel`` for numbers) but timings."""
    left, right = rows(a), rows(b)
    with open(a) as ha, open(b) as hb:
        assert ha.readline() == hb.readline(), f"{a.name}: headers differ"
    assert len(left) == len(right), f"{a.name}: {len(left)} rows vs {len(right)}"
    for n, (x, y) in enumerate(zip(left, right, strict=True)):
        for column in x:
            if not _timing(column):
                assert _close(x[column], y[column], rel), f"{a.name} row {n} {column}: {x[column]} vs {y[column]}"


def assert_same_outputs(a: Path, b: Path, *, rel: float = 0.0, exact_files: bool = True) -> None:
    """Two run folders hold the same files; CSVs as :func:`assert_same_csv`; with ``exact_files``
    every other file (grid pages, map files, overlays) byte for byte."""
    names = files(a)
    assert names == files(b)
    for name in names:
        if name.endswith(".csv"):
            assert_same_csv(a / name, b / name, rel)
        elif name.startswith("run-") and name.endswith(".json"):
            assert _run_record(a / name) == _run_record(b / name), f"{name} differs"
        elif exact_files:
            assert (a / name).read_bytes() == (b / name).read_bytes(), f"{name} differs"


#: what a run record (run-<command>.json) says about how and where a run went, not what it found
HOW_AND_WHERE = ("output", "engine", "address", "batch_size")


def _run_record(path: Path) -> dict:
    """A run record without its time of writing, its timings and the settings of how and where it ran."""
    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items() if k not in TIMING}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    record = json.loads(path.read_text())
    record.pop("written")
    record["settings"] = {k: v for k, v in record["settings"].items() if k not in HOW_AND_WHERE}
    return plain(record)

