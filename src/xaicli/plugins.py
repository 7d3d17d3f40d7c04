"""The plugin registry: models, explainers, metrics and regions of interest, read from entry points.

xaicli's own built-ins are registered in its ``pyproject.toml`` under the same entry-point groups a
third-party package uses, so there is exactly one way a plugin is found::

    [project.entry-points."xaicli.explainers"]
    my-method = "my_package.module:MyExplainer"

Listing reads package metadata only and imports nothing; a plugin is imported when it is used
(:func:`load`) or checked (:func:`check`). A plugin that fails to import, or that does not declare
what the engine reads from it (``xaicli.api``), is reported as broken with its error and does not
affect the others. :func:`make` is the one place a plugin is instantiated: it checks the
parameters against the constructor and turns a plugin's own rejection (``ValueError``) into one
usage line. Setting ``XAICLI_DISABLE_PLUGIN_AUTOLOAD=1`` keeps only the built-ins (for tests and for
reproducing a bug without third-party code).

Tests and notebooks register a plugin in-process with :func:`register` (as simonw/llm does); it is
then listed, loaded, checked and made through exactly the same functions as an entry point.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from xaicli.errors import PluginError, UsageError, XaicliError

#: kind (as used on the command line and in messages) -> entry-point group
GROUPS: dict[str, str] = {
    "models": "xaicli.models",
    "explainers": "xaicli.explainers",
    "metrics": "xaicli.metrics",
    "rois": "xaicli.rois",
}

AUTOLOAD_ENV = "XAICLI_DISABLE_PLUGIN_AUTOLOAD"
BUILTIN_DISTRIBUTION = "xaicli"
IN_PROCESS = "(in-process)"
#: plugins registered with register(): kind -> name -> (entry, object)
_REGISTERED: dict[str, dict[str, tuple[PluginEntry, Any]]] = {kind: {} for kind in GROUPS}


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
    for name, (entry, _) in _REGISTERED[kind].items():
        if name not in found or not found[name].builtin:
            found[name] = entry
    return dict(sorted(found.items()))


def names(kind: str) -> list[str]:
    return list(available(kind))


def _unknown(kind: str, name: str, known: list[str]) -> PluginError:
    singular = kind[:-1]
    message = f"unknown {singular} {name!r}"
    # case does not matter for the suggestion: IG -> ig, GradCAM -> gradcam
    lowered = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.5)
    if close:
        message += f" (did you mean {lowered[close[0]]!r}?)"
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
    registered = _REGISTERED[plugin.kind].get(plugin.name)
    if registered is not None and registered[0] is plugin:
        obj = registered[1]
        _check_declarations(plugin.kind, obj)
        return obj
    module_name, _, attribute = plugin.target.partition(":")
    import importlib

    obj = importlib.import_module(module_name.strip())
    for part in filter(None, attribute.strip().split(".")):
        obj = getattr(obj, part)
    _check_declarations(plugin.kind, obj)
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


# ------------------------------------------------------------------------ in-process plugins


def register(kind: str, name: str, obj: Any) -> PluginEntry:
    """Register ``obj`` as plugin ``name`` of ``kind`` in this process (tests, notebooks).

    It then behaves as an entry point of a package named ``(in-process)``: listed, loaded, checked
    and made by the same functions. A built-in name cannot be taken over.
    """
    _check_kind(kind)
    entry = PluginEntry(kind, name, f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', '?')}",
                        IN_PROCESS, "0")
    _REGISTERED[kind][name] = (entry, obj)
    return entry


def unregister(kind: str, name: str) -> None:
    _check_kind(kind)
    _REGISTERED[kind].pop(name, None)


@contextlib.contextmanager
def registered(kind: str, name: str, obj: Any) -> Iterator[PluginEntry]:
    """``register`` for the duration of a ``with`` block."""
    entry = register(kind, name, obj)
    try:
        yield entry
    finally:
        unregister(kind, name)


# ------------------------------------------------------------------- declarations and make()


def _check_declarations(kind: str, obj: Any) -> None:
    """What the engine reads from a plugin must be declared (``xaicli.api``); raises TypeError."""
    from xaicli import api

    bases = {"explainers": api.Explainer, "metrics": api.Metric, "rois": api.RegionSource, "models": api.ModelSpec}
    base = bases[kind]
    if kind == "models" and not isinstance(obj, type):
        return  # a factory returning a ModelSpec: checked when called (xaicli.models.get_spec)
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise TypeError(f"{obj!r} is not a subclass of xaicli.api.{base.__name__}")
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
        raise TypeError(f"{obj.__name__} does not implement {missing}")
    if kind == "explainers":
        for flag in ("needs_gradients", "needs_scores", "needs_blends", "uses_layers", "gradient_pass"):
            if not isinstance(getattr(obj, flag), bool):
                raise TypeError(f"{obj.__name__}.{flag} must be True or False")
        if obj.display not in api.DISPLAYS:
            raise TypeError(f"{obj.__name__}.display must be one of {', '.join(api.DISPLAYS)}, not {obj.display!r}")
    if kind == "metrics":
        unknown = [k for k in obj.requires if k not in api.CONTEXT_KEYS and obj.per_image]
        if unknown:
            raise TypeError(f"{obj.__name__}.requires names unknown context {unknown[0]!r}; "
                            f"known: {', '.join(api.CONTEXT_KEYS)}")
        if obj.higher_is_better not in (True, False, None) or not isinstance(obj.per_image, bool):
            raise TypeError(f"{obj.__name__}.higher_is_better must be True, False or None and per_image a bool")


def parameters(cls: Any) -> set[str]:
    """The named keyword parameters of a plugin class's constructor, over its class hierarchy up
    to xaicli's base class (``**params`` catch-alls of intermediate classes are not names)."""
    from xaicli import api

    stop = (api.Explainer, api.Metric, api.RegionSource, api.ModelSpec, object)
    names: set[str] = set()
    for klass in getattr(cls, "__mro__", ()):
        if klass in stop:
            break
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                names.add(p.name)
    return names


def accepts(kind: str, name: str, parameter: str) -> bool:
    return parameter in parameters(load(kind, name))


def make(kind: str, name: str, params: dict[str, Any] | None = None, **engine: Any) -> Any:
    """An instance of plugin ``name`` of ``kind`` with the user's ``params``.

    A parameter the constructor does not take is a usage error listing those it takes; a plugin
    that rejects a value (``ValueError``, ``TypeError`` or xaicli's own error) gives one usage line
    naming it. ``engine`` keywords (``normalization=`` for metrics) are passed only to constructors
    that take them.
    """
    cls = load(kind, name)
    accepted = parameters(cls)
    params = dict(params or {})
    unknown = sorted(set(params) - accepted)
    what = {"explainers": "method", "metrics": "metric", "rois": "region source", "models": "model"}[kind]
    if unknown:
        takes = ", ".join(sorted(accepted - set(engine))) or "(none)"
        raise UsageError(f"{what} {name!r} has no parameter {unknown[0]!r}; its parameters: {takes}")
    given = {**{k: v for k, v in engine.items() if k in accepted}, **params}
    try:
        return cls(**given)
    except XaicliError as exc:
        if isinstance(exc, UsageError):
            raise
        raise UsageError(f"{what} {name!r}: {exc.message}") from None
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{what} {name!r}: {exc}") from None
