"""The one place where a Keras model is called for explanations: compiled, batched, chunked.

:class:`ModelRunner` wraps a Keras model with a few ``tf.function`` calls compiled once per runner
and reused for every image, batch and explainer:

* forward (model outputs), forward + target score, forward + input gradient of the target score,
* forward + activations (and their gradients) at chosen layers, for the CAM methods.

Why: on a CPU, eager calls and ``model.predict`` lose 5-10x at small batches to per-call overhead
(see docs/explainers.md). Every compiled call takes a batch dimension of ``None`` (one trace per
function for every batch size, so the leftover chunk of a stack never retraces and is never padded
with wasted work) and a fixed image shape.

Perturbation stacks (RISE masks, IG path points, noisy copies, LIME samples) can be far larger than
memory: explainers pass a :class:`Stack`, whose chunks are built lazily, ``batch_size`` rows at a
time, so memory is bounded by ``batch_size`` whatever the number of masks or steps.

Every target xaicli defines is *linear in the model output* (a class score, a regression output, the
sum of a segmentation output over a mask): ``score = sum(output * weights[row])``. The runner takes
the per-row weights as a tensor argument, so one compiled function serves every image and target.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xaicli.errors import ModelError, UsageError

DEFAULT_BATCH_SIZE = 16
SCORES = ("probability", "logit")
#: build the next chunk of a stack in a worker thread while the model runs the current one
PREFETCH = True


@dataclass
class Stack:
    """A lazily built stack of ``length`` model inputs; ``rows[i]`` is the image row i belongs to.

    ``build(start, stop)`` returns inputs ``start:stop`` as float32 (n, H, W, C).
    """

    length: int
    rows: np.ndarray
    build: Callable[[int, int], np.ndarray]

    def __len__(self) -> int:
        return self.length

    @classmethod
    def of(cls, array: np.ndarray, rows: Sequence[int] | np.ndarray | None = None) -> Stack:
        array = np.asarray(array, dtype=np.float32)
        rows = np.arange(len(array)) if rows is None else np.asarray(rows, dtype=np.int64)
        return cls(len(array), rows, lambda a, b: array[a:b])


@dataclass
class Blend:
    """Perturbed copies ``fill + (image - fill) * mask`` of a few images (RISE, LIME, occlusion).

    Only the masks cross from NumPy (``build(start, stop)`` -> (n, H, W) float32, a third of the
    data of an RGB stack); the gather and blend run inside the compiled call, in TensorFlow's
    threads. ``images`` and ``fills`` are (b, H, W, C) model inputs; ``rows[i]`` is the image
    copy i is made from (and whose target it scores).
    """

    images: np.ndarray
    fills: np.ndarray  # (b, H, W, C), or per image and channel as (b, 1, 1, C)
    rows: np.ndarray
    build: Callable[[int, int], np.ndarray]

    def __len__(self) -> int:
        return len(self.rows)

    def inputs(self, start: int, stop: int, masks: np.ndarray) -> np.ndarray:
        """The same copies built in NumPy (for targets without output weights)."""
        rows = self.rows[start:stop]
        fills = self.fills[rows]
        return fills + (self.images[rows] - fills) * masks[..., None]


def _as_stack(x: np.ndarray | Stack, rows: Sequence[int] | np.ndarray | None) -> Stack:
    if isinstance(x, Stack):
        return x
    return Stack.of(x, rows)


@dataclass(frozen=True)
class LayerRef:
    """A layer of the model, possibly inside nested models; ``path`` = names from the top."""

    path: tuple[str, ...]
    layer: Any
    output_shape: tuple[Any, ...]

    @property
    def name(self) -> str:
        return "/".join(self.path)


_CONV_CLASSES = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Conv2DTranspose", "Convolution2D")
# Layers that keep a conv block's map (same shape, elementwise): Grad-CAM's default layer is the
# last of these after the last conv, e.g. MobileNetV2's "out_relu" rather than the pre-BN "Conv_1".
_PASS_THROUGH = ("BatchNormalization", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Dropout",
                 "SpatialDropout2D", "GaussianNoise", "LayerNormalization", "Add", "Multiply")


class ModelRunner:
    """Batched, compiled calls of one Keras model.

    ``batch_size``: images or perturbations per model call (memory is bounded by it).
    ``preprocess``: maps images in [0, 1] to model inputs (used by explainers whose baselines are
    defined in image space: black, white, noise); identity when not given.
    ``score``: what the explainers' target weighs: ``probability`` (the model's own outputs) or
    ``logit`` (the pre-activation of a softmax / sigmoid output layer, the class score y^c that
    the Grad-CAM and Grad-CAM++ papers differentiate; tf-keras-vis calls it ReplaceToLinear).
    ``predict`` always returns the model's own outputs (targets are resolved from those).
    """

    def __init__(
        self,
        model: Any,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        preprocess: Callable[[np.ndarray], np.ndarray] | None = None,
        score: str = "probability",
    ) -> None:
        import tensorflow as tf

        if batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, not {batch_size}")
        self.model = model
        self.batch_size = int(batch_size)
        self.preprocess = preprocess or (lambda images: np.asarray(images, dtype=np.float32))
        inputs = getattr(model, "inputs", None)
        if not inputs or len(inputs) != 1:
            raise ModelError("explanations need a model with exactly one image input")
        shape = tuple(inputs[0].shape)
        if len(shape) != 4 or any(v is None for v in shape[1:]):
            raise ModelError(f"explanations need a fixed (height, width, channels) input, not {shape}")
        self.input_shape: tuple[int, int, int] = tuple(int(v) for v in shape[1:])  # type: ignore[assignment]
        outputs = model.outputs
        if len(outputs) != 1:
            raise ModelError("explanations need a model with exactly one output")
        self.output_shape: tuple[int, ...] = tuple(int(v) for v in outputs[0].shape[1:])
        if score not in SCORES:
            raise UsageError(f"score must be one of {', '.join(SCORES)}, not {score!r}")
        self.score_kind = score
        #: the model the explainers' scores and gradients come from
        self.explained = logit_model(model) if score == "logit" else model
        self._tf = tf
        self._x_spec = tf.TensorSpec((None, *self.input_shape), tf.float32)
        self._w_spec = tf.TensorSpec((None, *self.output_shape), tf.float32)
        self._axes = list(range(1, 1 + len(self.output_shape)))
        # Fresh closures per runner (not bound methods): TensorFlow counts traces per Python
        # function, and would warn about "retracing" when a process builds several runners.
        self._forward = tf.function(lambda x: self._forward_py(x), input_signature=[self._x_spec])
        self._score = tf.function(lambda x, w: self._score_py(x, w), input_signature=[self._x_spec, self._w_spec])
        self._grad = tf.function(lambda x, w: self._grad_py(x, w), input_signature=[self._x_spec, self._w_spec])
        mask_spec = tf.TensorSpec((None, *self.input_shape[:2]), tf.float32)
        rows_spec = tf.TensorSpec((None,), tf.int32)
        self._blend = tf.function(lambda images, fills, rows, masks, w: self._blend_py(images, fills, rows, masks, w),
                                  input_signature=[self._x_spec, self._x_spec, rows_spec, mask_spec, self._w_spec])
        self._taps: dict[tuple[str, ...], Any] = {}
        self._layers: list[LayerRef] | None = None
        #: model calls made, in rows (for tests and the benchmark's cost floor)
        self.rows_evaluated = 0

    # -------------------------------------------------------------- compiled bodies

    def _out(self, model: Any, x: Any) -> Any:
        return self._tf.cast(model(x, training=False), self._tf.float32)

    def _forward_py(self, x):
        return self._out(self.model, x)

    def _score_py(self, x, w):
        return self._tf.reduce_sum(self._out(self.explained, x) * w, axis=self._axes)

    def _blend_py(self, images, fills, rows, masks, w):
        tf = self._tf
        fill = tf.gather(fills, rows)
        x = fill + (tf.gather(images, rows) - fill) * masks[..., None]
        return tf.reduce_sum(self._out(self.explained, x) * w, axis=self._axes)

    def _grad_py(self, x, w):
        tf = self._tf
        with tf.GradientTape() as tape:
            tape.watch(x)
            scores = tf.reduce_sum(self._out(self.explained, x) * w, axis=self._axes)
        # Rows are independent (inference mode), so the gradient of the sum is per-row gradients.
        return scores, tape.gradient(scores, x)

    # -------------------------------------------------------------- chunking

    def _chunks(self, stack: Stack, shape: tuple[int, ...] | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
        """Chunks of ``batch_size`` rows, each built while the previous one is in the model.

        One worker thread builds chunk k+1 (NumPy releases the GIL) while the caller runs chunk k
        through TensorFlow: building perturbed inputs is then off the critical path. With one
        worker the chunks are built in order, so seeded builds give the same rows as before.
        """
        starts = list(range(0, len(stack), self.batch_size))
        shape = self.input_shape if shape is None else shape

        def make(start: int) -> tuple[int, int, np.ndarray]:
            stop = min(start + self.batch_size, len(stack))
            return start, stop, np.asarray(stack.build(start, stop), dtype=np.float32)

        def checked(start: int, stop: int, chunk: np.ndarray) -> tuple[int, int, np.ndarray]:
            if chunk.shape[1:] != shape:
                raise ModelError(f"model expects inputs of shape {shape}, got {chunk.shape[1:]}")
            self.rows_evaluated += stop - start
            return start, stop, chunk

        if len(starts) <= 1 or not PREFETCH:
            for start in starts:
                yield checked(*make(start))
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="xaicli-build") as pool:
            pending = pool.submit(make, starts[0])
            for following in [*starts[1:], None]:
                current = pending.result()
                if following is not None:
                    pending = pool.submit(make, following)
                yield checked(*current)

    @staticmethod
    def _weights(target: Any, rows: np.ndarray) -> np.ndarray:
        return np.asarray(target.weights_for(rows), dtype=np.float32)

    # -------------------------------------------------------------- public calls

    def predict(self, x: np.ndarray | Stack) -> np.ndarray:
        """Model outputs for every row of ``x`` (float32)."""
        stack = _as_stack(x, None)
        parts = [self._forward(chunk).numpy() for _, _, chunk in self._chunks(stack)]
        return np.concatenate(parts) if parts else np.zeros((0, *self.output_shape), np.float32)

    def iter_scores(self, x: np.ndarray | Stack, target: Any, rows: Any = None) -> Iterator[tuple[int, int, np.ndarray]]:
        """(start, stop, target scores) per chunk; row i of ``x`` scores image ``rows[i]``'s target."""
        stack = _as_stack(x, rows)
        for start, stop, chunk in self._chunks(stack):
            if hasattr(target, "weights_for"):
                w = self._weights(target, stack.rows[start:stop])
                yield start, stop, self._score(chunk, w).numpy()
            else:  # a plugin target without weights: score eagerly on compiled outputs
                out = self._forward(chunk)
                yield start, stop, np.asarray(target.score(out, stack.rows[start:stop]), np.float32)

    def iter_blend_scores(self, blend: Blend, target: Any) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """(start, stop, masks, target scores) per chunk of a :class:`Blend`."""
        tf = self._tf
        images = tf.constant(np.asarray(blend.images, np.float32))
        fills = tf.constant(np.broadcast_to(np.asarray(blend.fills, np.float32), blend.images.shape))
        masks_only = Stack(len(blend), blend.rows, blend.build)
        for start, stop, masks in self._chunks(masks_only, self.input_shape[:2]):
            rows = blend.rows[start:stop]
            if hasattr(target, "weights_for"):
                w = self._weights(target, rows)
                scores = self._blend(images, fills, rows.astype(np.int32), masks, w).numpy()
            else:  # a plugin target without weights: build the copies here, score them eagerly
                out = self._forward(blend.inputs(start, stop, masks))
                scores = np.asarray(target.score(out, rows), np.float32)
            yield start, stop, masks, scores

    def blend_scores(self, blend: Blend, target: Any) -> np.ndarray:
        """Target scores (n,) of every copy of a :class:`Blend`."""
        parts = [s for _, _, _, s in self.iter_blend_scores(blend, target)]
        return np.concatenate(parts) if parts else np.zeros((0,), np.float32)

    def scores(self, x: np.ndarray | Stack, target: Any, rows: Any = None) -> np.ndarray:
        parts = [s for _, _, s in self.iter_scores(x, target, rows)]
        return np.concatenate(parts) if parts else np.zeros((0,), np.float32)

    def iter_gradients(self, x: np.ndarray | Stack, target: Any, rows: Any = None) -> Iterator[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]:
        """(start, stop, inputs, scores, input gradients) per chunk of ``x``."""
        stack = _as_stack(x, rows)
        for start, stop, chunk in self._chunks(stack):
            w = self._target_weights(target, stack.rows[start:stop])
            scores, grads = self._grad(chunk, w)
            yield start, stop, chunk, scores.numpy(), grads.numpy()

    def gradients(self, x: np.ndarray | Stack, target: Any, rows: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Target scores (n,) and their input gradients (n, H, W, C)."""
        scores, grads = [], []
        for _, _, _, s, g in self.iter_gradients(x, target, rows):
            scores.append(s)
            grads.append(g)
        return np.concatenate(scores), np.concatenate(grads)

    def _target_weights(self, target: Any, rows: np.ndarray) -> np.ndarray:
        if not hasattr(target, "weights_for"):
            raise UsageError(
                f"target {type(target).__name__} has no output weights; gradient methods need a "
                "target that is linear in the model output (xaicli.targets)"
            )
        return self._weights(target, rows)

    def trace(self, *, scores: bool = False, gradients: bool = False, blends: bool = False,
              layers: Sequence[Sequence[LayerRef]] = ()) -> None:
        """Trace the compiled calls once on one row, ahead of any timing: tracing costs 0.2-3 s
        per function the first time, and would otherwise be charged to whichever method ran first."""
        x = np.zeros((1, *self.input_shape), np.float32)
        w = np.zeros((1, *self.output_shape), np.float32)
        self._forward(x)
        if scores:
            self._score(x, w)
        if blends:
            self._blend(x, x, np.zeros(1, np.int32), np.ones((1, *self.input_shape[:2]), np.float32), w)
        if gradients:
            self._grad(x, w)
        for refs in layers:
            fwd, grad = self._tap(refs)
            fwd(x)
            grad(x, w)

    # -------------------------------------------------------------- layers (CAM)

    def layers(self) -> list[LayerRef]:
        """Every layer with a spatial (4-D) output, nested models expanded, in graph order."""
        if self._layers is None:
            self._layers = list(_walk(self.model, ()))
        return self._layers

    def conv_layers(self) -> list[LayerRef]:
        return [ref for ref in self.layers() if type(ref.layer).__name__ in _CONV_CLASSES]

    def default_cam_layer(self) -> LayerRef:
        """The last spatial conv layer, carried forward over same-shape BN / activation layers."""
        refs = self.layers()
        convs = [i for i, ref in enumerate(refs) if type(ref.layer).__name__ in _CONV_CLASSES]
        # A segmentation network ends in a spatial conv (the 1x1 head): its "map" would only
        # repeat the prediction, so the default is the last conv *before* the output layer.
        produces_output = {id(t) for t in self.model.outputs}
        convs = [i for i in convs if _spatial(refs[i].output_shape)
                 and id(getattr(refs[i].layer, "output", None)) not in produces_output]
        if not convs:
            raise ModelError("the model has no spatial convolution layer for a CAM method")
        best = convs[-1]
        for i in range(best + 1, len(refs)):
            if refs[i].output_shape == refs[best].output_shape and type(refs[i].layer).__name__ in _PASS_THROUGH:
                best = i
            elif type(refs[i].layer).__name__ not in _PASS_THROUGH:
                break
        return refs[best]

    def resolve_layers(self, names: Sequence[str] | str | None) -> list[LayerRef]:
        """Layer references from names: None/"auto" (last conv), "all-conv", names or paths."""
        if names is None or isinstance(names, str):
            names = [names] if names else []
        names = [n for n in names if n]
        if not names or names == ["auto"]:
            return [self.default_cam_layer()]
        found: list[LayerRef] = []
        refs = self.layers()
        for name in names:
            if name == "all-conv":
                found.extend(r for r in self.conv_layers() if _spatial(r.output_shape))
                continue
            if name == "auto":
                found.append(self.default_cam_layer())
                continue
            matches = [r for r in refs if r.name == name] or [r for r in refs if r.path[-1] == name]
            if not matches:
                known = ", ".join(r.name for r in self.conv_layers()) or "(none)"
                raise UsageError(f"layer {name!r} not found or not spatial; conv layers: {known}")
            found.append(matches[0])
        unique = {r.path: r for r in found}
        return list(unique.values())

    def _tap(self, refs: Sequence[LayerRef]) -> Any:
        key = tuple(r.name for r in refs)
        if key not in self._taps:
            tf = self._tf
            tapped = tap_model(self.explained, [r.path for r in refs])
            n = len(refs)

            def fwd(x):
                outs = tapped(x, training=False)
                return [tf.cast(a, tf.float32) for a in outs[:n]]

            def grad(x, w):
                with tf.GradientTape() as tape:
                    outs = tapped(x, training=False)
                    acts = list(outs[:n])
                    scores = tf.reduce_sum(tf.cast(outs[n], tf.float32) * w, axis=self._axes)
                grads = tape.gradient(scores, acts)
                return scores, [tf.cast(a, tf.float32) for a in acts], [tf.cast(g, tf.float32) for g in grads]

            self._taps[key] = (
                tf.function(fwd, input_signature=[self._x_spec]),
                tf.function(grad, input_signature=[self._x_spec, self._w_spec]),
            )
        return self._taps[key]

    def activations(self, x: np.ndarray, refs: Sequence[LayerRef]) -> list[np.ndarray]:
        """Activations (n, h, w, k) at each layer in ``refs``."""
        fwd, _ = self._tap(refs)
        parts: list[list[np.ndarray]] = [[] for _ in refs]
        for _, _, chunk in self._chunks(Stack.of(x)):
            for i, a in enumerate(fwd(chunk)):
                parts[i].append(a.numpy())
        return [np.concatenate(p) for p in parts]

    def activation_gradients(self, x: np.ndarray, target: Any, refs: Sequence[LayerRef], rows: Any = None) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """Scores (n,), activations and gradients of the score w.r.t. them, per layer."""
        _, grad = self._tap(refs)
        stack = _as_stack(x, rows)
        scores, acts, grads = [], [[] for _ in refs], [[] for _ in refs]
        for start, stop, chunk in self._chunks(stack):
            w = self._target_weights(target, stack.rows[start:stop])
            s, a, g = grad(chunk, w)
            scores.append(s.numpy())
            for i in range(len(refs)):
                acts[i].append(a[i].numpy())
                grads[i].append(g[i].numpy())
        return np.concatenate(scores), [np.concatenate(a) for a in acts], [np.concatenate(g) for g in grads]


def logit_model(model: Any) -> Any:
    """``model`` with its output layer's softmax / sigmoid taken off (same weights, shared).

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
        f"--score logit needs a model whose output layer applies softmax or sigmoid; "
        f"its last layer {last.name!r} ({kind}) does not"
    )


