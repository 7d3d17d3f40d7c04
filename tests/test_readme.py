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
    return _blocks_of(text)


def _quick_start_commands() -> list[str]:
    return [block.strip() for block in _blocks("Quick start")]


def _blocks_but_serve() -> list[str]:
    text = (ROOT / "README.md").read_text()
    head, rest = text.split("## Serve", 1)
    return _blocks_of(head + rest.split("\n## ", 1)[-1])


def _blocks_of(text: str) -> list[str]:
    return [block.split("```", 1)[0] for block in text.split("```bash\n")[1:]]


def readme_commands() -> list[list[str]]:
    """Every xaicli command of the README, as argument lists (continued lines joined, comments and
    the pip/pytest parts of the quick start left out). The Serve section's server runs until it is
    stopped: its own test below starts it, asks it and stops it."""
    commands = []
    for block in _blocks_but_serve():
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
    elif command == "report":
        page = (cwd / words[2] / "report.html").read_text()
        assert "<html" in page and "Traceback" not in page
    if "--report" in words:  # the page the README tells the reader to open
        assert "<html" in (out / "report.html").read_text()


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


def _section_commands(title: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0].strip() for block in section.split("```bash\n")[1:]]


def test_the_serve_section_runs_as_written(tmp_path):
    """The README's serve commands, verbatim but for the port (a free one): the real ``xaicli
    serve`` in a subprocess and curl against it; then a DICOM with patient data under a file name
    made of patient data, and the service's own log (its stderr) holds none of it."""
    import json
    import os
    import shlex
    import shutil
    import signal
    import subprocess
    import sys

    import httpx
    from serve_helpers import PHI, free_port, wait_for

    serve, request = _section_commands("Serve")
    port = str(free_port())
    args = [port if a == "8000" else a for a in shlex.split(serve)]
    assert args[:2] == ["xaicli", "serve"] and port in args
    xaicli = shutil.which("xaicli")
    command = [xaicli, *args[1:]] if xaicli else [sys.executable, "-m", "xaicli", *args[1:]]
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # the service's private folder is made here
    log = tmp_path / "serve.log"
    with open(log, "wb") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        base = f"http://127.0.0.1:{port}"
        try:
            def ready() -> bool:
                assert process.poll() is None, log.read_text()
                try:
                    return httpx.get(base + "/ready", timeout=5).status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(ready, "xaicli serve to be ready")
            out = subprocess.run(request.replace("8000", port), shell=True, cwd=ROOT, capture_output=True,
                                 text=True, check=True).stdout
            doc = json.loads(out)
            assert doc["prediction"]["predicted"] == "nodule" and doc["explanations"][0]["method"] == "gradcam"
            dicom = (ROOT / "sample_data" / "dicom" / "IM0002.dcm").read_bytes()
            name = "Kowalczyk^Annabel_PID-448812-X.dcm"
            answers = [httpx.post(base + route, files={"image": (name, data)}, timeout=60).text
                       for route in ("/predict", "/explain") for data in (dicom, dicom[:-3000])]
            assert '"predicted":"nodule"' in answers[0] and "corrupt or truncated" in answers[1]
        finally:
            process.send_signal(signal.SIGINT)  # Ctrl-C: a clean shutdown, then exit code 130
            assert process.wait(60) == 130
    text = log.read_text()
    assert "POST /explain 200" in text and "POST /predict 422" in text
    for value in (*PHI, "Kowalczyk^Annabel", "test_0015"):
        assert value not in text, value
        assert all(value not in answer for answer in answers), value
    assert not list(tmp_path.glob("xaicli-serve-*"))  # shutdown removed the service's folder
