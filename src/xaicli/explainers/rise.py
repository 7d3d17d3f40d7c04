"""RISE: Petsiuk et al., "RISE: Randomized Input Sampling for Explanation of Black-box Models",
BMVC 2018.

``S(x) = 1 / (N p) * sum_i score(x * M_i) M_i`` over ``N`` random masks, as in the paper (Xplique
normalises differently, and shifts all the masks of a batch by one offset). Each mask: an ``s x s``
binary grid whose cells are kept with probability ``p``, upsampled bilinearly to
``(s + 1) * ceil(H / s)`` and cropped to ``H x W`` at a random shift *of its own* in
``[0, ceil(H / s)) x [0, ceil(W / s))``.

The grids and shifts are drawn once per run from ``seed`` and reused for every image (upsampled
masks are kept in memory when they fit in 256 MiB, otherwise rebuilt chunk by chunk; the model
sees ``x * M`` blended inside the compiled call, and the weighted sum reuses the chunk's masks).

Parameters: ``n_masks`` (default 4000, the paper's setting for ResNet50), ``grid_size`` s (default
7), ``p`` (default 0.5), ``seed`` (default 0), ``center`` (default true: see below; ``false`` is the
paper's map, shown above its minimum). The masked images are ``x * M`` in model-input units
(masked pixels become 0 after preprocessing, as in the paper's implementation).

``center=true`` subtracts the image's mean masked score from every score first,
``1 / (N p) * sum_i (score_i - mean score) M_i``: the paper's map minus ``mean score * sum_i M_i / (N p)``,
whose expectation is a constant. This control variate removes the share of the map that comes from
where the random masks happened to fall (the same for every image and every model under one seed),
so the map shows what moves the score, and the weight-randomisation check compares the models
rather than the masks. On the shipped faces regression model two seeds give maps that correlate at
0.17 without it and 0.97 with it (docs/metrics.md): it is the default. The centred map is signed
(positive where a pixel's presence raises the score, negative where it lowers it), so it is shown
and scored by magnitude (``display = "abs"``, as Integrated Gradients): on the faces model the
score falls with almost every pixel kept, and the positive part of nearly every map is empty.

Each map comes with its split-half ``reliability`` (the maps of the even and of the odd masks,
correlated and corrected by Spearman-Brown) and its ``cell`` (the grid cell, in pixels).

Sampling stops when the map is stable: masks are drawn in rounds of ``chunk`` (default 250), and an
image stops once its reliability reaches ``reliability`` (default 0.95, after at least two rounds)
or at ``n_masks``, the cap; ``samples`` says how many it took. ``reliability=0`` takes exactly
``n_masks`` masks, the paper's fixed count. The masks are the same either way (a prefix of them).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from xaicli.api import Blend, Explainer, Explanation
from xaicli.errors import UsageError
from xaicli.explainers._common import (
    Rounds,
    check_positive,
    sampling_target,
    split_half_reliability,
    weighted_sum,
)

_CACHE_BYTES = 256 * 2**20


class RISEMasks:
    """N masks for an (H, W) input: grids and shifts drawn once, upsampled on demand."""

    def __init__(self, n: int, grid_size: int, p: float, seed: int, size: tuple[int, int]) -> None:
        self.n, self.s, self.p, self.size = n, grid_size, p, size
        h, w = size
        self.cell = (int(np.ceil(h / grid_size)), int(np.ceil(w / grid_size)))
        # two streams, each filled mask by mask: the first k masks of N are the k masks of a run
        # with N = k (sampling that stops early takes a prefix of the same masks)
        self.grids = (np.random.default_rng([seed, 0]).random((n, grid_size, grid_size)) < p).astype(np.float32)
        self.shifts = np.random.default_rng([seed, 1]).integers(0, self.cell, size=(n, 2))
        self._all = self.build(0, n) if n * h * w * 4 <= _CACHE_BYTES else None

    def build(self, start: int, stop: int) -> np.ndarray:
        import cv2

        if getattr(self, "_all", None) is not None:
            return self._all[start:stop]
        h, w = self.size
        up = ((self.s + 1) * self.cell[0], (self.s + 1) * self.cell[1])
        out = np.empty((stop - start, h, w), np.float32)
        for k, i in enumerate(range(start, stop)):
            big = cv2.resize(self.grids[i], (up[1], up[0]), interpolation=cv2.INTER_LINEAR)
            dy, dx = self.shifts[i]
            out[k] = big[dy : dy + h, dx : dx + w]
        return out

    def round(self, first: int, k: int):
        """``build(start, stop)`` of a stack that repeats masks ``first:first+k`` for each image:
        stack row r takes mask ``first + r % k`` (a chunk may run from one image's last masks into
        the next image's first)."""

        def build(start: int, stop: int) -> np.ndarray:
            parts = []
            while start < stop:
                j = start % k
                end = min(stop, start + k - j)
                parts.append(self.build(first + j, first + j + end - start))
                start = end
            return parts[0] if len(parts) == 1 else np.concatenate(parts)

        return build


class RISE(Explainer):
    """RISE (Petsiuk et al., BMVC 2018): score-weighted sum of random masks, divided by N p."""

    name: ClassVar[str] = "rise"
    needs_scores: ClassVar[bool] = False
    needs_blends: ClassVar[bool] = True
    # centred, the map is a covariance of the score with each pixel's presence: a signed attribution
    # whose two signs both count (on the faces regression model nearly every pixel's is negative, and
    # the positive part is a blank tile)
    display: ClassVar[str] = "abs"

    def __init__(self, n_masks: int = 4000, grid_size: int = 7, p: float = 0.5, seed: int = 0,
                 center: bool | str = True, reliability: float | str | None = 0.95, chunk: int = 250,
                 **params: Any) -> None:
        super().__init__(n_masks=n_masks, grid_size=grid_size, p=p, seed=seed, center=center,
                         reliability=reliability, chunk=chunk, **params)
        self.n_masks = check_positive("n_masks", n_masks)
        self.reliability = sampling_target(reliability)
        self.chunk = check_positive("chunk", chunk)
        self.grid_size = check_positive("grid_size", grid_size)
        self.p = float(p)
        if not 0.0 < self.p <= 1.0:
            raise UsageError(f"p must lie in (0, 1], not {p!r}")
        self.seed = int(seed)
        if isinstance(center, str):
            if center.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise UsageError(f"center must be true or false, not {center!r}")
            center = center.lower() in ("true", "1", "yes")
        self.center = bool(center)
        if not self.center:  # the paper's map carries the mean score everywhere: show it above its minimum
            self.display = "minmax"
        self._masks: RISEMasks | None = None

    def masks(self, size: tuple[int, int]) -> RISEMasks:
        """The run's masks (made on first use, then reused for every image and call)."""
        if self._masks is None or self._masks.size != tuple(size):
            self._masks = RISEMasks(self.n_masks, self.grid_size, self.p, self.seed, tuple(size))
        return self._masks

    def explain(self, runner: Any, images: np.ndarray, target: Any) -> Explanation:
        images = np.asarray(images, np.float32)
        b, size = len(images), runner.input_shape[:2]
        masks = self.masks(size)
        # x * M: masked pixels become 0 in model-input units, as in the paper's implementation
        fills = np.zeros((b, 1, 1, images.shape[-1]), np.float32)
        # the sums of the even and of the odd masks, apart: the map is their sum, and the two
        # half-maps give its split-half reliability at no extra model call
        sal = np.zeros((2, b, *size), np.float64)
        score_sums = np.zeros((2, b), np.float64)
        mask_sums = np.zeros((2, b, *size), np.float64)  # sum_i M_i per half, over the masks each image took
        counts = np.zeros((2, b), np.float64)
        rounds = Rounds(b, self.n_masks, self.reliability, self.chunk)
        for start, stop, active in rounds:
            k = stop - start
            rows = np.repeat(np.arange(len(active)), k)
            blend = Blend(images[active], fills[active], rows, masks.round(start, k))
            taken = np.zeros((2, *size), np.float64)
            for first, last, chunk, scores in runner.iter_blend_scores(blend, target.subset(active)):
                owner = rows[first:last]
                half = (start + np.arange(first, last) % k) % 2
                for j in np.unique(owner):
                    i = active[j]
                    for h in (0, 1):
                        sel = (owner == j) & (half == h)
                        if not sel.any():
                            continue
                        m = chunk[sel]
                        # einsum, not a BLAS product: OpenBLAS's threads spin after each call and took
                        # 25-30 % from TensorFlow's on 2 cores (xaicli.explainers._common.weighted_sum)
                        sal[h, i] += weighted_sum(scores[sel], m)
                        score_sums[h, i] += scores[sel].sum(dtype=np.float64)
                        counts[h, i] += sel.sum()
                        if j == 0:  # every image of the round takes the same masks
                            taken[h] += m.sum(axis=0, dtype=np.float64)
            mask_sums[:, active] += taken[:, None]
            halves = self._maps(sal[:, active], score_sums[:, active], mask_sums[:, active], counts[:, active])
            rounds.report(active, split_half_reliability(halves[0], halves[1]) if stop > 1 else np.full(len(active), np.nan))
        full = self._maps(sal.sum(axis=0)[None], score_sums.sum(axis=0)[None], mask_sums.sum(axis=0)[None],
                          counts.sum(axis=0)[None])[0]
        return Explanation(full, extras={"reliability": rounds.reliability, "samples": rounds.used.astype(np.float64),
                                         "cell": np.full(b, float(np.mean(masks.cell)))})

    def _maps(self, sal: np.ndarray, score_sums: np.ndarray, mask_sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """``1 / (n p) sum_i score_i M_i`` (centred: minus the mean score times ``sum_i M_i``) per
        (half, image), from the running sums."""
        n = np.maximum(counts, 1.0)[:, :, None, None]
        maps = sal.copy()
        if self.center:
            maps -= (score_sums[:, :, None, None] / n) * mask_sums
        return maps / (n * self.p)

