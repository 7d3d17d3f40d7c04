"""The README cannot rot: CI runs its test command verbatim, and every other command in it (the quick
start's main job and the tour) runs here through the real CLI, in order, from a scratch folder,
with its settings made small only through documented options, checking its exit code and files."""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _blocks(section: str | None = None) -> list[str]:
    text = (ROOT / "README.md").read_text()
    if section is not None:
        text = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0] for block in text.split("```bash\n")[1:]]


def _quick_start_commands() -> list[str]:
    return [block.strip() for block in _blocks("Quick start")]


def readme_commands() -> list[list[str]]:
    """Every xaicli command of the README, as argument lists (continued lines joined, comments and
    the pip/pytest parts of the quick start left out)."""
    commands = []
    for block in _blocks():
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words and words[0] == "xaicli":
                    commands.append(words)
    return commands


def test_quick_start_is_exactly_two_commands_and_ci_runs_the_test_one():
    commands = _quick_start_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    install_and_run, install_and_test = commands
    assert install_and_run.startswith("python -m pip install") and "xaicli " in install_and_run
    assert "pytest" in install_and_test
    assert install_and_test in (ROOT / ".ci" / "run").read_text().splitlines()


#: what makes a command quick, through its documented options only
SMALL = {"rise": ["-p", "rise.n_masks=64"], "lime": ["-p", "lime.num_samples=64"], "ig": ["-p", "ig.steps=8"]}


def small(words: list[str]) -> list[str]:
    command = words[1]
    if command == "compare":
        methods = []
        for flag, value in zip(words, words[1:], strict=False):
            if flag in ("-m", "--method", "--methods"):
                methods += value.split(",")
        extra = [w for m in methods for w in SMALL.get(m, [])]
        return words + extra + ["--deletion-steps", "8"]
    if command == "consistency-study":
        return words + ["--depths", "2", "--lambdas", "0,1", "--epochs", "3"]
    return words


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def check(words: list[str], done: subprocess.CompletedProcess, cwd: Path) -> None:
    """The files each README command promises, by content."""
    output = done.stdout + done.stderr
    assert done.returncode == 0, (words, output[-3000:])
    assert "Traceback" not in output
    command = words[1]
    out = next((cwd / words[i + 1] for i, w in enumerate(words) if w in ("-o", "--out", "--output")), None)
    if command == "plugins":
        assert "gradcam" in output and "broken" not in output
    elif command == "train":
        report = json.loads((out / "validation.json").read_text())
        assert report["accuracy"] > 0.5, report["accuracy"]  # the tour's settings train a working model
        assert "not usable" not in output
    elif command == "predict":
        assert len(_rows(out / "predictions.csv")) == 60
        assert json.loads((out / "evaluation.json").read_text())["accuracy"] > 0.5
    elif command == "explain":
        assert {r["method"] for r in _rows(out / "maps.csv")} == {"gradcam", "ig"}
    elif command == "compare":
        summary = [r for r in _rows(out / "summary.csv") if r["Group"] == "all"]
        assert [r["Method"] for r in summary] == ["gradcam", "ig", "lime", "rise", "random"]
        assert (out / "grid-001.png").is_file() and (out / "predictions.csv").is_file()
    elif command == "consistency-study":
        assert len(_rows(out / "study.csv")) == 2
    elif command == "dicom-anonymize" and out is not None:
        assert list(out.rglob("*.dcm"))


@pytest.mark.parametrize("index", range(len(readme_commands())))
def test_every_readme_command_runs(readme_run, index):
    words = small(readme_commands()[index])
    cwd, results = readme_run
    check(words, results(index, words), cwd)


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    """One scratch folder for the whole README, commands run in order (predict uses train's model)."""
    cwd = tmp_path_factory.mktemp("readme")
    (cwd / "sample_data").symlink_to(ROOT / "sample_data")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["COLUMNS"] = "200"
    done: dict[int, subprocess.CompletedProcess] = {}

    def results(index: int, words: list[str]) -> subprocess.CompletedProcess:
        if index not in done:
            for earlier in range(index):  # the README's order: a command may need an earlier one's files
                if earlier not in done:
                    results(earlier, small(readme_commands()[earlier]))
            executable = [sys.executable, "-m", "xaicli", *words[1:]]
            done[index] = subprocess.run(executable, cwd=cwd, capture_output=True, text=True, env=env, timeout=900)
        return done[index]

    return cwd, results


def test_quick_start_paths_exist():
    install_and_run = _quick_start_commands()[0]
    for token in install_and_run.split():
        token = token.split(":", 1)[-1]
        if token.startswith("sample_data/"):
            assert (ROOT / token).exists(), token
