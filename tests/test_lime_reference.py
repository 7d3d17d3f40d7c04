"""LIME against its reference, the ``lime`` package (Ribeiro et al., KDD 2016), and each of its
segmentations against scikit-image called directly.

With the same seed, segments, hide colour and kernel, xaicli's vectorised LIME and the package's
``LimeImageExplainer`` draw the same samples and fit the same weighted ridge regression, so their
per-segment weights agree to float32 rounding (xaicli blends the perturbed copies in float32
inside the compiled model call; the package copies pixels). The segmentation function is given to
both explicitly, so the comparison holds whatever xaicli's default segmentation is.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from lime.lime_image import LimeImageExplainer

from xaicli import plugins
from xaicli.api import ModelInfo
from xaicli.runner import ModelRunner
from xaicli.targets import resolve_target

SIZE = 24


def _model():
    """A small classifier whose class scores depend on where things are (Flatten, not pooling),
    so that every segment gets its own, clearly different, weight."""
    keras.utils.set_random_seed(21)
    inp = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(h))
    return keras.Model(inp, out)


def _images(n: int = 2) -> np.ndarray:
    """Pictures of 3 x 3 flat colour blocks (8 x 8 px) with a little noise: slic finds the blocks."""
    rng = np.random.default_rng(5)
    blocks = rng.uniform(0, 1, (n, 3, 3, 3))
    x = np.repeat(np.repeat(blocks, 8, axis=1), 8, axis=2) + rng.normal(0, 0.02, (n, SIZE, SIZE, 3))
    return np.clip(x, 0, 1).astype(np.float32)


def _slic(image: np.ndarray, *_, **__) -> np.ndarray:
    from skimage.segmentation import slic

    labels = slic(np.asarray(image, np.float64), n_segments=12, compactness=10, start_label=0)
    return np.unique(labels, return_inverse=True)[1].reshape(labels.shape)


def _blocks(image: np.ndarray, *_, **__) -> np.ndarray:
    """3 x 4 blocks of 8 x 6 pixels, labelled in raster order."""
    h, w = image.shape[:2]
    return (np.arange(h)[:, None] // 8) * 4 + np.arange(w)[None, :] // 6


def _package_weights(model, image, weights_row, segmentation, hide_color, seed, num_samples):
    """The lime package's explanation of the same target: per-segment weights and R^2."""
    def classifier_fn(batch):  # the xaicli target, score = sum(output * weights), as one "label"
        return (np.asarray(model(np.asarray(batch, np.float32))) * weights_row).sum(axis=1, keepdims=True)

    explainer = LimeImageExplainer(kernel_width=0.25, random_state=seed)
    exp = explainer.explain_instance(image, classifier_fn, labels=(0,), top_labels=None, hide_color=hide_color,
                                     num_samples=num_samples, batch_size=50, segmentation_fn=segmentation,
                                     random_seed=seed)
    segments = exp.segments
    weights = np.zeros(int(segments.max()) + 1)
    for feature, weight in exp.local_exp[0]:
        weights[feature] = weight
    return weights, segments, exp.score


@pytest.mark.parametrize("segmentation", [_slic, _blocks], ids=["slic", "blocks"])
@pytest.mark.parametrize("hide_color", [None, 0.0], ids=["mean-colour", "black"])
def test_lime_equals_the_lime_package(segmentation, hide_color):
    model = _model()
    x = _images()
    info = ModelInfo(task="classification", input_shape=(SIZE, SIZE, 3))
    target = resolve_target(np.asarray(model(x)), info)
    seed, n = 7, 300
    lime = plugins.make("explainers", "lime", {"num_samples": n, "seed": seed, "hide_color": hide_color})
    lime.segments = segmentation  # the same segmentation function as the package gets
    explanation = lime.explain(ModelRunner(model, batch_size=64), x, target)
    for i in range(len(x)):
        weights, segments, r2 = _package_weights(model, x[i], target.weights[i], segmentation, hide_color, seed, n)
        assert len(weights) > 6 and np.ptp(weights) > 1e-3  # segments that matter, differently
        expected = weights[segments].astype(np.float32)  # each segment painted with its own weight
        np.testing.assert_allclose(explanation.maps[i], expected, rtol=1e-3, atol=1e-4 * np.abs(weights).max())
        assert explanation.extras["lime_r2"][i] == pytest.approx(r2, abs=1e-5)


# ------------------------------------------------------------------------------ segmentations


def _scaled_rgb(image: np.ndarray) -> np.ndarray:
    """What xaicli segments: the model-input image min-max scaled to [0, 1], grey repeated to RGB."""
    lo, hi = image.min(), image.max()
    rgb = (image - lo) / (hi - lo)
    return np.repeat(rgb, 3, axis=2).astype(np.float64) if rgb.shape[2] == 1 else rgb.astype(np.float64)


def _relabelled(labels: np.ndarray) -> np.ndarray:
    return np.unique(labels, return_inverse=True)[1].reshape(labels.shape)


def _skimage(name: str, rgb: np.ndarray) -> np.ndarray:
    from skimage import segmentation

    if name == "quickshift":
        # the lime wrapper passes only the parameters scikit-image's quickshift takes: it has no
        # random_seed (its tie-breaking noise comes from its own default rng), so none is given
        return segmentation.quickshift(rgb, kernel_size=4, max_dist=200, ratio=0.2)
    if name == "slic":
        return segmentation.slic(rgb, n_segments=30, compactness=10, start_label=0)
    return segmentation.felzenszwalb(rgb, scale=100, sigma=0.5, min_size=50)


def _cartoon(channels: int) -> np.ndarray:
    """A 32 x 32 picture in model-input units ([-1, 1]) with regions to find, plus noise."""
    rng = np.random.default_rng(11)
    image = np.full((32, 32, channels), -0.6, np.float32)
    image[4:14, 3:20] = 0.7
    image[18:30, 10:28] = 0.1
    if channels == 3:
        image[18:30, 10:28, 0] = 0.9
    return image + rng.normal(0, 0.05, image.shape).astype(np.float32)


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("name", ["quickshift", "slic", "felzenszwalb"])
def test_each_segmentation_is_scikit_image_called_directly(name, channels):
    image = _cartoon(channels)
    seed = 4
    lime = plugins.make("explainers", "lime", {"segmentation": name, "n_segments": 30, "seed": seed})
    labels = lime.segments(image)
    reference = _relabelled(_skimage(name, _scaled_rgb(image)))
    np.testing.assert_array_equal(labels, reference)
    # labels 0..n-1, every one used, covering the image
    n = int(labels.max()) + 1
    assert labels.shape == image.shape[:2] and labels.min() == 0 and n >= 2
    assert set(np.unique(labels)) == set(range(n))


def test_grid_segmentation_layout():
    """grid_size x grid_size cells, raster order; rows split as floor(y * g / h) (the last cell takes
    the remainder when the size does not divide)."""
    lime = plugins.make("explainers", "lime", {"segmentation": "grid", "grid_size": 4})
    labels = lime.segments(np.zeros((10, 7, 1), np.float32))
    row_cell = [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]  # floor(y * 4 / 10)
    col_cell = [0, 0, 1, 1, 2, 2, 3]  # floor(x * 4 / 7)
    expected = np.array([[4 * r + c for c in col_cell] for r in row_cell])
    np.testing.assert_array_equal(labels, expected)
    square = plugins.make("explainers", "lime", {"segmentation": "grid", "grid_size": 2}).segments(np.zeros((4, 4, 3)))
    np.testing.assert_array_equal(square, [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
