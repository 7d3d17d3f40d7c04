"""Graph surgery on Keras models: the logit model, and tapping inner layers (nested models too).

Both build new functional models that *share* the original's weights (explanations never train),
so a runner can differentiate a class score before its softmax, or read a conv layer's
activations and gradients in the same compiled call as the output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xaicli.errors import ModelError, UsageError


def logit_model(model: Any) -> Any:
    """``model`` with its output layer's softmax / sigmoid taken off (same weights).

    A final ``Activation``/``Softmax`` layer is skipped; a layer with a built-in activation
    (``Dense(k, activation="softmax")``, a 1x1 ``Conv2D`` with a sigmoid) is replaced by a copy
    with a linear activation and the same weights (copied: explanations never train).
    """
    import keras

    last = model.layers[-1]
    kind = type(last).__name__
    activation = getattr(getattr(last, "activation", None), "__name__", "")
    if kind == "Softmax" or (kind == "Activation" and activation in ("softmax", "sigmoid")):
        return keras.Model(model.inputs, last.input, name=f"{model.name}_logits")
    if activation in ("softmax", "sigmoid") and hasattr(last, "activation"):
        linear = type(last).from_config({**last.get_config(), "activation": "linear", "name": f"{last.name}_logits"})
        logits = linear(last.input)
        linear.set_weights(last.get_weights())
        return keras.Model(model.inputs, logits, name=f"{model.name}_logits")
    raise UsageError(
        f"score 'logit' needs a model whose output layer applies softmax or sigmoid; "
        f"its last layer {last.name!r} ({kind}) does not", parameter="score",
    )


def is_model(layer: Any) -> bool:
    import keras

    return isinstance(layer, keras.Model)


def tap_model(model: Any, paths: Sequence[tuple[str, ...]]) -> Any:
    """A functional model sharing ``model``'s weights whose outputs are [taps..., model output].

    Keras 3 nested models keep their own graph: an inner layer's ``.output`` is not connected to
    the outer model's input. So the outer graph is re-run symbolically on a fresh Input, expanding
    nested models layer by layer and recording the wanted layers' outputs on the way.
    """
    import keras

    wanted = {tuple(p) for p in paths}
    taps: dict[tuple[str, ...], Any] = {}
    inp = keras.Input(shape=tuple(model.inputs[0].shape[1:]), dtype=model.inputs[0].dtype)
    out = _call_tapped(model, inp, (), wanted, taps)
    missing = [p for p in wanted if p not in taps]
    if missing:
        raise ModelError(f"layer {'/'.join(missing[0])!r} is not reached from the model input")
    return keras.Model(inp, [taps[tuple(p)] for p in paths] + [out])


def _contains(prefix: tuple[str, ...], wanted: set[tuple[str, ...]]) -> bool:
    return any(p[: len(prefix)] == prefix and len(p) > len(prefix) for p in wanted)


def _call_tapped(layer: Any, x: Any, prefix: tuple[str, ...], wanted: set, taps: dict) -> Any:
    import keras

    if not (is_model(layer) and _contains(prefix, wanted)):
        y = layer(x)
        if prefix in wanted:
            taps[prefix] = y
        return y
    if isinstance(layer, keras.Sequential):
        for inner in layer.layers:
            x = _call_tapped(inner, x, (*prefix, inner.name), wanted, taps)
        return x
    if not hasattr(layer, "_run_through_graph"):
        raise ModelError(f"cannot look inside the subclassed model {layer.name!r} for a CAM layer")

    def operation_fn(op):
        path = (*prefix, op.name)

        def call(*args, **kwargs):
            if is_model(op) and _contains(path, wanted) and len(args) == 1 and not any(v is not None for v in kwargs.values()):
                return _call_tapped(op, args[0], path, wanted, taps)
            y = op(*args, **kwargs)
            if path in wanted:
                taps[path] = y
            return y

        return call

    return layer._run_through_graph(x, operation_fn=operation_fn)
