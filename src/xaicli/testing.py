"""Checks a plugin's own tests call to prove it honours the contract of :mod:`xaicli.api`, as
scikit-learn's ``check_estimator`` does for estimators::

    from xaicli.testing import check_explainer

    def test_my_explainer_meets_the_contract():
        check_explainer(MyExplainer, n_samples=8)   # fast parameters

Each check builds what it needs (a tiny Keras classifier, images, regions), raises
``AssertionError`` naming what is wrong, and returns what it computed for further assertions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xaicli import api

IMAGES = 9
SHAPE = (16, 16, 3)


def tiny_classifier(seed: int = 0, shape: tuple[int, int, int] = SHAPE, classes: int = 3) -> Any:
    """Two small conv layers (``conv1``, ``conv2``), global pooling and a softmax head."""
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inp)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(classes, activation="softmax")(x))


def _declared(kind: str, cls: type | str) -> type:
    """The plugin class (a registered name is loaded); its declarations checked."""
    from xaicli import plugins

    if isinstance(cls, str):
        cls = plugins.load(kind, cls)
    try:
        plugins._check_declarations(kind, cls)
    except TypeError as exc:
        raise AssertionError(str(exc)) from None
    return cls


class _DeclaredRunner:
    """A runner that refuses the calls an explainer did not declare it makes."""

    GRADIENTS = ("gradients", "iter_gradients", "activation_gradients")
    BLENDS = ("blend_scores", "iter_blend_scores")
    SCORES = ("scores", "iter_scores")
    LAYERS = ("resolve_layers", "activations", "activation_gradients")

    def __init__(self, runner: Any, cls: type) -> None:
        self._runner, self._cls = runner, cls
        self._refused = {
            **dict.fromkeys(() if cls.needs_gradients else self.GRADIENTS, "needs_gradients"),
            **dict.fromkeys(() if cls.needs_blends else self.BLENDS, "needs_blends"),
            **dict.fromkeys(() if cls.needs_scores else self.SCORES, "needs_scores"),
            **dict.fromkeys(() if cls.uses_layers else self.LAYERS, "uses_layers"),
        }

    def __getattr__(self, name: str) -> Any:
        flag = self._refused.get(name)
        if flag is not None:
            raise AssertionError(f"{self._cls.__name__} calls runner.{name} but declares {flag} = False")
        return getattr(self._runner, name)


def check_explainer(cls: type | str, **params: Any) -> np.ndarray:
    """Check an explainer class (or a registered name) with ``params`` (keep them fast):

    declarations valid; only declared runner calls made; an :class:`~xaicli.api.Explanation` (or
    (B, H, W) array) of float32, finite, not all zero; per-image extras of length B; the same maps
    with one image per model call as with 32, and for an image explained alone as inside a batch.
    Returns the maps of the batch.
    """
    from xaicli.runner import ModelRunner
    from xaicli.targets import resolve_target

    cls = _declared("explainers", cls)
    model = tiny_classifier()
    x = np.random.default_rng(1).uniform(0, 1, (IMAGES, *SHAPE)).astype(np.float32)
    target = resolve_target(np.asarray(model(x)), api.ModelInfo(task="classification", input_shape=SHAPE))

    def run(batch_size: int, images: np.ndarray, tgt: Any) -> api.Explanation:
        runner = _DeclaredRunner(ModelRunner(model, batch_size=batch_size), cls)
        result = cls(**params).explain(runner, images, tgt)
        assert isinstance(result, (api.Explanation, np.ndarray)), \
            f"{cls.__name__}.explain returned {type(result).__name__}, not an Explanation"
        return api.Explanation.of(result)

    one = run(1, x, target)
    maps = one.maps
    assert maps.shape == (IMAGES, *SHAPE[:2]), f"maps of shape {maps.shape}, expected {(IMAGES, *SHAPE[:2])}"
    assert np.isfinite(maps).all(), "maps hold NaN or infinite values"
    for key, values in one.extras.items():
        assert values.shape == (IMAGES,), f"extras[{key!r}] has shape {values.shape}, not one value per image"
    for layer, layer_maps in one.layers.items():
        assert layer_maps.shape == maps.shape, f"layer {layer!r} maps have shape {layer_maps.shape}"
    scale = 1e-5 * max(1.0, float(np.abs(maps).max()))
    # 32: several images per call, and perturbation stacks that cut across images
    many = run(32, x, target).maps
    np.testing.assert_allclose(maps, many, rtol=1e-4, atol=scale, err_msg="batch size changes the maps")
    alone = run(8, x[4:5], target.subset([4])).maps
    np.testing.assert_allclose(alone[0], maps[4], rtol=1e-4, atol=scale,
                               err_msg="an image explained alone gets another map than inside a batch")
    assert np.abs(maps).max() > 0, f"{cls.__name__} returned all-zero maps"
    return maps


def check_metric(cls: type | str, **params: Any) -> float:
    """Check a metric class (or a registered name): declarations valid; a float (or NaN) for a map
    with the context it requires; deterministic; the map left unchanged; for a dataset metric an
    accumulator that adds maps and gives a result. Returns the score (per-image metrics)."""
    cls = _declared("metrics", cls)
    metric = cls(**params)
    column = metric.column("Roi")
    assert isinstance(column, str) and column, "column() must give a non-empty name"
    rng = np.random.default_rng(0)
    saliency = rng.random((16, 16)).astype(np.float32)
    if not metric.per_image:
        acc = metric.accumulator()
        for label in ("a", "a", "b"):
            acc.add(rng.random((16, 16)).astype(np.float32), label, label)
        assert acc.result() is not None, "the accumulator gave no result"
        return float("nan")
    region = np.zeros((16, 16), bool)
    region[4:10, 4:10] = True
    image = rng.random((16, 16, 1)).astype(np.float32)
    context = {"region": region, "image": image, "random_saliency": rng.random((16, 16)).astype(np.float32),
               "model_fn": lambda batch: np.asarray(batch, np.float64).reshape(len(batch), -1)[:, :64].mean(axis=1)}
    context = {k: v for k, v in context.items() if k in metric.requires}
    before = saliency.copy()
    value = metric.score(saliency, **context)
    assert isinstance(value, (float, np.floating)), f"score() returned {type(value).__name__}, not a float"
    np.testing.assert_array_equal(saliency, before, err_msg="score() modified the map")
    again = metric.score(saliency, **context)
    assert value == again or (np.isnan(value) and np.isnan(again)), "score() is not deterministic"
    return float(value)


def check_region_source(cls: type | str, spec: str | None = None, image: np.ndarray | None = None,
                        path: str | Path | None = None) -> np.ndarray | None:
    """Check a region source class (or a registered name) made from ``spec``: a boolean mask of the
    image's (H, W), or :class:`~xaicli.api.NoRegion`; a description and a label. Returns the mask."""
    cls = _declared("rois", cls)
    source = cls.from_spec(spec)
    assert isinstance(source, api.RegionSource), "from_spec must return a RegionSource"
    assert isinstance(source.describe(), str) and source.describe(), "describe() must give a non-empty text"
    assert isinstance(source.label, str) and source.label, "label must be a non-empty text"
    image = np.random.default_rng(0).random((24, 20, 3)).astype(np.float32) if image is None else image
    try:
        mask = source.region(Path(path) if path is not None else None, image, None)
    except api.NoRegion:
        return None
    mask = np.asarray(mask)
    assert mask.shape == image.shape[:2], f"region of shape {mask.shape} for an image of {image.shape[:2]}"
    assert mask.dtype == bool, f"region of dtype {mask.dtype}, not bool"
    return mask
