"""Faithfulness: deletion and insertion curves (Petsiuk, Das & Saenko, "RISE: Randomized Input
Sampling for Explanation of Black-box Models", BMVC 2018, section 4.1).

Pixels are ranked by decreasing saliency (non-negative map, see ``xaicli.metrics``; ties broken
by a seeded random order, so a flat map behaves like a random one). In ``steps`` equal steps:

* **deletion** starts from the image and replaces the top-ranked pixels with a baseline. A faithful
  map makes the target score drop fast: *lower* AUC is better;
* **insertion** starts from a baseline canvas (a Gaussian-blurred copy of the image, as in the
  paper) and puts back the top-ranked pixels of the image: *higher* AUC is better.

Deletion's baseline defaults to the *blurred* image too. The paper's reference code deletes to
zero *after ImageNet normalisation*, i.e. to the mean colour, not to black (``mean`` here is the
closest: the image's mean colour). Black pixels scattered over an image are themselves a strong,
out-of-distribution feature (on the chest sample data they look like a cavity's dark centre and
*raise* some class scores), so every map, random or not, gets about the same black-deletion AUC;
blurring removes the information a pixel carries without drawing a new pattern. ``black``,
``white`` and ``mean`` remain available.

The curve is the target score after each step, for fractions 0, 1/steps, ..., 1 of the pixels;
AUC is its trapezoidal area over [0, 1], in the target's own units (a class probability for a
softmax classifier, the output value for regression). Cost: ``steps + 1`` model calls per map,
made in batches of ``batch_size``.

``model_fn`` maps a float32 batch (N, H, W, C) of images as the model sees them, before scaling
(``xaicli.preprocessing.display_image``), to N target scores; the engine builds it from the model
and the target fixed on the unperturbed image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from xaicli.errors import UsageError
from xaicli.metrics import MapMetric, nonnegative

BASELINES = ("black", "white", "mean", "blur")


def baseline_image(image: np.ndarray, kind: str, blur_sigma: float) -> np.ndarray:
    """The canvas pixels are taken from (deletion) or put onto (insertion)."""
    if kind == "black":
        return np.zeros_like(image)
    if kind == "white":
        return np.ones_like(image)
    if kind == "mean":
        return np.broadcast_to(image.mean(axis=(0, 1), keepdims=True), image.shape).copy()
    if kind == "blur":
        import cv2

        blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=float(blur_sigma), borderType=cv2.BORDER_REFLECT)
        return blurred.reshape(image.shape).astype(np.float32)
    raise UsageError(f"unknown baseline {kind!r}; choose from {', '.join(BASELINES)}")


def ranking(mass: np.ndarray, seed: int) -> np.ndarray:
    """Flat pixel indices by decreasing mass; ties in a seeded random order."""
    rng = np.random.default_rng(seed)
    tiebreak = rng.random(mass.size)
    # lexsort sorts by the last key first: mass descending, then the random key.
    return np.lexsort((tiebreak, -mass.ravel()))


def perturbed(
    image: np.ndarray,
    mass: np.ndarray,
    *,
    mode: str,
    baseline: str,
    steps: int,
    blur_sigma: float,
    seed: int,
) -> np.ndarray:
    """The ``steps + 1`` images of a curve: after 0..steps steps of deleting (``mode="deletion"``)
    or inserting pixels by decreasing mass, (steps + 1, H, W, C) float32."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[:, :, None]
    height, width, channels = image.shape
    if mass.shape != (height, width):
        from xaicli.io import resize

        mass = resize(mass.astype(np.float32), (height, width), interpolation="linear").astype(np.float64)
    order = ranking(mass, seed)
    base = baseline_image(image, baseline, blur_sigma)
    start, source = (image, base) if mode == "deletion" else (base, image)
    flat_start = start.reshape(-1, channels)
    flat_source = source.reshape(-1, channels)
    total = height * width
    counts = [int(np.ceil(k * total / steps)) for k in range(steps + 1)]
    batch = np.empty((len(counts), total, channels), dtype=np.float32)
    for row, count in enumerate(counts):
        batch[row] = flat_start
        changed = order[:count]
        batch[row, changed] = flat_source[changed]
    return batch.reshape(len(counts), height, width, channels)


def curve(image: np.ndarray, mass: np.ndarray, model_fn: Callable[[np.ndarray], Any], *, mode: str, baseline: str,
          steps: int, blur_sigma: float, batch_size: int, seed: int) -> np.ndarray:
    """Target scores after 0..steps steps of deleting (``mode="deletion"``) or inserting pixels."""
    stack = perturbed(image, mass, mode=mode, baseline=baseline, steps=steps, blur_sigma=blur_sigma, seed=seed)
    scores = [np.asarray(model_fn(stack[i : i + batch_size]), dtype=np.float64).reshape(-1)
              for i in range(0, len(stack), batch_size)]
    return np.concatenate(scores)


