"""Correctness of the explainers: hand formulas, analytic gradients, completeness, planted regions,
the weight-randomisation sanity check, and one contract test over every registered explainer."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from xaicli import plugins
from xaicli.api import ModelInfo
from xaicli.runner import ModelRunner
from xaicli.targets import resolve_target


def make_explainer(name, params=None):
    return plugins.make("explainers", name, params)


# Small settings so that every method runs in well under a second on tiny models.
FAST = {
    "rise": {"n_masks": 64, "grid_size": 4},
    "lime": {"num_samples": 64, "segmentation": "grid", "grid_size": 4},
    "smoothgrad": {"n_samples": 4},
    "smoothgrad-squared": {"n_samples": 4},
    "vargrad": {"n_samples": 4},
    "ig": {"steps": 8},
    "scorecam": {"max_channels": 4},
    "occlusion": {"patch_size": 4, "stride": 4},
}


def _classifier(seed: int = 0, shape=(16, 16, 3), classes: int = 3):
    from xaicli.testing import tiny_classifier

    return tiny_classifier(seed, shape, classes)


def _images(n: int, shape=(16, 16, 3), seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, *shape)).astype(np.float32)


def _target(model, x, task="classification", spec=None):
    info = ModelInfo(task=task, input_shape=tuple(model.inputs[0].shape[1:]))
    return resolve_target(np.asarray(model(x)), info, spec)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a.ravel())).astype(float)
    rb = np.argsort(np.argsort(b.ravel())).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


# ------------------------------------------------------------------ Grad-CAM formula


def _hand_gradcam(acts_fn, head_fn, x, cls, size):
    import cv2

    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        acts = acts_fn(xt)
        tape.watch(acts)
        out = head_fn(acts)
        score = out[:, cls]
    grads = tape.gradient(score, acts).numpy()
    a = acts.numpy()
    alpha = grads.mean(axis=(1, 2))
    cam = np.maximum(np.einsum("bhwk,bk->bhw", a, alpha), 0)
    return np.stack([cv2.resize(c, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for c in cam])


def test_gradcam_equals_hand_formula():
    model = _classifier()
    x = _images(3)
    target = _target(model, x)
    runner = ModelRunner(model, batch_size=2)
    maps = make_explainer("gradcam", {"layer": "conv2"}).explain(runner, x, target).maps
    conv2 = model.get_layer("conv2")
    gap, dense = model.layers[-2], model.layers[-1]
    pre = keras.Model(model.inputs, conv2.output)
    for i in range(3):
        cls = int(np.argmax(model(x[i : i + 1])))
        hand = _hand_gradcam(pre, lambda a: dense(gap(a)), x[i : i + 1], cls, (16, 16))
        np.testing.assert_allclose(maps[i], hand[0], rtol=1e-4, atol=1e-6)
    assert maps.max() > 0


def test_gradcam_on_logits_equals_hand_formula_before_the_softmax():
    """Selvaraju et al. differentiate y^c before the softmax: score="logit" does that."""
    model = _classifier(seed=2)
    x = _images(3, seed=3)
    target = _target(model, x)
    runner = ModelRunner(model, score="logit")
    np.testing.assert_allclose(runner.predict(x), np.asarray(model(x)), rtol=1e-6)  # outputs unchanged
    maps = make_explainer("gradcam", {"layer": "conv2"}).explain(runner, x, target).maps
    pre = keras.Model(model.inputs, model.get_layer("conv2").output)
    gap, dense = model.layers[-2], model.layers[-1]
    kernel, bias = dense.get_weights()
    for i in range(3):
        cls = int(np.argmax(model(x[i : i + 1])))
        hand = _hand_gradcam(pre, lambda a: tf.matmul(gap(a), kernel) + bias, x[i : i + 1], cls, (16, 16))
        np.testing.assert_allclose(maps[i], hand[0], rtol=1e-4, atol=1e-6)
    probability = make_explainer("gradcam", {"layer": "conv2"}).explain(ModelRunner(model), x, target).maps
    assert not np.allclose(_normalise_max(maps), _normalise_max(probability), atol=1e-3)
    # a model without a softmax/sigmoid output has no logits to explain
    from xaicli.errors import UsageError

    model, _ = _region_model()
    with pytest.raises(UsageError, match="softmax or sigmoid"):
        ModelRunner(model, score="logit")


def test_gradcam_finds_last_conv_inside_nested_model():
    keras.utils.set_random_seed(3)
    inner_in = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="b_conv1")(inner_in)
    h = keras.layers.Conv2D(5, 3, padding="same", name="b_conv2")(h)
    h = keras.layers.BatchNormalization(name="b_bn")(h)
    h = keras.layers.ReLU(name="b_relu")(h)
    backbone = keras.Model(inner_in, h, name="backbone")
    inp = keras.Input((16, 16, 3))
    feats = backbone(inp)
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(feats)
    out = keras.layers.Dense(3, activation="softmax", name="head")(pooled)
    model = keras.Model(inp, out)
    runner = ModelRunner(model)
    assert runner.default_cam_layer().name == "backbone/b_relu"
    # every conv block as the default layer takes it: its activations, after BatchNorm and ReLU
    assert [r.name for r in runner.resolve_layers("all-conv")] == ["backbone/b_conv1", "backbone/b_relu"]
    x = _images(2)
    target = _target(model, x)
    gc = make_explainer("gradcam", {})
    explanation = gc.explain(runner, x, target)
    maps = explanation.maps
    assert explanation.layer == "backbone/b_relu"
    for i in range(2):
        cls = int(np.argmax(model(x[i : i + 1])))
        hand = _hand_gradcam(backbone, lambda a: model.get_layer("head")(model.get_layer("gap")(a)), x[i : i + 1], cls, (16, 16))
        np.testing.assert_allclose(maps[i], hand[0], rtol=1e-4, atol=1e-6)
    # an inner, earlier layer by its path: its activations are the nested model's own
    ref = runner.resolve_layers("backbone/b_conv1")[0]
    acts = runner.activations(x, [ref])[0]
    expected = keras.Model(inner_in, backbone.get_layer("b_conv1").output)(x).numpy()
    np.testing.assert_allclose(acts, expected, rtol=1e-5, atol=1e-6)


def test_gradcam_several_layers_gives_per_layer_maps_and_combination():
    model = _classifier()
    x = _images(2)
    gc = make_explainer("gradcam", {"layer": ["conv1", "conv2"]})
    explanation = gc.explain(ModelRunner(model), x, _target(model, x))
    maps = explanation.maps
    assert set(explanation.layers) == {"conv1", "conv2"}
    single = make_explainer("gradcam", {"layer": "conv1"}).explain(ModelRunner(model), x, _target(model, x)).maps
    np.testing.assert_allclose(explanation.layers["conv1"], single, rtol=1e-5, atol=1e-7)
    assert maps.shape == (2, 16, 16) and maps.max() <= 1.0 + 1e-6


def test_gradcam_plus_plus_equals_hand_formula():
    """Chattopadhyay et al. 2018, eq. 19 with the exponential score: a = g^2 / (2 g^2 + sum(A) g^3),
    w_k = sum_ij a_ij relu(g_ij), map = relu(sum_k w_k A_k)."""
    import cv2

    model = _classifier(seed=4)
    x = _images(3, seed=6)
    target = _target(model, x)
    maps = make_explainer("gradcam++", {"layer": "conv2"}).explain(ModelRunner(model, batch_size=2), x, target).maps
    pre = keras.Model(model.inputs, model.get_layer("conv2").output)
    gap, dense = model.layers[-2], model.layers[-1]
    for i in range(3):
        cls = int(np.argmax(model(x[i : i + 1])))
        with tf.GradientTape() as tape:
            acts = pre(tf.constant(x[i : i + 1]))
            tape.watch(acts)
            score = dense(gap(acts))[:, cls]
        g = tape.gradient(score, acts).numpy()[0]
        a = acts.numpy()[0]
        denom = 2 * g**2 + a.sum(axis=(0, 1))[None, None, :] * g**3
        alpha = np.where(g != 0, g**2 / np.where(denom != 0, denom, 1.0), 0.0)
        w = (alpha * np.maximum(g, 0)).sum(axis=(0, 1))
        cam = np.maximum((a * w).sum(-1), 0).astype(np.float32)
        hand = cv2.resize(cam, (16, 16), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(maps[i], hand, rtol=1e-3, atol=1e-6 * max(1.0, hand.max()))
    plain = make_explainer("gradcam", {"layer": "conv2"}).explain(ModelRunner(model), x, target).maps
    assert not np.allclose(_normalise_max(maps), _normalise_max(plain), atol=1e-3)  # not Grad-CAM's weights


def test_scorecam_equals_hand_formula():
    """Wang et al. 2020, Algorithm 1: alpha = softmax_k(f(x * s(Up(A_k))) - f(0)), relu(sum alpha_k A_k)."""
    import cv2

    model = _classifier(seed=8)
    x = _images(2, seed=9)
    target = _target(model, x)
    maps = make_explainer("scorecam", {"layer": "conv2"}).explain(ModelRunner(model, batch_size=4), x, target).maps
    pre = keras.Model(model.inputs, model.get_layer("conv2").output)
    for i in range(2):
        cls = int(np.argmax(model(x[i : i + 1])))
        acts = pre(x[i : i + 1]).numpy()[0]
        ups = [cv2.resize(acts[..., k], (16, 16), interpolation=cv2.INTER_LINEAR) for k in range(acts.shape[-1])]
        masks = [(u - u.min()) / (u.max() - u.min()) if u.max() > u.min() else np.zeros_like(u) for u in ups]
        scores = np.asarray(model(np.stack([x[i] * m[..., None] for m in masks])))[:, cls]
        increase = scores - np.asarray(model(np.zeros_like(x[:1])))[0, cls]
        alpha = np.exp(increase) / np.exp(increase).sum()
        cam = np.maximum((acts * alpha).sum(-1), 0).astype(np.float32)
        hand = cv2.resize(cam, (16, 16), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(maps[i], hand, rtol=1e-4, atol=1e-6)
    assert maps.max() > 0


def _normalise_max(maps):
    return maps / np.maximum(maps.reshape(len(maps), -1).max(axis=1), 1e-12)[:, None, None]


def test_default_cam_layer_is_not_a_segmentation_head():
    inp = keras.Input((16, 16, 1))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="features")(inp)
    out = keras.layers.Conv2D(1, 1, activation="sigmoid", name="head")(h)
    assert ModelRunner(keras.Model(inp, out)).default_cam_layer().name == "features"


# ------------------------------------------------------------------ gradients


def test_saliency_and_gradient_x_input_equal_analytic_gradient_of_linear_model():
    keras.utils.set_random_seed(5)
    inp = keras.Input((6, 6, 2))
    out = keras.layers.Dense(3)(keras.layers.Flatten()(inp))
    model = keras.Model(inp, out)
    kernel = model.layers[-1].get_weights()[0]  # (72, 3)
    x = _images(4, (6, 6, 2))
    target = _target(model, x, "regression", "output:2")
    grad = kernel[:, 2].reshape(6, 6, 2)
    sal = make_explainer("saliency").explain(ModelRunner(model), x, target).maps
    np.testing.assert_allclose(sal, np.broadcast_to(np.abs(grad).max(axis=-1), (4, 6, 6)), rtol=1e-5, atol=1e-7)
    gxi = make_explainer("gradient-x-input").explain(ModelRunner(model), x, target).maps
    np.testing.assert_allclose(gxi, (x * grad).sum(-1), rtol=1e-5, atol=1e-6)
    # Linear model: the gradient is constant, so SmoothGrad equals Saliency and VarGrad is zero.
    sg = make_explainer("smoothgrad", {"n_samples": 5}).explain(ModelRunner(model), x, target).maps
    np.testing.assert_allclose(sg, sal, rtol=1e-5, atol=1e-6)
    vg = make_explainer("vargrad", {"n_samples": 5}).explain(ModelRunner(model), x, target).maps
    assert np.abs(vg).max() < 1e-8


def _smooth_model():
    keras.utils.set_random_seed(7)
    inp = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="softplus")(inp)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="tanh")(x)
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x))
    return keras.Model(inp, out)


@pytest.mark.parametrize("method", ["gauss-legendre", "riemann-trapezoid", "riemann-middle"])
def test_ig_completeness_gap_below_one_percent_at_256_steps(method):
    model = _smooth_model()
    images = _images(3, (12, 12, 1))
    ig = make_explainer("ig", {"steps": 256, "method": method})
    explanation = ig.explain(ModelRunner(model, batch_size=64), images, _target(model, images))
    maps, gap = explanation.maps, explanation.extras["completeness_gap"]
    assert gap.shape == (3,)
    assert np.all(np.abs(gap) < 0.01), gap
    # and the gap is measured, not assumed: with 2 Riemann steps it is visibly larger
    coarse = make_explainer("ig", {"steps": 2, "method": "riemann-left"})
    coarse_gap = coarse.explain(ModelRunner(model), images, _target(model, images)).extras["completeness_gap"]
    assert np.abs(coarse_gap).max() > np.abs(gap).max()
    assert np.isfinite(maps).all()


@pytest.mark.parametrize("baseline", ["white", "noise", "file"])
def test_ig_completeness_holds_for_non_zero_baselines(tmp_path, baseline):
    """sum(attributions) = f(x) - f(baseline) needs the (x - baseline) factor: with a black
    baseline in [0, 1] units x - baseline = x, so only a non-zero baseline tests it."""
    from xaicli.io import write_png

    model = _smooth_model()
    images = _images(2, (12, 12, 1)) * 0.6 + 0.2
    if baseline == "file":
        path = write_png(tmp_path / "baseline.png", np.full((12, 12, 1), 0.8, np.float32))
        baseline = str(path)
    ig = make_explainer("ig", {"steps": 256, "baseline": baseline})
    runner = ModelRunner(model, batch_size=64)
    target = _target(model, images)
    explanation = ig.explain(runner, images, target)
    maps = explanation.maps
    base = ig.baselines(runner, images)
    assert np.abs(base).max() > 0.1
    delta = runner.scores(images, target) - runner.scores(base, target)
    assert np.all(np.abs(delta) > 1e-4)
    np.testing.assert_allclose(maps.reshape(2, -1).sum(axis=1), delta, rtol=0.01)
    assert np.all(np.abs(explanation.extras["completeness_gap"]) < 0.01)


def test_ig_baselines():
    model = _classifier()
    x = _images(2)
    runner = ModelRunner(model, preprocess=lambda im: im * 2.0 - 1.0)
    ig = make_explainer("ig", {"baseline": "white"})
    np.testing.assert_allclose(ig.baselines(runner, x), np.ones_like(x))
    np.testing.assert_allclose(make_explainer("ig", {"baseline": "black"}).baselines(runner, x), -np.ones_like(x))
    blur = make_explainer("ig", {"baseline": "blur"}).baselines(runner, x)
    assert blur.shape == x.shape and blur.std() < x.std()


# ------------------------------------------------------------------ planted region


def _region_model(shape=(16, 16, 1), region=(slice(4, 8), slice(9, 13))):
    """Regression on the sum of a conv response inside ``region``: nothing else matters."""
    keras.utils.set_random_seed(11)
    inp = keras.Input(shape)
    conv = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="conv")
    h = conv(inp)
    flat = keras.layers.Flatten()(h)
    dense = keras.layers.Dense(1, name="dense")
    out = dense(flat)
    model = keras.Model(inp, out)
    conv.set_weights([np.abs(conv.get_weights()[0]) + 0.05, np.zeros(3, np.float32)])
    w = np.zeros((*shape[:2], 3), np.float32)
    w[region] = 1.0
    dense.set_weights([w.reshape(-1, 1), np.zeros(1, np.float32)])
    inside = np.zeros(shape[:2], bool)
    inside[region] = True
    return model, inside


@pytest.mark.parametrize("name,params", [
    ("rise", {"n_masks": 600, "grid_size": 4, "seed": 1}),
    ("occlusion", {"patch_size": 4, "stride": 2}),
    ("saliency", {}),
    ("ig", {"steps": 16}),
    # hide with black: a mean-colour fill leaves this linear region sum almost unchanged
    ("lime", {"num_samples": 300, "segmentation": "grid", "grid_size": 4, "hide_color": 0.0}),
])
def test_methods_recover_a_planted_region(name, params):
    model, inside = _region_model()
    x = _images(2, (16, 16, 1), seed=4) * 0.5 + 0.5
    maps = make_explainer(name, params).explain(ModelRunner(model, batch_size=32), x, _target(model, x, "regression")).maps
    # the planted region grown by the 3x3 conv's reach
    import cv2

    reach = cv2.dilate(inside.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    for m in maps:
        # the maximum is reached inside (LIME: a segment overlapping it has the top weight)
        assert m[reach].max() >= m.max() - 1e-6 * abs(m.max()), f"{name}: maximum outside the region"
        # RISE's map carries the mean score everywhere (E[f | pixel kept]): compare with the median
        centred = m - np.median(m)
        assert centred[inside].mean() > 3 * max(np.abs(centred[~reach]).mean(), 1e-9), name


def test_rise_masks_are_bilinear_upsampled_grids_each_with_its_own_shift():
    """Petsiuk et al. 2018, sec. 3.2: s x s binary grid, bilinear upsampling to (s + 1) * ceil(H / s),
    then a crop at a random shift per mask; recomputed with scikit-image's resize."""
    from skimage.transform import resize

    from xaicli.explainers.rise import RISEMasks

    masks = RISEMasks(40, 5, 0.5, 7, (20, 18))
    cell = (4, 4)  # ceil(20 / 5), ceil(18 / 5)
    built = masks.build(0, 40)
    assert len({tuple(s) for s in masks.shifts}) > 5 and (masks.shifts < cell).all()
    assert 0.35 < masks.grids.mean() < 0.65
    for i in range(40):
        big = resize(masks.grids[i], (6 * cell[0], 6 * cell[1]), order=1, mode="edge", anti_aliasing=False)
        dy, dx = masks.shifts[i]
        np.testing.assert_allclose(built[i], big[dy : dy + 20, dx : dx + 18], atol=1e-5)


