"""Issue 14, point 7: a run killed midway leaves no worker behind, refuses a plain rerun with a
message naming --resume, and resumed gives the very tree and audit of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from anonymize_fixtures import digest_tree, patient_file, runner

from xaicli.cli import app

FILES = 300
SRC = Path(__file__).parents[1] / "src"


def _inputs(root: Path) -> Path:
    for i in range(FILES):
        patient = i % 12
        patient_file(root / f"Patient{patient:02d}^Given" / f"file{i:04d}.dcm", name=f"Patient{patient:02d}^Given",
                     PatientID=f"MRN{patient:06d}", StudyDescription=f"study {i % 3}")
    return root


def _command(src: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "xaicli", "dicom-anonymize", str(src), "-o", str(out), "--key", "k",
            "--jobs", "2", *extra]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pids: set[int], marker: str) -> set[int]:
    """The processes among ``pids``, or whose command line holds ``marker``, still running."""
    alive = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().decode("utf-8", "replace")
        except OSError:
            continue
        if state not in ("Z", "X") and (int(entry.name) in pids or marker in command):
            alive.add(int(entry.name))
    return alive


def _outputs(out: Path) -> int:
    return sum(1 for _ in out.rglob("*.dcm")) if out.exists() else 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Inputs, and the output of an uninterrupted run over them."""
    root = tmp_path_factory.mktemp("resume")
    src = _inputs(root / "in")
    out = root / "ref" / "out"
    done = subprocess.run(_command(src, out), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _outputs(out) == FILES
    return src, out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux) to see the workers")
@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, reference, stop):
    src, expected = reference
    out = tmp_path / "out"
    run = subprocess.Popen(_command(src, out), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _outputs(out) < 20 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    workers = _children(run.pid)
    os.kill(run.pid, stop)
    code = run.wait(30)
    run.stderr.close()
    written = _outputs(out)
    assert workers and 20 <= written < FILES, (workers, written)  # killed midway, with workers at work
    assert code == (-signal.SIGKILL if stop == signal.SIGKILL else 130)
    deadline = time.monotonic() + 10
    while _alive(workers, str(out)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _alive(workers, str(out)) == set()  # no worker outlived its parent
    # ... nor went on working once it was gone: at most the file each had under way got written.
    assert _outputs(out) <= written + len(workers)
    # A plain rerun says what to do instead of listing the files already written as failed.
    again = subprocess.run(_command(src, out), env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 6 and "--resume" in again.stderr and "failed" not in again.stderr
    resumed = subprocess.run(_command(src, out, "--resume", "--json"), env=_env(), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert '"kept": ' in resumed.stdout and '"kept": 0' not in resumed.stdout
    # The same files with the same bytes, the audit and report included, row for row.
    assert digest_tree(out) == digest_tree(expected)
    assert (tmp_path / "out.paths.csv").read_bytes() == (expected.parent / "out.paths.csv").read_bytes()
    assert not [p for p in out.rglob(".*.tmp")]  # no temporary file of a killed write is left


def test_resume_refuses_another_run_and_a_missing_one(tmp_path):
    src = tmp_path / "in"
    patient_file(src / "a.dcm")
    out = tmp_path / "out"
    nothing = runner.invoke(app, ["dicom-anonymize", str(src), "-o", str(out), "--key", "k", "--resume"])
    assert nothing.exit_code == 2 and "no run to resume" in nothing.output
    assert runner.invoke(app, ["dicom-anonymize", str(src), "-o", str(out), "--key", "k"]).exit_code == 0
    again = runner.invoke(app, ["dicom-anonymize", str(src), "-o", str(out), "--key", "k"])
    assert again.exit_code == 6 and "exists already" in again.output and "--resume" in again.output
    # A run that completed leaves no journal: there is nothing to resume.
    journal = tmp_path / "out.journal"
    assert not journal.exists()
    done = runner.invoke(app, ["dicom-anonymize", str(src), "-o", str(out), "--key", "k", "--resume"])
    assert done.exit_code == 2 and "the run into it finished" in done.output.replace("\n", " ")
    # An interrupted run (its journal there, no audit yet) resumes only with the same settings.
    journal.write_text('{"journal": 1, "run": "another run"}\n')
    (out / "anonymize-audit.csv").unlink()
    (out / "anonymize-report.json").unlink()
    interrupted = runner.invoke(app, ["dicom-anonymize", str(src), "-o", str(out), "--key", "k"])
    assert interrupted.exit_code == 6 and "holds an interrupted run" in interrupted.output.replace("\n", " ")
    other = runner.invoke(app, ["dicom-anonymize", str(src), "-o", str(out), "--key", "k", "--resume"])
    assert other.exit_code == 2 and "other options, key, layout or inputs" in other.output.replace("\n", " ")


def test_a_dying_worker_fails_only_its_own_files(tmp_path, monkeypatch):
    from xaicli.anonymize.fileproc import Worker

    src = tmp_path / "in"
    for i in range(40):
        patient_file(src / (f"f{i:03d}_boom.dcm" if i == 20 else f"f{i:03d}.dcm"), PatientID=f"MRN{i:06d}")
    process = Worker.process

    def dies_on_boom(self, item):
        if item[0].endswith("_boom.dcm"):
            os._exit(3)  # in the forked worker: it dies as a crash would kill it
        return process(self, item)

    monkeypatch.setattr(Worker, "process", dies_on_boom)
    out = tmp_path / "out"
    result = runner.invoke(app, ["dicom-anonymize", str(src), "-o", str(out), "--key", "k", "--jobs", "2"])
    assert result.exit_code == 4
    report = json.loads((out / "anonymize-report.json").read_text())
    # 40 files in chunks of 5: the chunk of file 20 (files 20 to 24) failed, every other file is out.
    assert [f["input"] for f in report["failed"]] == [f"input-{n:06d}" for n in range(21, 26)]
    assert {f["reason"] for f in report["failed"]} == {"worker process died"}
    assert report["deidentified"] == 35 and _outputs(out) == 35
