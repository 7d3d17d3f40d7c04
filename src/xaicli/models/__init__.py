"""Model plugins (group ``xaicli.models``) and the self-describing model file (:mod:`.io`).

Each plugin builds an untrained Keras network for an input shape, a task and a number of outputs;
``xaicli.models.build(name, ...)`` is the one place the registry is asked for one.
"""

from __future__ import annotations

from typing import Any

from xaicli.api import TASKS, ModelSpec
from xaicli.errors import PluginError, UsageError


def get_spec(name: str) -> ModelSpec:
    """The model plugin ``name``, instantiated (PluginError listing the names if unknown)."""
    from xaicli import plugins

    cls = plugins.load("models", name)
    spec = cls() if isinstance(cls, type) else cls
    if not isinstance(spec, ModelSpec):
        raise PluginError(f"model {name!r} is not a xaicli.api.ModelSpec")
    return spec


def check_task(spec: ModelSpec, task: str, supported: tuple[str, ...]) -> None:
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    if task not in supported:
        raise UsageError(
            f"model {spec.name!r} does not do {task}; it does {', '.join(supported)}"
        )


def param(params: dict[str, Any], key: str, default: Any, kind: type) -> Any:
    """A plugin parameter converted to ``kind`` (values from the CLI arrive as strings)."""
    value = params.pop(key, default)
    if value is None:
        return None
    try:
        if kind is bool and isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise UsageError(f"model parameter {key}={value!r} is not a valid {kind.__name__}") from None


def no_unknown(spec: ModelSpec, params: dict[str, Any]) -> None:
    if params:
        raise UsageError(f"model {spec.name!r} has no parameter(s) {', '.join(sorted(params))}")


def head(x: Any, task: str, num_outputs: int) -> Any:
    """The output layer: softmax over classes, or one linear unit for regression."""
    import keras

    if task == "classification":
        if num_outputs < 2:
            raise UsageError("classification needs at least two classes")
        return keras.layers.Dense(num_outputs, activation="softmax", name="predictions")(x)
    return keras.layers.Dense(max(1, num_outputs), activation="linear", name="predictions")(x)
