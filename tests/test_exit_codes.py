"""Exit codes 1 (a bug: traceback), 130 (Ctrl-C: "interrupted", nothing half written) and 6 (an
output that cannot be written), through the real command line (docs/exit-codes.md)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xaicli.cli import app

ROOT = Path(__file__).resolve().parents[1]
CHEST = ROOT / "sample_data" / "models" / "chest" / "model.keras"
IMAGES = sorted((ROOT / "sample_data" / "chest" / "test" / "nodule").glob("*.png"))[:3]

# The real entry point (xaicli.cli.app.main) in a fresh interpreter, with two explainers registered
# in-process: one with a bug, one that explains the first batch and then waits to be interrupted.
LAUNCHER = '''
import signal, sys, time

from xaicli import plugins
from xaicli.api import Explainer, Explanation


class Failing(Explainer):
    name = "failing"
    needs_scores = False

    def explain(self, runner, images, target):
        raise RuntimeError("a bug in a plugin")


class Blocking(Explainer):
    name = "blocking"
    needs_scores = False
    calls = 0

    def explain(self, runner, images, target):
        Blocking.calls += 1
        if Blocking.calls > 1:  # the first batch's maps are written by now
            print("explaining the second batch", flush=True)
            deadline = time.monotonic() + 120  # bounded: the test interrupts long before
            while time.monotonic() < deadline:
                time.sleep(0.05)
        return Explanation(images.mean(axis=-1))


# as in a terminal, Ctrl-C raises KeyboardInterrupt (a CI job may start with SIGINT ignored)
signal.signal(signal.SIGINT, signal.default_int_handler)
plugins.register("explainers", "failing", Failing)
plugins.register("explainers", "blocking", Blocking)
from xaicli.cli.app import main

sys.argv = ["xaicli", *sys.argv[1:]]
main()
'''


def _launcher(tmp_path: Path) -> list[str]:
    path = tmp_path / "launch_xaicli.py"
    path.write_text(LAUNCHER)
    return [sys.executable, str(path)]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_an_internal_error_exits_1_with_its_traceback(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([*_launcher(tmp_path), "explain", "--model", str(CHEST), str(IMAGES[0]), "-m", "failing",
                             "-o", str(out)], capture_output=True, text=True, env=_env(), timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" in result.stderr and "RuntimeError" in result.stderr
    assert "a bug in a plugin" in result.stderr
    assert _files(out) == []  # nothing written for a run that failed


def test_ctrl_c_exits_130_says_interrupted_and_leaves_no_partial_outputs(tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen([*_launcher(tmp_path), "explain", "--model", str(CHEST), *map(str, IMAGES), "-m", "blocking",
                                "-o", str(out), "--batch-size", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        line = process.stdout.readline()  # the run is under way: one batch explained, the next waiting
        assert line.startswith("explaining the second batch"), process.stderr.read()[-3000:]
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr[-3000:]
    assert "interrupted" in stderr and "Traceback" not in stderr
    # neither the first image's maps and overlays nor a temporary file: only the resume journal, which
    # holds the finished first image so that `--resume` does not explain it again
    journal = [f for f in _files(out) if f.startswith(".xaicli-run")]
    assert [f for f in _files(out) if f not in journal] == []
    assert any(f.endswith(".npz") for f in journal) and not any(f.endswith((".tmp", ".part")) for f in journal)


def test_an_interrupted_segmentation_predict_leaves_no_masks_to_block_its_rerun(tmp_path, monkeypatch):
    from xaicli.pipeline import engines

    records = engines.records

    def interrupted_after_two(*args, **kwargs):
        for k, record in enumerate(records(*args, **kwargs)):
            if k == 2:  # two masks written
                raise KeyboardInterrupt
            yield record

    out = tmp_path / "out"
    args = ["predict", "--model", str(ROOT / "sample_data/models/retina/model.keras"),
            str(ROOT / "sample_data/retina/test"), "-o", str(out), "--batch-size", "1"]
    monkeypatch.setattr(engines, "records", interrupted_after_two)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 130 and "interrupted" in result.output
    assert [f for f in _files(out) if not f.startswith(".xaicli-run")] == []
    monkeypatch.setattr(engines, "records", records)
    blocked = CliRunner().invoke(app, args)  # the unfinished run is neither overwritten nor mixed in
    assert blocked.exit_code == 6 and "--resume continues it" in blocked.output
    rerun = CliRunner().invoke(app, [*args, "--resume"])
    assert rerun.exit_code == 0, rerun.output
    assert len(_files(out / "masks")) == 6


@pytest.mark.parametrize("command", ["explain", "predict", "compare"])
def test_an_output_that_cannot_be_written_exits_6(tmp_path, command):
    """The output folder lies under a regular file (root may write anywhere else)."""
    blocker = tmp_path / "somefile"
    blocker.write_text("not a folder")
    out = blocker / "out"
    args = {"explain": ["explain", "--model", str(CHEST), str(IMAGES[0]), "-m", "saliency", "-o", str(out)],
            "predict": ["predict", "--model", str(CHEST), str(IMAGES[0]), "-o", str(out)],
            "compare": ["compare", str(IMAGES[0]), "--model", str(CHEST), "--methods", "saliency",
                        "--metrics", "entropy", "--output", str(out)]}[command]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 6, result.output
    assert ("cannot be written" in result.output or "cannot be created" in result.output)
    assert str(blocker) in result.output
    assert "Traceback" not in result.output
    assert blocker.read_text() == "not a folder"
