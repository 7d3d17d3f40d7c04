"""scripts/check_skips.py on the JUnit report of a real pytest run: an unlisted skip fails the run,
a listed one (with its reason) passes, and the allow list shipped with the suite is well formed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check_skips.py"

SUITE = {
    "pytest.ini": "[pytest]\n",
    "tests/test_a.py": '''import pytest

def test_ok():
    pass

def test_skip():
    pytest.skip("no decoder here")

@pytest.mark.parametrize("x", ["a b", "c::d"])
def test_param(x):
    pytest.skip("param " + x)

class TestGroup:
    def test_method(self):
        pytest.skip("in a class")
''',
    "tests/sub/test_mod.py": '''import pytest

pytest.importorskip("xaicli_no_such_module")

def test_never():
    pass
''',
}
SKIPPED = ["tests/test_a.py::test_skip", "tests/test_a.py::test_param[a b]", "tests/test_a.py::test_param[c::d]",
           "tests/test_a.py::TestGroup::test_method", "tests/sub/test_mod.py"]


def _report(tmp_path: Path) -> Path:
    for name, text in SUITE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    report = tmp_path / "junit.xml"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0 and "1 passed, 5 skipped" in run.stdout, run.stdout
    return report


def _check(report: Path, allowed: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(report), "--allowed", str(allowed)],
                          capture_output=True, text=True)


def test_an_unlisted_skip_fails_and_is_named_with_its_reason(tmp_path):
    report = _report(tmp_path)
    allowed = tmp_path / "allowed.txt"
    allowed.write_text("# every skip but one is expected\n" + "".join(f"{n}\tbecause\n" for n in SKIPPED[1:]))
    result = _check(report, allowed)
    assert result.returncode == 1
    assert "tests.test_a::test_skip: no decoder here" in result.stderr
    assert "1 skipped test(s) not listed" in result.stderr
    allowed.write_text("")
    result = _check(report, allowed)
    assert result.returncode == 1 and "5 skipped test(s) not listed" in result.stderr
    assert "could not import 'xaicli_no_such_module'" in result.stderr  # a module skipped whole


def test_listed_skips_pass(tmp_path):
    report = _report(tmp_path)
    allowed = tmp_path / "allowed.txt"
    allowed.write_text("".join(f"{n}\tthe reason\n" for n in SKIPPED) + "tests/test_a.py::test_gone\tlisted, not run\n")
    result = _check(report, allowed)
    assert result.returncode == 0, result.stderr
    assert "5 skipped test(s), all listed" in result.stdout


def test_an_entry_without_a_reason_or_an_unreadable_report_is_an_error(tmp_path):
    allowed = tmp_path / "allowed.txt"
    allowed.write_text("tests/test_a.py::test_skip\n")
    report = tmp_path / "junit.xml"
    report.write_text("<testsuites/>")
    result = _check(report, allowed)
    assert result.returncode == 2 and "line 1: expected 'nodeid<TAB>reason'" in result.stderr
    allowed.write_text("")
    report.write_text("not xml")
    assert _check(report, allowed).returncode == 2


def test_the_suites_allow_list_gives_a_reason_for_every_entry():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import check_skips
    finally:
        sys.path.remove(str(SCRIPT.parent))
    allowed = check_skips.read_allowed(ROOT / "tests" / "allowed_skips.txt")
    for key in allowed:  # every entry names a test file that exists
        module = key.partition("::")[0].split(".")
        assert any((ROOT / Path(*module[:n])).with_suffix(".py").is_file() for n in range(1, len(module) + 1)), key
