"""Every preprocessing mode's values, against keras.applications' own ``preprocess_input`` where the
convention comes from there, TensorFlow's per-image standardisation, and hand formulas."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from xaicli.api import ModelInfo
from xaicli.errors import UsageError
from xaicli.preprocessing import PREPROCESSORS, display_image, preprocess


def _info(mode: str, shape=(6, 5, 3)) -> ModelInfo:
    return ModelInfo(task="classification", input_shape=shape, preprocessing=mode)


def _images(n=3, shape=(6, 5, 3), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, *shape)).astype(np.float32)


def test_every_mode_is_tested_here():
    assert set(PREPROCESSORS) == {"unit", "symmetric", "caffe", "standardize"}


def test_unit_keeps_the_values():
    x = _images()
    np.testing.assert_array_equal(preprocess(list(x), _info("unit")), x)


def test_symmetric_is_mobilenet_v2s_preprocess_input():
    x = _images()
    reference = keras.applications.mobilenet_v2.preprocess_input(x.copy() * 255.0)  # x / 127.5 - 1
    np.testing.assert_allclose(preprocess(list(x), _info("symmetric")), reference, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(preprocess([np.zeros((6, 5, 3)), np.ones((6, 5, 3))], _info("symmetric"))[:, 0, 0],
                               [[-1, -1, -1], [1, 1, 1]])


def test_caffe_is_resnet50s_preprocess_input():
    """RGB -> BGR, 0-255, minus the ImageNet mean (103.939, 116.779, 123.68 in BGR order)."""
    x = _images()
    reference = keras.applications.resnet50.preprocess_input(x.copy() * 255.0)
    np.testing.assert_allclose(preprocess(list(x), _info("caffe")), reference, rtol=1e-5, atol=1e-4)
    red = np.zeros((1, 6, 5, 3), np.float32)
    red[..., 0] = 1.0
    np.testing.assert_allclose(preprocess(list(red), _info("caffe"))[0, 0, 0], [-103.939, -116.779, 255 - 123.68], atol=1e-4)


def test_caffe_on_a_grey_model_subtracts_the_mean_of_the_three_channel_means():
    x = _images(shape=(6, 5, 1))
    expected = x * 255.0 - (103.939 + 116.779 + 123.68) / 3
    np.testing.assert_allclose(preprocess(list(x), _info("caffe", (6, 5, 1))), expected, rtol=1e-6, atol=1e-4)


def test_standardize_is_per_image_zero_mean_unit_variance():
    x = _images()
    x[1] = x[1] * 0.5 + 0.4  # another mean and spread (above TF's floor 1 / sqrt(N) on the std)
    out = preprocess(list(x), _info("standardize"))
    reference = tf.image.per_image_standardization(x).numpy()
    np.testing.assert_allclose(out, reference, rtol=1e-4, atol=1e-5)
    for image, result in zip(x, out, strict=True):  # and by hand, per image over all pixels and channels
        np.testing.assert_allclose(result, (image - image.mean()) / image.std(), rtol=1e-4, atol=1e-5)
    flat = preprocess([np.full((6, 5, 3), 0.4, np.float32)], _info("standardize"))
    np.testing.assert_allclose(flat, 0.0, atol=1e-5)  # no division by a zero spread


def test_display_image_resizes_and_converts_colour_before_scaling():
    """Shrinking by an integer factor averages blocks (area interpolation); grey -> RGB repeats the
    channel; RGB -> grey takes the ITU-R BT.601 luminance."""
    rng = np.random.default_rng(1)
    big = rng.uniform(0, 1, (12, 10, 3)).astype(np.float32)
    small = display_image(big, _info("unit", (6, 5, 3)))
    np.testing.assert_allclose(small, big.reshape(6, 2, 5, 2, 3).mean(axis=(1, 3)), rtol=1e-5, atol=1e-6)
    grey = display_image(big[:6, :5], _info("unit", (6, 5, 1)))
    np.testing.assert_allclose(grey[..., 0], big[:6, :5] @ np.array([0.299, 0.587, 0.114]), rtol=1e-5, atol=1e-6)
    rgb = display_image(big[:6, :5, :1], _info("unit", (6, 5, 3)))
    np.testing.assert_array_equal(rgb, np.repeat(big[:6, :5, :1], 3, axis=2))
    symmetric = preprocess([big], _info("symmetric", (6, 5, 3)))[0]
    np.testing.assert_allclose(symmetric, small * 2 - 1, rtol=1e-5, atol=1e-6)  # resized, then scaled


def test_unknown_preprocessing_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown preprocessing 'imagenet'; choose from unit, symmetric"):
        preprocess([np.zeros((6, 5, 3))], _info("imagenet"))
