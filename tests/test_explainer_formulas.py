"""Occlusion, SmoothGrad, SmoothGrad-Squared, VarGrad and Score-CAM with ``max_channels``, each
recomputed from its paper's formula with plain Keras calls and TensorFlow gradients."""

from __future__ import annotations

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from xaicli import plugins
from xaicli.api import ModelInfo
from xaicli.runner import ModelRunner
from xaicli.targets import resolve_target


def _smooth_model(shape=(16, 16, 3), classes=3, seed=7):
    """Softplus and tanh layers: gradients that change with the input (so noise matters)."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape)
    h = keras.layers.Conv2D(4, 3, padding="same", activation="softplus")(inp)
    h = keras.layers.Conv2D(4, 3, padding="same", activation="tanh")(h)
    out = keras.layers.Dense(classes, activation="softmax")(keras.layers.Flatten()(h))
    return keras.Model(inp, out)


def _images(n, shape=(16, 16, 3), seed=1):
    return np.random.default_rng(seed).uniform(0, 1, (n, *shape)).astype(np.float32)


def _target(model, x):
    info = ModelInfo(task="classification", input_shape=tuple(model.inputs[0].shape[1:]))
    return resolve_target(np.asarray(model(x)), info)


def _class_score(model, batch, cls):
    return np.asarray(model(np.asarray(batch, np.float32)))[:, cls].astype(np.float64)


# ---------------------------------------------------------------------------------- occlusion


def _occlusion_by_hand(model, image, cls, patch, starts_y, starts_x, fill):
    """Zeiler & Fergus 2014: each pixel's mean score drop over the patch positions covering it."""
    copies, boxes = [], []
    for y in starts_y:
        for x in starts_x:
            occluded = image.copy()
            occluded[y : y + patch, x : x + patch] = fill
            copies.append(occluded)
            boxes.append((y, x))
    drops = _class_score(model, image[None], cls)[0] - _class_score(model, np.stack(copies), cls)
    total = np.zeros(image.shape[:2])
    count = np.zeros(image.shape[:2])
    for (y, x), drop in zip(boxes, drops, strict=True):
        total[y : y + patch, x : x + patch] += drop
        count[y : y + patch, x : x + patch] += 1
    return total / count


@pytest.mark.parametrize("fill", ["black", "mean", 0.3])
def test_occlusion_equals_the_mean_score_drop_of_the_patches_covering_each_pixel(fill):
    model = _smooth_model()
    x = _images(2)
    runner = ModelRunner(model, batch_size=16, preprocess=lambda im: im * 2.0 - 1.0)  # black = -1 in model units
    maps = plugins.make("explainers", "occlusion", {"patch_size": 5, "stride": 4, "fill": fill}).explain(
        runner, x, _target(model, x)).maps
    starts = [0, 4, 8, 11]  # every 4 px, and a last patch flush with the border (11 + 5 = 16)
    for i in range(2):
        cls = int(np.argmax(model(x[i : i + 1])))
        value = {"black": -1.0, "mean": x[i].mean(axis=(0, 1)), 0.3: 0.3}[fill]
        hand = _occlusion_by_hand(model, x[i], cls, 5, starts, starts, value)
        np.testing.assert_allclose(maps[i], hand, rtol=1e-4, atol=1e-6)
        assert np.abs(hand).max() > 1e-3


