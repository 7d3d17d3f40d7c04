"""Fail a test run that skipped a test it was not allowed to skip.

A skip hides a test: a broken install of a hard dependency, or shipped data gone missing, would
otherwise turn failures into a quiet "skipped". CI runs pytest with ``--junitxml=REPORT`` and then

    python scripts/check_skips.py REPORT

which exits 1, naming each skipped test and its reason, unless the test is listed in
``tests/allowed_skips.txt`` (one ``nodeid<TAB>reason`` a line; ``#`` comments and blank lines
ignored; the reason says why the skip is expected). A node id is pytest's own
(``tests/test_io.py::test_x[param]``, ``tests/test_mod.py::TestClass::test_y``); a whole module
skipped at collection is listed by its path (``tests/test_mod.py``). Exit 2: the report or the list
cannot be read.
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ALLOWED = Path(__file__).resolve().parents[1] / "tests" / "allowed_skips.txt"


def junit_key(nodeid: str) -> str:
    """A pytest node id in the form pytest's JUnit report names a test: ``dotted.module[.Class]::name``
    (a module skipped at collection: ``dotted.module``)."""
    path, _, rest = nodeid.strip().partition("::")
    module = path[:-3] if path.endswith(".py") else path
    module = module.replace("\\", "/").strip("/").replace("/", ".")
    if not rest:
        return module
    head, bracket, params = rest.partition("[")  # parameter ids may contain "::"
    parts = head.split("::")
    return ".".join([module, *parts[:-1]]) + "::" + parts[-1] + bracket + params


def read_allowed(path: Path) -> dict[str, str]:
    """``junit key -> reason`` from the allow list; every entry needs a reason."""
    allowed: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        nodeid, tab, reason = line.partition("\t")
        if not tab or not reason.strip() or not nodeid.strip():
            raise ValueError(f"{path}: line {number}: expected 'nodeid<TAB>reason', got {line!r}")
        allowed[junit_key(nodeid)] = reason.strip()
    return allowed


def skipped_tests(report: Path) -> list[tuple[str, str]]:
    """``(junit key, reason)`` of every skipped test case in a pytest JUnit XML report."""
    skips = []
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        element = case.find("skipped")
        if element is None:
            continue
        classname, name = case.get("classname", ""), case.get("name", "")
        key = f"{classname}::{name}" if classname else name  # no class name: a module skipped whole
        reason = element.get("message", "")
        if reason == "collection skipped" and element.text:
            reason = element.text.strip()
        skips.append((key, reason))
    return skips


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="pytest's --junitxml report")
    parser.add_argument("--allowed", type=Path, default=ALLOWED, help="the allow list (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        allowed = read_allowed(args.allowed)
        skips = skipped_tests(args.report)
    except (OSError, ValueError, ElementTree.ParseError) as exc:
        print(f"check_skips: {exc}", file=sys.stderr)
        return 2
    unlisted = [(key, reason) for key, reason in skips if key not in allowed]
    for key, reason in unlisted:
        print(f"skipped without being allowed: {key}: {reason}", file=sys.stderr)
    if unlisted:
        print(f"check_skips: {len(unlisted)} skipped test(s) not listed in {args.allowed} "
              "(a skip there needs its reason)", file=sys.stderr)
        return 1
    print(f"check_skips: {len(skips)} skipped test(s), all listed in {args.allowed.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
