"""Gradient maps: Saliency, Gradient x Input, SmoothGrad (and its squared / variance variants).

* Saliency: Simonyan et al., "Deep Inside Convolutional Networks: Visualising Image
  Classification Models and Saliency Maps", ICLR Workshop 2014: ``max_c |d score / d x_c|``.
* Gradient x Input: Shrikumar et al., "Not Just a Black Box: Learning Important Features Through
  Propagating Activation Differences", 2016: ``sum_c x_c * d score / d x_c``.
* SmoothGrad: Smilkov et al., "SmoothGrad: removing noise by adding noise", 2017: the mean gradient
  over ``n_samples`` copies with Gaussian noise of standard deviation ``noise_level * (max - min)``
  of the image; the map is ``max_c |mean gradient|`` (as Saliency).
* SmoothGrad-Squared: Hooker et al., "A Benchmark for Interpretability Methods in Deep Neural
  Networks", NeurIPS 2019: ``sum_c mean(gradient ** 2)``.
* VarGrad: Adebayo et al., "Local Explanation Methods for Deep Neural Networks Lack Sensitivity
  to Parameter Values", ICLR Workshop 2018: ``sum_c var(gradient)``.

Parameters of the noisy methods: ``n_samples`` (default 500, the cap: the paper's 50 gave maps of
split-half reliability 0.3-0.8 on the shipped chest and faces models; stable maps stop much earlier,
see below), ``noise_level`` (default 0.2, the
upper end of the 10-20 % the SmoothGrad paper recommends), ``seed`` (default 0). The same noise
draws are used for every image of a run, so a map does not depend on how images were batched.
Each map comes with its split-half ``reliability`` (even and odd noise draws, Spearman-Brown); the
draws come in rounds of ``chunk`` (default 10) until it reaches ``reliability`` (default 0.95; 0
for exactly ``n_samples``: ``n_samples=50, reliability=0`` is the paper's setting), with ``n_samples``
the cap; ``samples`` says how many a map took.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np

from xaicli.api import Explainer, Explanation, Stack
from xaicli.explainers._common import (
    Rounds,
    accumulate,
    check_positive,
    sampling_target,
    split_half_reliability,
)

_CACHE_BYTES = 256 * 2**20


class Saliency(Explainer):
    """Vanilla gradient saliency (Simonyan et al., 2014): max over channels of |gradient|."""

    name: ClassVar[str] = "saliency"
    needs_gradients: ClassVar[bool] = True
    needs_scores: ClassVar[bool] = False
    gradient_pass: ClassVar[bool] = True

    def explain(self, runner: Any, images: np.ndarray, target: Any) -> Explanation:
        _, grads = runner.gradients(images, target, np.arange(len(images)))
        return Explanation(np.abs(grads).max(axis=-1))


class GradientXInput(Explainer):
    """Gradient x Input (Shrikumar et al., 2016), summed over channels (signed)."""

    name: ClassVar[str] = "gradient-x-input"
    needs_gradients: ClassVar[bool] = True
    needs_scores: ClassVar[bool] = False
    gradient_pass: ClassVar[bool] = True
    display: ClassVar[str] = "abs"  # signed attributions: both signs count

    def explain(self, runner: Any, images: np.ndarray, target: Any) -> Explanation:
        _, grads = runner.gradients(images, target, np.arange(len(images)))
        return Explanation((grads * images).sum(axis=-1))


class _Noisy(Explainer):
    needs_gradients: ClassVar[bool] = True
    needs_scores: ClassVar[bool] = False

    def __init__(self, n_samples: int = 500, noise_level: float = 0.2, seed: int = 0,
                 reliability: float | str | None = 0.95, chunk: int = 10, **params: Any) -> None:
        super().__init__(n_samples=n_samples, noise_level=noise_level, seed=seed, reliability=reliability,
                         chunk=chunk, **params)
        self.n_samples = check_positive("n_samples", n_samples)
        self.reliability = sampling_target(reliability)
        self.chunk = check_positive("chunk", chunk)
        self.noise_level = check_positive("noise_level", noise_level, integer=False, allow_zero=True)
        self.seed = int(seed)

    def _noise(self, shape: tuple[int, ...]):
        """Noise draw k (standard normal), the same for every image; cached when small."""
        per = int(np.prod(shape)) * 4
        cache = self.n_samples * per <= _CACHE_BYTES
        draws: dict[int, np.ndarray] = {}

        def get(k: int) -> np.ndarray:
            if k in draws:
                return draws[k]
            z = np.random.default_rng([self.seed, k]).standard_normal(shape, dtype=np.float32)
            if cache:
                draws[k] = z
            return z

        return get

    def explain(self, runner: Any, images: np.ndarray, target: Any) -> Explanation:
        """Sums of the gradient and of its square over the even and the odd noisy copies per image
        (the halves give the reliability), drawn in rounds until the map is stable."""
        b = len(images)
        noise = self._noise(images.shape[1:])
        span = images.reshape(b, -1).max(axis=1) - images.reshape(b, -1).min(axis=1)
        sigma = (self.noise_level * np.where(span > 0, span, 1.0)).astype(np.float32)
        sums = np.zeros((2, 2, *images.shape), np.float64)  # half, moment, image
        counts = np.zeros((2, b), np.float64)
        rounds = Rounds(b, self.n_samples, self.reliability, self.chunk)
        for start, stop, active in rounds:
            k = stop - start

            def build(first: int, last: int, active=active, start=start, k=k) -> np.ndarray:
                return np.stack([images[active[j // k]] + sigma[active[j // k]] * noise(start + j % k)
                                 for j in range(first, last)])

            rows = np.repeat(np.arange(len(active)), k)
            for first, last, _, _, grads in runner.iter_gradients(Stack(len(rows), rows, build), target.subset(active)):
                owner = active[rows[first:last]]
                half = (start + np.arange(first, last) % k) % 2
                for h in (0, 1):
                    sel = half == h
                    if sel.any():
                        accumulate(sums[h, 0], owner[sel], grads[sel])
                        accumulate(sums[h, 1], owner[sel], grads[sel].astype(np.float64) ** 2)
                        np.add.at(counts[h], owner[sel], 1)
            n = np.maximum(counts[:, active], 1)[:, :, None, None, None]
            halves = [self.reduce(sums[h, 0, active] / n[h], sums[h, 1, active] / n[h]) for h in (0, 1)]
            rounds.report(active, split_half_reliability(*halves) if stop > 1 else np.full(len(active), np.nan))
        total = np.maximum(counts.sum(axis=0), 1)[:, None, None, None]
        maps = self.reduce(sums[:, 0].sum(axis=0) / total, sums[:, 1].sum(axis=0) / total)
        return Explanation(maps, extras={"reliability": rounds.reliability, "samples": rounds.used.astype(np.float64)})

    @abstractmethod
    def reduce(self, mean: np.ndarray, mean_sq: np.ndarray) -> np.ndarray:
        """The method's map from the mean gradient and mean squared gradient (B, H, W, C)."""


class SmoothGrad(_Noisy):
    """SmoothGrad (Smilkov et al., 2017): the gradient averaged over noisy copies."""

    name: ClassVar[str] = "smoothgrad"

    def reduce(self, mean, mean_sq):
        return np.abs(mean).max(axis=-1)


class SmoothGradSquared(_Noisy):
    """SmoothGrad-Squared (Hooker et al., 2019): the mean squared gradient over noisy copies."""

    name: ClassVar[str] = "smoothgrad-squared"

    def reduce(self, mean, mean_sq):
        return mean_sq.sum(axis=-1)


class VarGrad(_Noisy):
    """VarGrad (Adebayo et al., 2018): the variance of the gradient over noisy copies."""

    name: ClassVar[str] = "vargrad"

    def reduce(self, mean, mean_sq):
        return np.maximum(mean_sq - mean**2, 0.0).sum(axis=-1)
