"""The plugin registry: models, explainers, metrics and regions of interest, read from entry points.

xaicli's own built-ins are registered in its ``pyproject.toml`` under the same entry-point groups a
third-party package uses, so there is exactly one way a plugin is found::

    [project.entry-points."xaicli.explainers"]
    my-method = "my_package.module:MyExplainer"

Listing reads package metadata only and imports nothing; a plugin is imported when it is used
(:func:`load`) or checked (:func:`check`). A plugin that fails to import is reported as broken with
its error and does not affect the others. Setting ``XAICLI_DISABLE_PLUGIN_AUTOLOAD=1`` keeps only
the built-ins (for tests and for reproducing a bug without third-party code).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from xaicli.errors import PluginError

#: kind (as used on the command line and in messages) -> entry-point group
GROUPS: dict[str, str] = {
    "models": "xaicli.models",
    "explainers": "xaicli.explainers",
    "metrics": "xaicli.metrics",
    "rois": "xaicli.rois",
}

AUTOLOAD_ENV = "XAICLI_DISABLE_PLUGIN_AUTOLOAD"
BUILTIN_DISTRIBUTION = "xaicli"


@dataclass(frozen=True)
class PluginEntry:
    """One discovered plugin, described from metadata alone (nothing imported)."""

    kind: str
    name: str
    target: str  # "module:attribute"
    package: str
    version: str

    @property
    def builtin(self) -> bool:
        return _canonical(self.package) == BUILTIN_DISTRIBUTION


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _autoload_disabled() -> bool:
    return os.environ.get(AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _check_kind(kind: str) -> str:
    if kind not in GROUPS:
        raise PluginError(f"unknown plugin kind {kind!r}; kinds are: {', '.join(GROUPS)}")
    return GROUPS[kind]


def available(kind: str) -> dict[str, PluginEntry]:
    """Every plugin of ``kind`` by name, sorted, without importing any of them.

    When a third-party package registers a name that a built-in already has, the built-in wins:
    a plugin must not silently change what ``gradcam`` means.
    """
    group = _check_kind(kind)
    only_builtins = _autoload_disabled()
    found: dict[str, PluginEntry] = {}
    for ep in metadata.entry_points(group=group):
        dist = getattr(ep, "dist", None)
        package = dist.metadata["Name"] if dist is not None else "?"
        version = dist.version if dist is not None else "?"
        entry = PluginEntry(kind, ep.name, ep.value, package, version)
        if only_builtins and not entry.builtin:
            continue
        if ep.name in found and found[ep.name].builtin:
            continue
        found[ep.name] = entry
    return dict(sorted(found.items()))


def names(kind: str) -> list[str]:
    return list(available(kind))


def _unknown(kind: str, name: str, known: list[str]) -> PluginError:
    singular = kind[:-1]
    message = f"unknown {singular} {name!r}"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    message += f"; available: {', '.join(known) if known else '(none installed)'}"
    if _autoload_disabled() and _hidden_by_autoload(kind, name):
        message += (f"; a third-party package provides {name!r}, but {AUTOLOAD_ENV} is set, which keeps "
                    "only the built-ins (unset it to use the plugin)")
    return PluginError(message)


def _hidden_by_autoload(kind: str, name: str) -> bool:
    """Whether a third-party plugin of that name exists but is hidden by the autoload switch."""
    group = GROUPS[kind]
    return any(ep.name == name for ep in metadata.entry_points(group=group))


def entry(kind: str, name: str) -> PluginEntry:
    """The entry for ``name``, or a :class:`PluginError` listing what exists and the closest match."""
    entries = available(kind)
    if name not in entries:
        raise _unknown(kind, name, list(entries))
    return entries[name]


def _import(plugin: PluginEntry) -> Any:
    module_name, _, attribute = plugin.target.partition(":")
    import importlib

    obj = importlib.import_module(module_name.strip())
    for part in filter(None, attribute.strip().split(".")):
        obj = getattr(obj, part)
    return obj


def load(kind: str, name: str) -> Any:
    """Import and return the object a plugin registers (a class or a factory)."""
    plugin = entry(kind, name)
    try:
        return _import(plugin)
    except Exception as exc:  # any failure inside third-party code means "broken", not a crash
        raise PluginError(
            f"{kind[:-1]} {name!r} from {plugin.package} {plugin.version} is broken: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def check(kind: str) -> list[tuple[PluginEntry, str | None]]:
    """Import every plugin of ``kind``; each comes back with ``None`` or the error it raised."""
    results = []
    for plugin in available(kind).values():
        try:
            _import(plugin)
            error = None
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        results.append((plugin, error))
    return results
