"""Integrated Gradients: Sundararajan et al., "Axiomatic Attribution for Deep Networks", ICML 2017.

``IG_i(x) = (x_i - x'_i) * integral_0^1 d score(x' + a (x - x')) / d x_i da``, summed over channels
(which keeps completeness: the map sums to ``score(x) - score(x')``). The integral is a quadrature
over ``steps`` points; the *completeness gap* ``(sum of attributions - (score(x) - score(x'))) /
|score(x) - score(x')|`` is reported with every map (the explanation's ``completeness_gap``) so a user sees
when more steps are needed.

Parameters:

* ``steps`` (default 50): quadrature points (model forward + backward passes per image);
* ``baseline`` (default ``black``): ``black`` (image of zeros before preprocessing), ``white``,
  ``blur`` (the image under a Gaussian blur of ``blur_sigma``, default 5 px), ``noise`` (uniform
  noise in [0, 1], seeded by ``seed``, default 0), or the path of an image file (resized to the
  model input);
* ``method`` (default ``gauss-legendre``): ``gauss-legendre``, ``riemann-left``, ``riemann-right``,
  ``riemann-middle`` or ``riemann-trapezoid``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from xaicli.api import Explainer, Explanation, Stack
from xaicli.errors import UsageError
from xaicli.explainers._common import accumulate, check_choice, check_positive

METHODS = ("gauss-legendre", "riemann-left", "riemann-right", "riemann-middle", "riemann-trapezoid")
BASELINES = ("black", "white", "blur", "noise")


def quadrature(method: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes in [0, 1] and weights summing to 1 for integrating over the path."""
    if method == "gauss-legendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return (nodes + 1.0) / 2.0, weights / 2.0
    if method == "riemann-trapezoid":
        if steps < 2:
            raise UsageError("riemann-trapezoid needs at least 2 steps")
        nodes = np.linspace(0.0, 1.0, steps)
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2.0
        return nodes, weights
    offset = {"riemann-left": 0.0, "riemann-right": 1.0, "riemann-middle": 0.5}[method]
    return (np.arange(steps) + offset) / steps, np.full(steps, 1.0 / steps)


class IntegratedGradients(Explainer):
    """Integrated Gradients (Sundararajan et al., ICML 2017) with its completeness gap."""

    name: ClassVar[str] = "ig"
    needs_gradients: ClassVar[bool] = True
    display: ClassVar[str] = "abs"  # signed attributions: both signs count

    def __init__(
        self,
        steps: int = 50,
        baseline: str = "black",
        method: str = "gauss-legendre",
        blur_sigma: float = 5.0,
        seed: int = 0,
        **params: Any,
    ) -> None:
        super().__init__(steps=steps, baseline=baseline, method=method, blur_sigma=blur_sigma, seed=seed, **params)
        self.steps = check_positive("steps", steps)
        self.method = check_choice("method", method, METHODS)
        self.baseline = str(baseline)
        if self.baseline not in BASELINES and not Path(self.baseline).is_file():
            raise UsageError(f"baseline must be one of {', '.join(BASELINES)} or an image file; {baseline!r} is neither")
        self.blur_sigma = check_positive("blur_sigma", blur_sigma, integer=False)
        self.seed = int(seed)
        self.nodes, self.weights = quadrature(self.method, self.steps)

    def baselines(self, runner: Any, images: np.ndarray) -> np.ndarray:
        h, w, c = runner.input_shape
        if self.baseline == "black":
            return np.broadcast_to(runner.preprocess(np.zeros((1, h, w, c), np.float32)), images.shape).copy()
        if self.baseline == "white":
            return np.broadcast_to(runner.preprocess(np.ones((1, h, w, c), np.float32)), images.shape).copy()
        if self.baseline == "noise":
            noise = np.random.default_rng(self.seed).uniform(0.0, 1.0, (1, h, w, c)).astype(np.float32)
            return np.broadcast_to(runner.preprocess(noise), images.shape).copy()
        if self.baseline == "blur":
            import cv2

            return np.stack([
                cv2.GaussianBlur(img, (0, 0), self.blur_sigma).reshape(img.shape) for img in images
            ]).astype(np.float32)
        from xaicli.io import read_image, resize, to_channels

        image = to_channels(resize(read_image(self.baseline), (h, w)), c)
        return np.broadcast_to(runner.preprocess(image[None].astype(np.float32)), images.shape).copy()

    def explain(self, runner: Any, images: np.ndarray, target: Any) -> Explanation:
        images = np.asarray(images, np.float32)
        base = self.baselines(runner, images)
        b, n = len(images), self.steps
        alphas = self.nodes.astype(np.float32)
        diff = images - base

        def build(start: int, stop: int) -> np.ndarray:
            return np.stack([base[j // n] + alphas[j % n] * diff[j // n] for j in range(start, stop)])

        rows = np.repeat(np.arange(b), n)
        coef = np.tile(self.weights, b)
        total = np.zeros(images.shape, np.float64)
        for start, stop, _, _, grads in runner.iter_gradients(Stack(b * n, rows, build), target):
            accumulate(total, rows[start:stop], grads, coef[start:stop])
        attributions = (diff * total).sum(axis=-1)
        ends = runner.scores(np.concatenate([images, base]), target, np.concatenate([np.arange(b)] * 2))
        delta = ends[:b].astype(np.float64) - ends[b:]
        gap = attributions.reshape(b, -1).sum(axis=1) - delta
        scale = np.where(np.abs(delta) > 1e-12, np.abs(delta), 1.0)
        return Explanation(attributions, extras={"completeness_gap": gap / scale, "completeness_gap_abs": gap})
