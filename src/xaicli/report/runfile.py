"""``run-<command>.json``: what a run was asked to do and what it concluded, for its report.

The outputs of a run say what it found, not how it was run: which model, which methods and
parameters, which region, which gates. The commands record that at their end (``xaicli.cli.report``
calls :func:`record_run`): the command, xaicli's version, the time, every option as given, the
model's description (its :class:`~xaicli.api.ModelInfo`, read from the file without loading it) and
the run's verdict (failed gates, failed inputs, the direction of each column). Never a secret and
never patient data: a de-identification run records nothing (its own report says what it did, and
its options hold the key), and no other command's options carry a key. One file per command, so
two commands writing into one folder (``train``, then ``predict``) do not claim the same file.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

RUN_FILE = "run-{command}.json"
#: options never recorded: secrets, and how the terminal output looked
LEFT_OUT = ("key", "key_file", "as_json", "overwrite", "report", "quiet", "resume")
#: commands whose output folders get no run file (see the module docstring)
NOT_RECORDED = ("dicom-anonymize",)
#: what a command's result says that no output file does
VERDICT = ("images", "gate_failures", "failures", "no_region", "truth_source", "region", "normalization",
           "quality_name", "quality", "directions", "n_train", "n_val")


def _plain(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def model_description(path: Any) -> dict[str, Any] | None:
    """The ModelInfo stored in an xaicli model file, as a dict (None for a foreign or missing file)."""
    from dataclasses import asdict

    from xaicli.errors import XaicliError
    from xaicli.models.io import read_info

    if path is None or not Path(path).exists():
        return None
    try:
        info = read_info(path)
    except XaicliError:
        return None
    return None if info is None else {"file": os.fspath(path), **asdict(info)}


def verdict(result: Any) -> dict[str, Any]:
    found = {name: getattr(result, name) for name in VERDICT if hasattr(result, name)}
    if "directions" in found:
        found["directions"] = {c: {True: "higher", False: "lower"}.get(d) for c, d in found["directions"].items()}
    for name in ("failures", "no_region"):
        if name in found:
            found[name] = [{"file": str(f), "reason": str(r)} for f, r in found[name]]
    return _plain(found)


def record_run(folder: str | os.PathLike[str], command: str, settings: dict[str, Any], result: Any = None,
               *, model: Any = None, overwrite: bool = False) -> Path | None:
    """Write ``FOLDER/run-<command>.json`` (see the module docstring); ``model``: the model file, if any."""
    from xaicli import __version__
    from xaicli.io import write_json

    if command in NOT_RECORDED:
        return None
    document = {
        "command": command,
        "xaicli": __version__,
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": {k: _plain(v) for k, v in settings.items() if k not in LEFT_OUT},
        "model": model_description(model),
        "verdict": verdict(result) if result is not None else {},
    }
    return write_json(run_file(folder, command), document, overwrite=overwrite)


def run_file(folder: str | os.PathLike[str], command: str) -> Path:
    return Path(folder) / RUN_FILE.format(command=command)


def recorded_commands(folder: Path) -> list[str]:
    """The commands that recorded a run in ``folder`` (their ``run-<command>.json``)."""
    return sorted(p.name[len("run-"):-len(".json")] for p in Path(folder).glob("run-*.json"))


def read_run(folder: Path, command: str) -> dict[str, Any]:
    """The run ``command`` recorded in the folder, or {} when it recorded none (a run from before,
    or from the Python API)."""
    from xaicli.errors import InputError

    path = run_file(folder, command)
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: not a readable run description ({exc})") from None
    return document if isinstance(document, dict) else {}
