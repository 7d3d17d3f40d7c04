"""Site recipes: a YAML file with the profile options and per-tag rules a site needs.

Example::

    options: [retain-device-identity, clean-descriptors]
    keep: [PatientAge, "(0008,0080)"]          # keep verbatim
    remove: [StationName]                      # remove whatever the profile says
    actions: {"(0008,103E)": X, SeriesDescription: K}
    safe_private: ["GEMS_ACQU_01 (0019,xx10)"]  # kept with retain-safe-private
    burned_in_modalities: [US, SC, OT]
"""

from __future__ import annotations

from pathlib import Path

from xaicli.errors import InputError

KNOWN_KEYS = {"options", "keep", "remove", "actions", "safe_private", "burned_in_modalities"}


def load_recipe(path: str | Path) -> dict:
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such recipe file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: recipe cannot be read ({type(exc).__name__})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}: recipe is not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: recipe must be a mapping with keys {', '.join(sorted(KNOWN_KEYS))}")
    unknown = set(data) - KNOWN_KEYS
    if unknown:
        raise InputError(f"{path}: unknown recipe keys {', '.join(sorted(map(str, unknown)))}")
    for key in ("options", "keep", "remove", "safe_private", "burned_in_modalities"):
        value = data.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise InputError(f"{path}: recipe key {key!r} must be a list")
        data[key] = [str(v) for v in value]
    actions = data.get("actions", {}) or {}
    if not isinstance(actions, dict):
        raise InputError(f"{path}: recipe key 'actions' must map tags to action codes")
    data["actions"] = {str(k): str(v) for k, v in actions.items()}
    return data
