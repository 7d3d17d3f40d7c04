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
