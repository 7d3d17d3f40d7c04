"""Class activation maps: Grad-CAM, Grad-CAM++ and Score-CAM, at one or several conv layers.

* Grad-CAM: Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
  Gradient-based Localization", ICCV 2017. ``ReLU(sum_k alpha_k A_k)`` with ``alpha_k`` the
  spatial mean of d score / d A_k.
* Grad-CAM++: Chattopadhyay et al., "Grad-CAM++: Improved Visual Explanations for Deep
  Convolutional Networks", WACV 2018 (closed form with the exponential-score trick, as
  pytorch-grad-cam implements it).
* Score-CAM: Wang et al., "Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural
  Networks", CVPR Workshops 2020. ``alpha = softmax_k(f(x * s(Up(A_k))) - f(0))`` (Algorithm 1),
  with ``s`` min-max scaling to [0, 1]; a forward pass per channel.

Parameters (all three):

* ``layer`` (default ``None`` = the last spatial conv layer, carried over the BatchNorm /
  activation layers that follow it; found inside nested models too): a layer name, a path
  ``backbone/Conv_1`` into a nested model, ``all-conv``, or a list of these. With several layers the
  map returned is their combination (the mean of the per-layer maps, each scaled to [0, 1]); the
  per-layer maps are in the explanation's ``layers``, as the chest X-ray study read them layer by layer.

Score-CAM only: ``max_channels`` (default ``None`` = all): keep the channels with the largest mean
activation, to bound the cost (one model evaluation per channel and image).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np

from xaicli.api import Blend, Explainer, Explanation
from xaicli.explainers._common import check_positive, upsample


def _normalise(maps: np.ndarray) -> np.ndarray:
    top = maps.reshape(len(maps), -1).max(axis=1)
    top = np.where(top > 0, top, 1.0)
    return maps / top[:, None, None]


class _CAM(Explainer):
    needs_gradients: ClassVar[bool] = True
    needs_scores: ClassVar[bool] = False
    uses_layers: ClassVar[bool] = True

    def __init__(self, layer: str | list[str] | tuple[str, ...] | None = None, **params: Any) -> None:
        super().__init__(layer=layer, **params)
        self.layer = layer

    def layer_names(self) -> list[str] | None:
        if self.layer is None:
            return None
        if isinstance(self.layer, str):
            return [part.strip() for part in self.layer.split(",") if part.strip()]
        return list(self.layer)

    @abstractmethod
    def layer_maps(self, runner: Any, images: np.ndarray, target: Any) -> dict[str, np.ndarray]:
        """Per-layer maps (B, h, w) at each layer's own resolution, before upsampling."""

    def explain(self, runner: Any, images: np.ndarray, target: Any) -> Explanation:
        size = runner.input_shape[:2]
        native = self.layer_maps(runner, images, target)
        # a layer's cell: how many input pixels one of its positions spans (its stride)
        cells = {name: float(np.mean([size[0] / m.shape[1], size[1] / m.shape[2]])) for name, m in native.items()}
        per_layer = {name: upsample(m, size) for name, m in native.items()}
        if len(per_layer) == 1:
            name, maps = next(iter(per_layer.items()))
            return Explanation(maps, extras={"cell": np.full(len(images), cells[name])}, layer=name)
        combined = np.mean([_normalise(m) for m in per_layer.values()], axis=0)
        return Explanation(combined, extras={"cell": np.full(len(images), max(cells.values()))}, layers=per_layer,
                           layer_cells=cells)


class GradCAM(_CAM):
    """Grad-CAM (Selvaraju et al., ICCV 2017): gradient-weighted activations of a conv layer."""

    name: ClassVar[str] = "gradcam"
    gradient_pass: ClassVar[bool] = True

    @staticmethod
    def weights(acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
        return grads.mean(axis=(1, 2))

    def layer_maps(self, runner, images, target):
        refs = runner.resolve_layers(self.layer_names())
        _, acts, grads = runner.activation_gradients(images, target, refs)
        out = {}
        for ref, a, g in zip(refs, acts, grads, strict=True):
            alpha = self.weights(a, g)  # (B, K)
            out[ref.name] = np.maximum(np.einsum("bhwk,bk->bhw", a, alpha), 0.0)
        return out


class GradCAMPlusPlus(GradCAM):
    """Grad-CAM++ (Chattopadhyay et al., WACV 2018): pixel-weighted positive gradients."""

    name: ClassVar[str] = "gradcam++"

    @staticmethod
    def weights(acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
        g2 = grads**2
        g3 = g2 * grads
        sum_a = acts.sum(axis=(1, 2), keepdims=True)
        denom = 2.0 * g2 + sum_a * g3
        aij = np.where(grads != 0, g2 / np.where(denom != 0, denom, 1.0), 0.0)
        return (np.maximum(grads, 0.0) * aij).sum(axis=(1, 2))


class ScoreCAM(_CAM):
    """Score-CAM (Wang et al., CVPRW 2020): channel weights from masked forward passes."""

    name: ClassVar[str] = "scorecam"
    needs_gradients: ClassVar[bool] = False
    needs_scores: ClassVar[bool] = True
    needs_blends: ClassVar[bool] = True

    def __init__(self, layer=None, max_channels: int | None = None, **params: Any) -> None:
        super().__init__(layer=layer, **params)
        self.max_channels = None if max_channels is None else check_positive("max_channels", max_channels)

    def layer_maps(self, runner, images, target):
        refs = runner.resolve_layers(self.layer_names())
        all_acts = runner.activations(images, refs)
        size = runner.input_shape[:2]
        base = runner.scores(np.zeros_like(images), target, np.arange(len(images)))
        out = {}
        for ref, acts in zip(refs, all_acts, strict=True):
            b, h, w, k = acts.shape
            channels = [np.arange(k) for _ in range(b)]
            if self.max_channels is not None and self.max_channels < k:
                channels = [np.sort(np.argsort(-acts[i].mean(axis=(0, 1)), kind="stable")[: self.max_channels]) for i in range(b)]
            counts = [len(c) for c in channels]
            offsets = np.concatenate([[0], np.cumsum(counts)])
            rows = np.repeat(np.arange(b), counts)

            def build(start, stop, acts=acts, channels=channels, offsets=offsets, rows=rows):
                out_chunk = []
                for j in range(start, stop):
                    i = rows[j]
                    ch = channels[i][j - offsets[i]]
                    m = upsample(acts[i, :, :, ch][None], size)[0]
                    lo, hi = m.min(), m.max()
                    out_chunk.append((m - lo) / (hi - lo) if hi > lo else np.zeros_like(m))
                return np.stack(out_chunk)

            # x * s(Up(A_k)), blended in the compiled call (fill 0)
            blend = Blend(images, np.zeros((b, 1, 1, images.shape[-1]), np.float32), rows, build)
            scores = runner.blend_scores(blend, target)
            cams = np.zeros((b, h, w), np.float32)
            for i in range(b):
                # Algorithm 1 of the paper: the increases of confidence, softmax-normalised over
                # the channels (without it, a target every masked copy lowers, such as an age
                # regressed from part of a face, leaves nothing after the ReLU).
                increase = scores[offsets[i] : offsets[i + 1]].astype(np.float64) - base[i]
                alpha = np.exp(increase - increase.max())
                alpha /= alpha.sum()
                cams[i] = np.einsum("hwk,k->hw", acts[i][:, :, channels[i]], alpha)
            out[ref.name] = np.maximum(cams, 0.0)
        return out
