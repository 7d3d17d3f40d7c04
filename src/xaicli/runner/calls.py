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
from typing import Any

import numpy as np

from xaicli.api import Blend, LayerRef, Stack
from xaicli.errors import ModelError, UsageError
from xaicli.runner import layers as _layers
from xaicli.runner.graph import logit_model, tap_model
from xaicli.runner.precision import check as check_precision
from xaicli.runner.shared import SharedPass

DEFAULT_BATCH_SIZE = 16
SCORES = ("probability", "logit")
#: build the next chunk of a stack in a worker thread while the model runs the current one
PREFETCH = True


def _as_stack(x: np.ndarray | Stack, rows: Sequence[int] | np.ndarray | None) -> Stack:
    if isinstance(x, Stack):
        return x
    return Stack.of(x, rows)


class ModelRunner:
    """Batched, compiled calls of one Keras model.

    ``batch_size``: images or perturbations per model call (memory is bounded by it).
    ``preprocess``: maps images in [0, 1] to model inputs (used by explainers whose baselines are
    defined in image space: black, white, noise); identity when not given.
    ``score``: what the explainers' target weighs: ``probability`` (the model's own outputs) or
    ``logit`` (the pre-activation of a softmax / sigmoid output layer, the class score y^c that
    the Grad-CAM and Grad-CAM++ papers differentiate; tf-keras-vis calls it ReplaceToLinear).
    ``predict`` always returns the model's own outputs (targets are resolved from those), and
    ``scores(..., probability=True)`` scores them (the faithfulness curves score what the model
    outputs, whichever score the explanations weigh). ``cam_layer``: the default layer of the CAM
    methods (a model file's stored one); None: the rule of :func:`xaicli.runner.layers.default_cam_layer`.
    ``input_shape``: (H, W, C) for a model that accepts any size (default: the model's own).
    ``precision``: ``fp32``, ``bf16`` or ``mixed`` for the explanations (``auto`` starts at fp32:
    the pipeline decides with a probe on the first batch; ``xaicli.runner.precision``).
    One runner serves every method, metric and batch of a run.
    """

    def __init__(
        self,
        model: Any,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        preprocess: Callable[[np.ndarray], np.ndarray] | None = None,
        score: str = "probability",
        cam_layer: str | None = None,
        input_shape: Sequence[int] | None = None,
        precision: str = "fp32",
    ) -> None:
        import tensorflow as tf

        if batch_size < 1:
            raise UsageError(f"batch_size must be at least 1, not {batch_size}", parameter="batch_size")
        self.model = model
        self.batch_size = int(batch_size)
        self.preprocess = preprocess or (lambda images: np.asarray(images, dtype=np.float32))
        inputs = getattr(model, "inputs", None)
        if not inputs or len(inputs) != 1:
            raise ModelError("explanations need a model with exactly one image input")
        shape = tuple(inputs[0].shape)
        if len(shape) != 4:
            raise ModelError(f"the model needs a (height, width, channels) image input, not {shape}")
        if input_shape is not None:  # a model taking any size is run at the size given
            if any(have is not None and have != want for have, want in zip(shape[1:], input_shape, strict=True)):
                raise ModelError(f"the model takes inputs of shape {shape[1:]}, not {tuple(input_shape)}")
            shape = (None, *input_shape)
        if any(v is None for v in shape[1:]):
            raise ModelError(f"the model accepts any input size {shape[1:]}; give input_shape (H, W, C)",
                             parameter="input_shape")
        self.input_shape: tuple[int, int, int] = tuple(int(v) for v in shape[1:])  # type: ignore[assignment]
        outputs = model.outputs
        if len(outputs) != 1:
            raise ModelError("explanations need a model with exactly one output")
        self.output_shape: tuple[int, ...] = tuple(int(v) for v in outputs[0].shape[1:])
        if score not in SCORES:
            raise UsageError(f"score must be one of {', '.join(SCORES)}, not {score!r}", parameter="score")
        self.score_kind = score
        self.cam_layer = cam_layer
        #: the model the explainers' scores and gradients come from
        self.explained = logit_model(model) if score == "logit" else model
        self._tf = tf
        self._x_spec = tf.TensorSpec((None, *self.input_shape), tf.float32)
        self._w_spec = tf.TensorSpec((None, *self.output_shape), tf.float32)
        self._axes = list(range(1, 1 + len(self.output_shape)))
        self._base = self.explained
        self.precision = "fp32"
        self._compile()
        if precision not in ("fp32", "auto"):
            self.use_precision(check_precision(precision))
        self._layers: list[LayerRef] | None = None
        #: model calls made, in rows (for tests and the benchmark's cost floor)
        self.rows_evaluated = 0

    def _compile(self) -> None:
        """The compiled calls. Fresh closures per runner (not bound methods): TensorFlow counts
        traces per Python function, and would warn about "retracing" when a process builds several."""
        tf = self._tf
        self._forward = tf.function(lambda x: self._forward_py(x), input_signature=[self._x_spec])
        self._score = tf.function(lambda x, w: self._score_py(x, w), input_signature=[self._x_spec, self._w_spec])
        self._grad = tf.function(lambda x, w: self._grad_py(x, w), input_signature=[self._x_spec, self._w_spec])
        self._score_model = self._score if self.explained is self.model else tf.function(
            lambda x, w: self._score_model_py(x, w), input_signature=[self._x_spec, self._w_spec])
        mask_spec = tf.TensorSpec((None, *self.input_shape[:2]), tf.float32)
        rows_spec = tf.TensorSpec((None,), tf.int32)
        self._blend = tf.function(lambda images, fills, rows, masks, w: self._blend_py(images, fills, rows, masks, w),
                                  input_signature=[self._x_spec, self._x_spec, rows_spec, mask_spec, self._w_spec])
        self._taps = {}
        self.shared = SharedPass()

    def use_precision(self, precision: str) -> None:
        """Explain with the model in ``precision`` (``xaicli.runner.precision``): predictions and
        the faithfulness scores stay on the float32 model. Recompiles the calls."""
        from xaicli.runner.precision import reduced

        if precision == self.precision:
            return
        self.explained = self._base if precision == "fp32" else reduced(self._base, precision)
        self.precision = precision
        self._compile()

    # -------------------------------------------------------------- compiled bodies

    def _out(self, model: Any, x: Any) -> Any:
        return self._tf.cast(model(x, training=False), self._tf.float32)

    def _forward_py(self, x):
        return self._out(self.model, x)

    def _score_py(self, x, w):
        return self._tf.reduce_sum(self._out(self.explained, x) * w, axis=self._axes)

    def _score_model_py(self, x, w):
        return self._tf.reduce_sum(self._out(self.model, x) * w, axis=self._axes)

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

    def iter_scores(self, x: np.ndarray | Stack, target: Any, rows: Any = None, *,
                    probability: bool = False) -> Iterator[tuple[int, int, np.ndarray]]:
        """(start, stop, target scores) per chunk; row i of ``x`` scores image ``rows[i]``'s target.
        ``probability``: score the model's own outputs even where the runner explains logits."""
        stack = _as_stack(x, rows)
        score = self._score_model if probability else self._score
        for start, stop, chunk in self._chunks(stack):
            if hasattr(target, "weights_for"):
                w = self._weights(target, stack.rows[start:stop])
                yield start, stop, score(chunk, w).numpy()
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

    def scores(self, x: np.ndarray | Stack, target: Any, rows: Any = None, *, probability: bool = False) -> np.ndarray:
        """Target scores (n,) of every row of ``x`` (see :meth:`iter_scores`)."""
        cached = self.shared.scores(x, target, rows, probability, self.explained is self.model)
        if cached is not None:
            return cached
        parts = [s for _, _, s in self.iter_scores(x, target, rows, probability=probability)]
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
        cached = self.shared.gradients(x, target, rows)
        if cached is not None:
            return cached
        scores, grads = [], []
        for _, _, _, s, g in self.iter_gradients(x, target, rows):
            scores.append(s)
            grads.append(g)
        return np.concatenate(scores), np.concatenate(grads)

    def _target_weights(self, target: Any, rows: np.ndarray) -> np.ndarray:
        if not hasattr(target, "weights_for"):
            raise UsageError(
                f"target {type(target).__name__} has no output weights; gradient methods need a "
                "xaicli.api.Target (linear in the model output)", parameter="target",
            )
        return self._weights(target, rows)

    def trace(self, *, scores: bool = False, gradients: bool = False, blends: bool = False,
              layers: Sequence[Sequence[LayerRef]] = (), probability: bool = False) -> None:
        """Trace the compiled calls once on one row, ahead of any timing: tracing costs 0.2-3 s
        per function the first time, and would otherwise be charged to whichever method ran first."""
        x = np.zeros((1, *self.input_shape), np.float32)
        w = np.zeros((1, *self.output_shape), np.float32)
        self._forward(x)
        if scores:
            self._score(x, w)
        if probability:
            self._score_model(x, w)
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
            self._layers = list(_layers.walk(self.model))
        return self._layers

    def conv_layers(self) -> list[LayerRef]:
        return [ref for ref in self.layers() if _layers.is_conv(ref)]

    def default_cam_layer(self) -> LayerRef:
        """The model file's stored CAM layer if it has one, else the rule of
        :func:`xaicli.runner.layers.default_cam_layer`."""
        if self.cam_layer:
            try:
                return _layers.resolve(self.layers(), [self.cam_layer], None)[0]
            except UsageError:
                raise ModelError(f"the model's stored CAM layer {self.cam_layer!r} is not a spatial layer "
                                 "of the model") from None
        return _layers.default_cam_layer(self.model, self.layers())

    def resolve_layers(self, names: Sequence[str] | str | None) -> list[LayerRef]:
        """Layer references from names: None/"auto" (the default CAM layer), "all-conv", names or paths."""
        if names is None or isinstance(names, str):
            names = [names] if names else []
        names = [n for n in names if n]
        if not names or names == ["auto"]:
            return [self.default_cam_layer()]
        default = self.default_cam_layer() if "auto" in names else None
        return _layers.resolve(self.layers(), names, default)

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
        cached = self.shared.activation_gradients(x, target, refs, rows)
        if cached is not None:
            return cached
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