def auc(values: np.ndarray) -> float:
    """Trapezoidal area under a curve sampled at equal steps over [0, 1]."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return float(values.mean()) if values.size else float("nan")
    return float(((values[:-1] + values[1:]) / 2.0).mean())


class _Faithfulness(MapMetric):
    mode: ClassVar[str] = ""
    default_baseline: ClassVar[str] = ""
    requires = ("image", "model_fn")

    def __init__(
        self,
        normalization: str = "positive",
        steps: int = 50,
        baseline: str | None = None,
        blur_sigma: float = 5.0,
        batch_size: int = 64,
        seed: int = 0,
        **params: Any,
    ) -> None:
        super().__init__(normalization, **params)
        baseline = baseline or self.default_baseline
        if baseline not in BASELINES:
            raise UsageError(f"unknown {self.name} baseline {baseline!r}; choose from {', '.join(BASELINES)}")
        if int(steps) < 1:
            raise UsageError(f"{self.name} steps must be >= 1, not {steps}")
        if float(blur_sigma) <= 0:
            raise UsageError(f"{self.name} blur_sigma must be > 0, not {blur_sigma}")
        if int(batch_size) < 1:
            raise UsageError(f"{self.name} batch_size must be >= 1, not {batch_size}")
        self.steps = int(steps)
        self.baseline = baseline
        self.blur_sigma = float(blur_sigma)
        self.batch_size = int(batch_size)
        self.seed = int(seed)

    def curve(self, saliency: np.ndarray, **context: Any) -> np.ndarray:
        """The score after each of the ``steps`` steps (``steps + 1`` values)."""
        return curve(
            self._context(context, "image"),
            nonnegative(saliency, self.normalization),
            self._context(context, "model_fn"),
            mode=self.mode,
            baseline=self.baseline,
            steps=self.steps,
            blur_sigma=self.blur_sigma,
            batch_size=self.batch_size,
            seed=self.seed,
        )

    def score(self, saliency: np.ndarray, **context: Any) -> float:
        return auc(self.curve(saliency, **context))

    def curves_many(self, saliencies: list[np.ndarray], **context: Any) -> list[tuple[float, np.ndarray]]:
        """The AUC and curve of several maps of one image (every method's, the random one) from one
        batched model call: the curves' images stacked, so no chunk is left part-empty per map."""
        image, model_fn = self._context(context, "image"), self._context(context, "model_fn")
        stacks = [perturbed(image, nonnegative(s, self.normalization), mode=self.mode, baseline=self.baseline,
                            steps=self.steps, blur_sigma=self.blur_sigma, seed=self.seed) for s in saliencies]
        if not stacks:
            return []
        scores = np.asarray(model_fn(np.concatenate(stacks)), dtype=np.float64).reshape(len(stacks), -1)
        return [(auc(row), row) for row in scores]

    def score_many(self, saliencies: list[np.ndarray], **context: Any) -> list[float]:
        """The AUCs of several maps of one image, from one batched model call (:meth:`curves_many`)."""
        return [value for value, _ in self.curves_many(saliencies, **context)]

    def score_curve(self, saliency: np.ndarray, **context: Any) -> tuple[float, np.ndarray]:
        """The AUC and the curve it is the area of (a run's mean curves are drawn in its report)."""
        values = self.curve(saliency, **context)
        return auc(values), values


class Deletion(_Faithfulness):
    """Deletion AUC (RISE paper): remove pixels by decreasing saliency; lower is better.

    Parameters: ``steps`` (50), ``baseline`` the removed pixels take (``blur`` by default, see the
    module docstring; ``black``, ``white``, ``mean``), ``blur_sigma`` (5 px, as the paper's 11 px
    kernel at 224 px), ``batch_size`` (64 perturbed images per model call), ``seed`` (tie order).
    """

    name = "deletion"
    label = "Deletion"
    mode = "deletion"
    default_baseline = "blur"
    higher_is_better = False


class Insertion(_Faithfulness):
    """Insertion AUC (RISE paper): insert pixels by decreasing saliency; higher is better.

    Parameters as :class:`Deletion`; the canvas defaults to ``blur`` (Gaussian, sigma 5 px), as the
    paper's blurred starting image.
    """

    name = "insertion"
    label = "Insertion"
    mode = "insertion"
    default_baseline = "blur"
    higher_is_better = True
