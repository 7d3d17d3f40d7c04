"""Shared passes: the evaluations several methods need, made once per batch.

Grad-CAM, Grad-CAM++, Saliency and Gradient x Input each need one forward and one backward pass of
the batch itself -- the CAM family the activations and gradients at their layers, the gradient
methods the gradient at the input. One backward pass from the target score yields all of them at
once (the gradient w.r.t. a layer is on the way to the gradient w.r.t. the input), so the pipeline
computes it once (:meth:`SharedPass.compute`) and the runner serves every such call for the same
batch and target from it. The target scores of the batch (from the prediction's forward pass, or
from this one) are served the same way, to the methods that score the unperturbed images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from xaicli.api import LayerRef, Stack


class SharedPass:
    """The evaluations of one batch, kept until :meth:`clear` (the next batch)."""

    def __init__(self) -> None:
        self.x: Any = None
        self.target: Any = None
        self.refs: tuple[str, ...] = ()
        self.values: dict[str, Any] = {}
        self._functions: dict[tuple[str, ...], Any] = {}

    def clear(self) -> None:
        self.x, self.target, self.refs, self.values = None, None, (), {}

    def _fused(self, runner: Any, refs: Sequence[LayerRef]) -> Any:
        """forward + one backward: scores, activations and their gradients at ``refs``, input gradient."""
        key = tuple(r.name for r in refs)
        if key not in self._functions:
            import tensorflow as tf

            from xaicli.runner.graph import tap_model

            tapped = tap_model(runner.explained, [r.path for r in refs])
            n = len(refs)

            def fused(x, w):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    outs = tapped(x, training=False)
                    acts = list(outs[:n])
                    scores = tf.reduce_sum(tf.cast(outs[n], tf.float32) * w, axis=runner._axes)
                grads = tape.gradient(scores, [*acts, x])
                return (scores, [tf.cast(a, tf.float32) for a in acts],
                        [tf.cast(g, tf.float32) for g in grads[:n]], tf.cast(grads[n], tf.float32))

            self._functions[key] = tf.function(fused, input_signature=[runner._x_spec, runner._w_spec])
        return self._functions[key]

    def trace(self, runner: Any, refs: Sequence[LayerRef]) -> None:
        x = np.zeros((1, *runner.input_shape), np.float32)
        self._fused(runner, refs)(x, np.zeros((1, *runner.output_shape), np.float32))

    def compute(self, runner: Any, x: np.ndarray, target: Any, refs: Sequence[LayerRef]) -> None:
        """The one pass for batch ``x`` (every row its own target row), in chunks of the batch size."""
        fused = self._fused(runner, refs)
        scores, grads_x = [], []
        acts: list[list[np.ndarray]] = [[] for _ in refs]
        grads: list[list[np.ndarray]] = [[] for _ in refs]
        stack = Stack.of(x)
        for start, stop, chunk in runner._chunks(stack):
            s, a, g, gx = fused(chunk, runner._target_weights(target, stack.rows[start:stop]))
            scores.append(s.numpy())
            grads_x.append(gx.numpy())
            for i in range(len(refs)):
                acts[i].append(a[i].numpy())
                grads[i].append(g[i].numpy())
        self.x, self.target, self.refs = x, target, tuple(r.name for r in refs)
        self.values = {"explained": np.concatenate(scores), "input": np.concatenate(grads_x),
                       "acts": [np.concatenate(a) for a in acts], "grads": [np.concatenate(g) for g in grads]}

    def remember_scores(self, x: np.ndarray, target: Any, scores: np.ndarray) -> None:
        """The batch's target scores on the model's own outputs, from the prediction's forward pass."""
        self.x, self.target, self.refs = x, target, ()
        self.values = {"model": np.asarray(scores, np.float32)}

    def _serves(self, x: Any, target: Any, rows: Any) -> bool:
        if self.x is None or x is not self.x or target is not self.target:
            return False
        return rows is None or np.array_equal(np.asarray(rows), np.arange(len(self.x)))

    def gradients(self, x: Any, target: Any, rows: Any) -> tuple[np.ndarray, np.ndarray] | None:
        if self._serves(x, target, rows) and "input" in self.values:
            return self.values["explained"], self.values["input"]
        return None

    def activation_gradients(self, x: Any, target: Any, refs: Sequence[LayerRef], rows: Any
                             ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]] | None:
        names = [r.name for r in refs]
        if not (self._serves(x, target, rows) and "acts" in self.values and set(names) <= set(self.refs)):
            return None
        index = [self.refs.index(n) for n in names]
        return (self.values["explained"], [self.values["acts"][i] for i in index],
                [self.values["grads"][i] for i in index])

    def scores(self, x: Any, target: Any, rows: Any, probability: bool, same_model: bool) -> np.ndarray | None:
        """The batch's scores of the explained model (or, ``probability``, of the model's own
        outputs); ``same_model``: the two are one model."""
        if not self._serves(x, target, rows):
            return None
        wanted = ("model",) if probability else ("explained",)
        if same_model:
            wanted = ("explained", "model")
        return next((self.values[k] for k in wanted if k in self.values), None)
