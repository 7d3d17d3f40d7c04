"""Reduced precision for the explanations: the explained model computing in bfloat16.

``fp32`` (default) explains the model as it is. ``bf16`` clones it with every layer in Keras'
``bfloat16`` policy (weights and computations), ``mixed`` in ``mixed_bfloat16`` (computations in
bfloat16, weights in float32), with the same weights; predictions and targets still come from
the float32 model, so only the maps are approximated. On CPUs with bfloat16 matrix units (AMX,
AVX512-BF16) a conv-heavy network runs several times faster; elsewhere bfloat16 is emulated and
slower. ``auto`` decides per model and machine with a short probe (:func:`probe`): reduced
precision only where it measured faster *and* its input gradients correlate with float32's at
:data:`FIDELITY` or more.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from xaicli.errors import UsageError

PRECISIONS = ("fp32", "bf16", "mixed", "auto")
POLICIES = {"bf16": "bfloat16", "mixed": "mixed_bfloat16"}
#: the least correlation of reduced-precision maps with float32's for ``auto`` to choose it
FIDELITY = 0.98
#: the least speed-up for ``auto`` to choose reduced precision
SPEEDUP = 1.2


def check(precision: str) -> str:
    if precision not in PRECISIONS:
        raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}", parameter="precision")
    return precision


def reduced(model: Any, precision: str) -> Any:
    """``model`` computing in ``precision`` (``bf16`` or ``mixed``), sharing nothing but its weights."""
    import keras

    policy = POLICIES[precision]

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        if not isinstance(layer, keras.layers.InputLayer):
            config["dtype"] = policy
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    for source, target in zip(model.weights, copy.weights, strict=True):
        target.assign(keras.ops.cast(source, target.dtype))
    return copy


def _gradient_fn(model: Any, shape: tuple[int, ...], output: tuple[int, ...]) -> Any:
    import tensorflow as tf

    axes = list(range(1, 1 + len(output)))

    @tf.function(input_signature=[tf.TensorSpec((None, *shape), tf.float32), tf.TensorSpec((None, *output), tf.float32)])
    def fn(x, w):
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = tf.reduce_sum(tf.cast(model(x, training=False), tf.float32) * w, axis=axes)
        return tape.gradient(score, x)

    return fn


def probe(model: Any, x: np.ndarray, weights: np.ndarray, rounds: int = 3) -> dict[str, Any]:
    """Forward + backward seconds of a batch (``x``, a run's first images, with their target
    ``weights``) at float32 and bfloat16, interleaved, and the Pearson correlation of the two input
    gradients, image by image: what ``auto`` decides from."""
    x, weights = np.asarray(x, np.float32), np.asarray(weights, np.float32)
    shape, output = tuple(x.shape[1:]), tuple(weights.shape[1:])
    fp32, bf16 = _gradient_fn(model, shape, output), _gradient_fn(reduced(model, "bf16"), shape, output)
    g32, g16 = fp32(x, weights).numpy(), bf16(x, weights).numpy()  # traced, and the fidelity
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(rounds):
        for name, fn in (("fp32", fp32), ("bf16", bf16)):
            started = time.perf_counter()
            fn(x, weights).numpy()
            times[name].append(time.perf_counter() - started)
    fp, half = float(np.median(times["fp32"])), float(np.median(times["bf16"]))
    a, b = g32.reshape(len(x), -1), g16.reshape(len(x), -1)
    pairs = [np.corrcoef(u, v)[0, 1] for u, v in zip(a, b, strict=True) if u.std() > 0 and v.std() > 0]
    correlation = float(np.mean(pairs)) if pairs else float("nan")
    choice = "bf16" if fp / max(half, 1e-12) >= SPEEDUP and correlation >= FIDELITY else "fp32"
    return {"fp32_seconds": fp, "bf16_seconds": half, "speedup": fp / max(half, 1e-12),
            "correlation": correlation, "choice": choice}