def test_occlusion_default_patch_is_a_seventh_of_the_side_with_half_the_stride():
    model = _smooth_model(shape=(21, 14, 3))
    x = _images(1, (21, 14, 3))
    maps = plugins.make("explainers", "occlusion").explain(ModelRunner(model), x, _target(model, x)).maps
    cls = int(np.argmax(model(x)))
    # patch round(14 / 7) = 2, stride 1: every position
    hand = _occlusion_by_hand(model, x[0], cls, 2, range(0, 20), range(0, 13), 0.0)
    np.testing.assert_allclose(maps[0], hand, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------ noisy gradients


def _noisy_gradients(model, image, cls, n, noise_level, seed):
    """The gradients of the class score at x + sigma * z_k, sigma = noise_level * (max - min), with
    the draws z_k xaicli documents (``default_rng([seed, k])``, the same for every image)."""
    sigma = noise_level * (image.max() - image.min())
    z = np.stack([np.random.default_rng([seed, k]).standard_normal(image.shape, dtype=np.float32) for k in range(n)])
    noisy = tf.constant(image[None] + sigma * z)
    with tf.GradientTape() as tape:
        tape.watch(noisy)
        score = model(noisy)[:, cls]
    return tape.gradient(score, noisy).numpy().astype(np.float64)


@pytest.mark.parametrize("name", ["smoothgrad", "smoothgrad-squared", "vargrad"])
def test_noisy_gradient_methods_equal_their_formulas(name):
    """SmoothGrad (Smilkov et al. 2017): max_c |mean_k g_k|; SmoothGrad-Squared (Hooker et al. 2019):
    sum_c mean_k g_k^2; VarGrad (Adebayo et al. 2018): sum_c var_k g_k."""
    model = _smooth_model()
    x = _images(2, seed=3)
    n, level, seed = 12, 0.15, 5
    maps = plugins.make("explainers", name, {"n_samples": n, "noise_level": level, "seed": seed}).explain(
        ModelRunner(model, batch_size=5), x, _target(model, x)).maps
    for i in range(2):
        cls = int(np.argmax(model(x[i : i + 1])))
        g = _noisy_gradients(model, x[i], cls, n, level, seed)
        hand = {"smoothgrad": np.abs(g.mean(axis=0)).max(axis=-1),
                "smoothgrad-squared": (g**2).mean(axis=0).sum(axis=-1),
                "vargrad": g.var(axis=0).sum(axis=-1)}[name]
        np.testing.assert_allclose(maps[i], hand, rtol=2e-4, atol=1e-6 * hand.max())
        assert hand.max() > 0
    if name == "vargrad":  # the variance is not the second moment: the mean gradient is subtracted
        squared = plugins.make("explainers", "smoothgrad-squared", {"n_samples": n, "noise_level": level, "seed": seed})
        second = squared.explain(ModelRunner(model), x, _target(model, x)).maps
        assert (second - maps).min() > 0


# -------------------------------------------------------------------- Score-CAM max_channels


def test_scorecam_max_channels_keeps_the_channels_of_largest_mean_activation():
    """Wang et al. 2020, Algorithm 1 over the ``max_channels`` channels with the largest mean
    activation only: alpha = softmax over those of f(x * s(Up(A_k))) - f(0)."""
    from xaicli.testing import tiny_classifier

    model = tiny_classifier(8, (16, 16, 3), 3)
    x = _images(2, seed=9)
    keep = 3
    maps = plugins.make("explainers", "scorecam", {"layer": "conv2", "max_channels": keep}).explain(
        ModelRunner(model, batch_size=4), x, _target(model, x)).maps
    every = plugins.make("explainers", "scorecam", {"layer": "conv2"}).explain(
        ModelRunner(model), x, _target(model, x)).maps
    pre = keras.Model(model.inputs, model.get_layer("conv2").output)
    for i in range(2):
        cls = int(np.argmax(model(x[i : i + 1])))
        acts = pre(x[i : i + 1]).numpy()[0]  # (8, 8, 6)
        means = acts.mean(axis=(0, 1))
        chosen = sorted(range(acts.shape[-1]), key=lambda k: -means[k])[:keep]
        masks = []
        for k in chosen:
            up = cv2.resize(acts[..., k], (16, 16), interpolation=cv2.INTER_LINEAR)
            masks.append((up - up.min()) / (up.max() - up.min()) if up.max() > up.min() else np.zeros_like(up))
        increase = _class_score(model, np.stack([x[i] * m[..., None] for m in masks]), cls) \
            - _class_score(model, np.zeros_like(x[:1]), cls)[0]
        alpha = np.exp(increase - increase.max())
        alpha /= alpha.sum()
        cam = np.maximum((acts[..., chosen] * alpha).sum(-1), 0).astype(np.float32)
        hand = cv2.resize(cam, (16, 16), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(maps[i], hand, rtol=1e-4, atol=1e-6)
        assert hand.max() > 0
    assert not np.allclose(maps, every, atol=1e-4)  # fewer channels: another map
