"""Turning images as read (float [0, 1], any size, grey or RGB) into a model's input batch.

A model file names its preprocessing (``ModelInfo.preprocessing``); the functions here are the
only place that mapping lives, so ``train``, ``predict`` and ``explain`` feed a model identically.
Explainers work on the preprocessed batch; overlays are drawn on :func:`display_image`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from xaicli.api import ModelInfo
from xaicli.errors import UsageError
from xaicli.io import resize, to_channels


def _unit(x: np.ndarray) -> np.ndarray:
    return x


def _symmetric(x: np.ndarray) -> np.ndarray:
    # MobileNetV2's convention (keras.applications.mobilenet_v2.preprocess_input): [-1, 1].
    return x * 2.0 - 1.0


_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def _caffe(x: np.ndarray) -> np.ndarray:
    # ResNet50's convention (keras.applications.resnet50.preprocess_input): BGR, 0-255, mean-centred.
    if x.shape[-1] != 3:
        return x * 255.0 - float(_CAFFE_MEAN_BGR.mean())
    return x[..., ::-1] * 255.0 - _CAFFE_MEAN_BGR


def _standardize(x: np.ndarray) -> np.ndarray:
    # Per-image zero mean, unit variance. The moments in float64: in float32 the rounding of the
    # mean leaves a flat image a spread of about 1e-7, which the floor turned into a constant -0.09.
    axes = tuple(range(x.ndim - 3, x.ndim))
    x64 = np.asarray(x, np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    std = x64.std(axis=axes, keepdims=True)
    return (x64 - mean) / np.maximum(std, 1e-6)


PREPROCESSORS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "unit": _unit,
    "symmetric": _symmetric,
    "caffe": _caffe,
    "standardize": _standardize,
}


def display_image(image: np.ndarray, info: ModelInfo) -> np.ndarray:
    """The image as the model sees it, before scaling: resized and in the model's colour mode."""
    height, width, channels = info.input_shape
    return to_channels(resize(image, (height, width)), channels).astype(np.float32)


def preprocess(images: Sequence[np.ndarray] | np.ndarray, info: ModelInfo) -> np.ndarray:
    """A float32 batch (N, H, W, C) ready for the model, from images as ``xaicli.io`` reads them."""
    if info.preprocessing not in PREPROCESSORS:
        raise UsageError(
            f"unknown preprocessing {info.preprocessing!r}; choose from {', '.join(PREPROCESSORS)}"
        )
    batch = np.stack([display_image(image, info) for image in images]).astype(np.float32)
    return PREPROCESSORS[info.preprocessing](batch).astype(np.float32)