def test_rise_gives_the_same_map_when_masks_are_rebuilt_chunk_by_chunk(monkeypatch):
    """Masks too big for the cache are rebuilt per chunk (and reused for the weighted sum)."""
    import xaicli.explainers.rise as rise_module

    model = _classifier()
    x = _images(3)
    target = _target(model, x)
    params = {"n_masks": 40, "grid_size": 4, "seed": 2}
    cached = make_explainer("rise", params).explain(ModelRunner(model, batch_size=16), x, target).maps
    monkeypatch.setattr(rise_module, "_CACHE_BYTES", 0)
    rebuilt = make_explainer("rise", params).explain(ModelRunner(model, batch_size=16), x, target).maps
    np.testing.assert_allclose(rebuilt, cached, rtol=1e-5, atol=1e-7)


def test_rise_center_subtracts_the_mean_score_times_the_mask_coverage():
    """center=true (the default) is the paper's map (center=false) minus mean(score) * sum_i M_i / (N p),
    recomputed here."""
    from xaicli.explainers.rise import RISEMasks

    model = _classifier()
    x = _images(3)
    target = _target(model, x)
    params = {"n_masks": 50, "grid_size": 4, "seed": 3}
    runner = ModelRunner(model, batch_size=16)
    plain = make_explainer("rise", {**params, "center": "false"}).explain(runner, x, target).maps
    centred = make_explainer("rise", params).explain(runner, x, target).maps
    masks = RISEMasks(50, 4, 0.5, 3, (16, 16)).build(0, 50)
    probs = np.asarray(model(np.concatenate([image * masks[..., None] for image in x])))
    scores = probs.reshape(3, 50, -1)[np.arange(3), :, np.argmax(np.asarray(model(x)), axis=1)]
    by_hand = np.einsum("bn,nhw->bhw", scores, masks) / (50 * 0.5)
    by_hand_centred = np.einsum("bn,nhw->bhw", scores - scores.mean(axis=1, keepdims=True), masks) / (50 * 0.5)
    np.testing.assert_allclose(plain, by_hand, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(centred, by_hand_centred, rtol=1e-4, atol=1e-5)
    assert (centred < 0).any() and not (plain < 0).any()


@pytest.mark.parametrize("name", ["gradcam", "saliency", "ig", "rise", "occlusion", "lime", "smoothgrad"])
def test_maps_change_when_weights_are_randomised(name):
    """Adebayo et al. 2018: a map that survives re-initialising the model explains nothing."""
    model, _ = _region_model()
    x = _images(1, (16, 16, 1), seed=4) * 0.5 + 0.5
    params = {**FAST.get(name, {}), **({"n_masks": 300} if name == "rise" else {})}
    before = make_explainer(name, params).explain(ModelRunner(model), x, _target(model, x, "regression")).maps[0]
    keras.utils.set_random_seed(99)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([np.random.default_rng(99).normal(0, 0.3, w.shape).astype(np.float32) for w in layer.get_weights()])
    after = make_explainer(name, params).explain(ModelRunner(model), x, _target(model, x, "regression")).maps[0]
    assert _spearman(before, after) < 0.6, name


# ------------------------------------------------------------------ contract


@pytest.mark.parametrize("name", plugins.names("explainers"))
def test_every_explainer_meets_the_contract(name):
    """xaicli.testing.check_explainer: shapes, finiteness, batch size 1 vs 32, alone vs in a batch,
    not all zero, and only the runner calls the explainer declares."""
    from xaicli.testing import check_explainer

    check_explainer(name, **FAST.get(name, {}))


@pytest.mark.parametrize("task", ["regression", "segmentation"])
def test_every_explainer_explains_regression_and_segmentation_through_the_engine(tmp_path, task):
    from xaicli.api import LoadedModel
    from xaicli.io import Source, write_png
    from xaicli.pipeline.run import Pipeline, make_methods
    from xaicli.pipeline.sinks import MapSink

    keras.utils.set_random_seed(2)
    inp = keras.Input((16, 16, 1))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp)
    if task == "segmentation":
        out = keras.layers.Conv2D(1, 1, activation="sigmoid")(h)
    else:
        out = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(h))
    loaded = LoadedModel(keras.Model(inp, out), ModelInfo(task=task, input_shape=(16, 16, 1)))
    files = []
    for i in range(3):
        files.append(write_png(tmp_path / f"im{i}.png", _images(1, (24, 20, 1), seed=i)[0]))
    (tmp_path / "bad.png").write_bytes(b"nope")
    files.insert(1, tmp_path / "bad.png")
    methods = make_methods([(name, FAST.get(name, {})) for name in plugins.names("explainers")])
    sources = [Source(f, tmp_path, f.stem) for f in files]
    results = list(Pipeline(loaded, methods, batch_size=2).records(sources))
    assert [r.ok for r in results] == [True, False, True, True]
    assert "bad.png" in results[1].error
    sink = MapSink(tmp_path / "out")
    for r in results:
        if r.ok:
            assert {m.method for m in r.maps} == set(plugins.names("explainers"))
            for m in r.maps:
                assert m.map.shape == (24, 20) and m.map.dtype == np.float32 and np.isfinite(m.map).all()
        sink.add(r)
    sink.close()
    assert (tmp_path / "out" / "maps.csv").exists()
