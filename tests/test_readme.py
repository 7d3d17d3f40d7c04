"""The README's quick start stays true: CI runs its test command verbatim."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = section.split("```bash\n")[1:]
    return [block.split("```", 1)[0].strip() for block in blocks]


def test_quick_start_is_exactly_two_commands_and_ci_runs_the_test_one():
    commands = _quick_start_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    install_and_run, install_and_test = commands
    assert install_and_run.startswith("python -m pip install") and "xaicli " in install_and_run
    assert "pytest" in install_and_test
    assert install_and_test in (ROOT / ".ci" / "run").read_text().splitlines()


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