def _spatial(shape: tuple[Any, ...]) -> bool:
    return len(shape) == 4 and (shape[1] or 0) > 1 and (shape[2] or 0) > 1


def _is_model(layer: Any) -> bool:
    import keras

    return isinstance(layer, keras.Model)


def _output_shape(layer: Any) -> tuple[Any, ...]:
    try:
        out = layer.output
    except (AttributeError, ValueError):
        return ()
    if isinstance(out, (list, tuple)):
        return ()
    return tuple(out.shape)


def _walk(model: Any, prefix: tuple[str, ...]) -> Iterator[LayerRef]:
    """Layers with 4-D outputs in graph order, recursing into nested models."""
    for layer in model.layers:
        path = (*prefix, layer.name)
        if _is_model(layer):
            yield from _walk(layer, path)
            continue
        shape = _output_shape(layer)
        if len(shape) == 4 and type(layer).__name__ != "InputLayer":
            yield LayerRef(path, layer, shape)


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

    if not (_is_model(layer) and _contains(prefix, wanted)):
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
            if _is_model(op) and _contains(path, wanted) and len(args) == 1 and not any(v is not None for v in kwargs.values()):
                return _call_tapped(op, args[0], path, wanted, taps)
            y = op(*args, **kwargs)
            if path in wanted:
                taps[path] = y
            return y

        return call

    return layer._run_through_graph(x, operation_fn=operation_fn)
