"""The registry through the real CLI: built-ins, an installed fake plugin, a broken one, autoload off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xaicli import __version__, plugins
from xaicli.cli import app
from xaicli.errors import PluginError

runner = CliRunner()


def _install_fake_distribution(site: Path, dist: str, module: str, source: str, entry_points: str) -> None:
    """A minimal installed distribution (dist-info + module) that importlib.metadata finds."""
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    (site / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def fake_site(tmp_path):
    site = tmp_path / "site"
    _install_fake_distribution(
        site, "xaicli-fake", "xaicli_fake",
        """
        from xaicli.api import Explainer

        class Constant(Explainer):
            name = "constant"
            def explain(self, runner, images, target):
                import numpy as np
                return np.ones(images.shape[:3], np.float32)
        """,
        """
        [xaicli.explainers]
        constant = xaicli_fake:Constant
        """,
    )
    _install_fake_distribution(
        site, "xaicli-broken", "xaicli_broken",
        "import a_module_that_does_not_exist\n",
        """
        [xaicli.explainers]
        broken = xaicli_broken:Nothing
        [xaicli.metrics]
        also-broken = xaicli_broken:Nothing
        """,
    )
    return site


def _xaicli(*args: str, site: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, **(env or {})}
    if site is not None:
        environment["PYTHONPATH"] = os.pathsep.join([str(site), environment.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "xaicli", *args], capture_output=True, text=True, env=environment, timeout=120
    )


def test_plugins_lists_builtins_the_installed_plugin_and_shows_the_broken_one(fake_site):
    result = _xaicli("plugins", "--json", site=fake_site)
    assert result.returncode == 0, result.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(result.stdout)}
    assert rows[("explainers", "constant")]["package"] == "xaicli-fake"
    assert rows[("explainers", "constant")]["version"] == "1.2.3"
    assert rows[("explainers", "constant")]["status"] == "ok"
    assert rows[("explainers", "broken")]["status"].startswith("broken: ModuleNotFoundError")
    assert rows[("metrics", "also-broken")]["status"].startswith("broken")
    builtin = [r for r in rows.values() if r["package"] == "xaicli"]
    assert {"models", "explainers", "metrics"} <= {r["kind"] for r in builtin}
    assert all(r["version"] == __version__ for r in builtin)
    # the table view shows the same
    table = _xaicli("plugins", "explainers", site=fake_site)
    assert table.returncode == 0 and "broken" in table.stdout and "xaicli-fake" in table.stdout


def test_autoload_can_be_disabled(fake_site):
    result = _xaicli("plugins", "--json", "--no-check", site=fake_site, env={plugins.AUTOLOAD_ENV: "1"})
    assert result.returncode == 0
    assert {r["package"] for r in json.loads(result.stdout)} == {"xaicli"}


def test_listing_imports_no_plugin(fake_site):
    code = textwrap.dedent(
        """
        import sys
        from xaicli import plugins
        names = plugins.names("explainers")
        assert "broken" in names and "constant" in names, names
        assert "xaicli_broken" not in sys.modules and "xaicli_fake" not in sys.modules
        assert not any(m.startswith("xaicli.explainers") for m in sys.modules)
        print("ok")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(fake_site)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr


def test_unknown_plugin_lists_what_exists_and_the_closest_match():
    with pytest.raises(PluginError) as caught:
        plugins.load("explainers", "gradcm")
    message = str(caught.value)
    assert "unknown explainer 'gradcm'" in message and "did you mean 'gradcam'" in message
    assert "rise" in message and "lime" in message


def test_unknown_plugin_message_reads_well_and_names_the_autoload_switch(fake_site):
    # the separator before the list, and the switch that hid a third-party plugin
    code = textwrap.dedent(
        """
        from xaicli import plugins
        from xaicli.errors import PluginError
        for name in ("nosuchmethod", "constant"):
            try:
                plugins.load("explainers", name)
            except PluginError as exc:
                print(exc)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(fake_site), plugins.AUTOLOAD_ENV: "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    unknown, constant = out.stdout.strip().splitlines()
    assert unknown.startswith("unknown explainer 'nosuchmethod'; available: ") and plugins.AUTOLOAD_ENV not in unknown
    assert constant.startswith("unknown explainer 'constant'") and f"{plugins.AUTOLOAD_ENV} is set" in constant


def test_broken_plugin_load_is_a_plugin_error_naming_the_package(fake_site, monkeypatch):
    monkeypatch.syspath_prepend(str(fake_site))
    import importlib

    importlib.invalidate_caches()
    with pytest.raises(PluginError, match="'broken' from xaicli-broken 1.2.3 is broken: ModuleNotFoundError"):
        plugins.load("explainers", "broken")
    assert plugins.load("explainers", "constant").__name__ == "Constant"


def test_version_and_help():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"xaicli {__version__}"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "predict", "explain", "score", "compare", "report", "dicom-anonymize", "serve",
                    "plugins"):
        assert command in result.stdout


def test_help_does_not_import_tensorflow():
    code = textwrap.dedent(
        """
        import sys
        from xaicli.cli import main
        for args in (["--help"], ["plugins", "--no-check"], %s):
            sys.argv = ["xaicli", *args]
            try:
                main()
            except SystemExit:
                pass
        heavy = [m for m in ("tensorflow", "keras", "cv2", "pydicom", "lime", "fastapi", "starlette", "uvicorn",
                             "jinja2", "python_multipart", "ray", "matplotlib") if m in sys.modules]
        print("HEAVY", heavy)
        """
        % ", ".join(f'["{c}", "--help"]' for c in
                    ("train", "predict", "explain", "score", "compare", "report", "dicom-anonymize", "serve",
                     "plugins"))
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]


def test_user_errors_are_one_red_line_with_the_documented_code_and_no_traceback():
    result = _xaicli("plugins", "not-a-kind")
    assert result.returncode == 5
    assert result.stderr.strip().splitlines() == [
        "error: unknown plugin kind 'not-a-kind'; kinds are: models, explainers, metrics, rois"
    ]
    assert "Traceback" not in result.stderr + result.stdout


def test_python_dash_m_entry_point():
    result = _xaicli("--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_tensorflow_start_up_chatter_stays_out_of_the_terminal(tmp_path):
    # TensorFlow's absl logs ignore TF_CPP_MIN_LOG_LEVEL before absl is initialised; the CLI
    # silences file descriptor 2 while TensorFlow imports (unless the user set the variable).
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-m", "xaicli", "predict", str(root / "sample_data/models/chest/model.keras"),
         str(root / "sample_data/chest/test/nodule/test_0015.png"), "-o", str(tmp_path / "p")],
        capture_output=True, text=True, env=env, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for chatter in ("absl", "oneDNN", "cuda"):
        assert chatter not in result.stderr, result.stderr[-2000:]
