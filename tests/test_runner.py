"""The model runner (compiled, chunked, no retracing) and the targets."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from xaicli.api import ModelInfo
from xaicli.errors import UsageError
from xaicli.runner import ModelRunner, Stack
from xaicli.targets import resolve_target


def _model(out_units=3):
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(3, 3, padding="same", activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(out_units, activation="softmax")(x))


def test_runner_matches_the_model_and_never_retraces():
    model = _model()
    runner = ModelRunner(model, batch_size=4)
    x = np.random.default_rng(0).uniform(0, 1, (11, 8, 8, 2)).astype(np.float32)
    np.testing.assert_allclose(runner.predict(x), model(x).numpy(), rtol=1e-5, atol=1e-6)
    for n in (1, 3, 7, 11):  # every leftover chunk size
        runner.predict(x[:n])
    assert runner._forward.experimental_get_tracing_count() == 1
    info = ModelInfo(task="classification", input_shape=(8, 8, 2))
    target = resolve_target(runner.predict(x), info)
    for n in (1, 5, 11):
        runner.gradients(x[:n], target, np.arange(n))
        runner.scores(x[:n], target, np.arange(n))
    assert runner._grad.experimental_get_tracing_count() == 1
    assert runner._score.experimental_get_tracing_count() == 1


def test_large_stacks_are_built_and_evaluated_in_chunks_of_batch_size():
    model = _model()
    runner = ModelRunner(model, batch_size=5)
    x = np.random.default_rng(1).uniform(0, 1, (2, 8, 8, 2)).astype(np.float32)
    target = resolve_target(runner.predict(x), ModelInfo(task="classification", input_shape=(8, 8, 2)))
    sizes = []

    def build(start, stop):
        sizes.append(stop - start)
        return np.repeat(x[:1], stop - start, axis=0) * np.linspace(0, 1, 23)[start:stop, None, None, None]

    scores = runner.scores(Stack(23, np.zeros(23, int), build), target)
    assert sizes == [5, 5, 5, 5, 3]
    expected = model(np.repeat(x[:1], 23, axis=0) * np.linspace(0, 1, 23)[:, None, None, None]).numpy()
    cls = int(np.argmax(runner.predict(x[:1])))
    np.testing.assert_allclose(scores, expected[:, cls], rtol=1e-5, atol=1e-6)


def test_chunks_built_ahead_keep_their_order_and_errors(monkeypatch):
    """The next chunk is built in a worker thread: same rows in the same order as building inline,
    and an error raised while building reaches the caller."""
    import xaicli.runner.calls as runner_module

    model = _model()
    x = np.random.default_rng(2).uniform(0, 1, (1, 8, 8, 2)).astype(np.float32)
    target = resolve_target(model(x).numpy(), ModelInfo(task="classification", input_shape=(8, 8, 2)))

    def noisy_stack(calls):
        rng = np.random.default_rng(7)  # drawn in build order, as a seeded explainer would

        def build(start, stop):
            calls.append(start)
            return x + rng.normal(0, 0.1, (stop - start, 8, 8, 2)).astype(np.float32)

        return Stack(17, np.zeros(17, int), build)

    scores = {}
    for prefetch in (False, True):
        monkeypatch.setattr(runner_module, "PREFETCH", prefetch)
        calls: list[int] = []
        scores[prefetch] = ModelRunner(model, batch_size=4).scores(noisy_stack(calls), target)
        assert calls == [0, 4, 8, 12, 16]
    np.testing.assert_array_equal(scores[True], scores[False])

    def failing(start, stop):
        if start >= 8:
            raise ValueError("cannot build chunk 3")
        return np.repeat(x, stop - start, axis=0)

    with pytest.raises(ValueError, match="chunk 3"):
        ModelRunner(model, batch_size=4).scores(Stack(17, np.zeros(17, int), failing), target)


def test_gradients_are_per_row():
    model = _model()
    runner = ModelRunner(model, batch_size=3)
    x = np.random.default_rng(2).uniform(0, 1, (4, 8, 8, 2)).astype(np.float32)
    target = resolve_target(runner.predict(x), ModelInfo(task="classification", input_shape=(8, 8, 2)))
    _, together = runner.gradients(x, target, np.arange(4))
    for i in range(4):
        _, alone = runner.gradients(x[i : i + 1], target, [i])
        np.testing.assert_allclose(alone[0], together[i], rtol=1e-5, atol=1e-7)


def test_classification_targets():
    info = ModelInfo(task="classification", input_shape=(8, 8, 2), class_names=["a", "b", "c"])
    out = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], np.float32)
    t = resolve_target(out, info)
    assert [t.describe(i) for i in range(2)] == ["class 1 (b)", "class 0 (a)"]
    np.testing.assert_allclose(np.asarray(t.score(out, [0, 1])), [0.7, 0.5])
    assert resolve_target(out, info, "c").describe(0) == "class 2 (c)"
    assert resolve_target(out, info, "class:0").describe(1) == "class 0 (a)"
    with pytest.raises(UsageError, match="unknown class"):
        resolve_target(out, info, "zebra")
    with pytest.raises(UsageError, match="out of range"):
        resolve_target(out, info, "7")
    binary = resolve_target(np.array([[0.9], [0.2]], np.float32), ModelInfo(task="classification", input_shape=(8, 8, 2)))
    np.testing.assert_allclose(binary.weights[:, 0], [1.0, -1.0])


def test_regression_and_segmentation_targets():
    reg = resolve_target(np.array([[41.5], [7.0]], np.float32), ModelInfo(task="regression", input_shape=(8, 8, 1)))
    np.testing.assert_allclose(np.asarray(reg.score(np.array([[3.0], [4.0]]), [0, 1])), [3.0, 4.0])
    assert reg.describe(0) == "output = 41.5"
    seg_out = np.zeros((1, 4, 4, 1), np.float32)
    seg_out[0, 1:3, 1:3, 0] = 0.9
    info = ModelInfo(task="segmentation", input_shape=(4, 4, 1))
    seg = resolve_target(seg_out, info)
    assert seg.describe(0) == "predicted mask (4 px)"
    np.testing.assert_allclose(np.asarray(seg.score(seg_out, [0])), [3.6], rtol=1e-6)
    given = np.zeros((8, 8), bool)
    given[:4, :4] = True  # the top-left quarter, given at twice the output's resolution
    masked = resolve_target(seg_out, info, masks=[given])
    assert masked.weights[0, :, :, 0].sum() == 4 and masked.weights[0, 0, 0, 0] == 1
    empty = resolve_target(np.zeros((1, 4, 4, 1), np.float32), info)
    assert empty.weights.sum() == 16  # nothing predicted: the whole map, never a zero target
    multi = np.zeros((1, 2, 2, 3), np.float32)
    multi[0, :, :, 0] = 1.0
    multi[0, 0, 0] = [0, 0, 1]
    t = resolve_target(multi, ModelInfo(task="segmentation", input_shape=(2, 2, 1)))
    assert t.weights[0, 0, 0, 2] == 1 and t.weights.sum() == 1


def test_the_engine_traces_every_call_a_method_makes_before_timing_it():
    """The pipeline traces ahead (xaicli.pipeline.run.Pipeline.trace): no method pays for tracing in
    its seconds per image, so the first method of a comparison is not made to look slow."""
    from xaicli import plugins
    from xaicli.api import LoadedModel
    from xaicli.pipeline.run import Pipeline, make_methods

    small = {"rise": {"n_masks": 8}, "lime": {"num_samples": 8, "segmentation": "grid"}, "ig": {"steps": 2},
             "smoothgrad": {"n_samples": 2}, "smoothgrad-squared": {"n_samples": 2}, "vargrad": {"n_samples": 2},
             "scorecam": {"max_channels": 2}, "occlusion": {"patch_size": 4, "stride": 4}}
    x = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 2)).astype(np.float32)
    for name in plugins.names("explainers"):
        pipeline = Pipeline(LoadedModel(_model(), ModelInfo(task="classification", input_shape=(8, 8, 2))),
                            make_methods([(name, small.get(name, {}))]), batch_size=4)
        runner, explainer = pipeline.runner, pipeline.methods[0].explainer
        pipeline.trace()
        functions = [runner._forward, runner._score, runner._grad, runner._blend,
                     *(f for pair in runner._taps.values() for f in pair)]
        before = [f.experimental_get_tracing_count() for f in functions]
        taps = set(runner._taps)
        target = resolve_target(runner.predict(x), ModelInfo(task="classification", input_shape=(8, 8, 2)))
        explainer.explain(runner, x, target)
        assert [f.experimental_get_tracing_count() for f in functions] == before, name
        assert set(runner._taps) == taps, f"{name} tapped layers that were not traced ahead"


def test_blends_equal_copies_built_in_numpy_with_and_without_output_weights():
    """iter_blend_scores blends fill + (image - fill) * mask in the compiled call; a plugin target
    that only has score() gets the same copies built in NumPy."""
    from xaicli.runner import Blend

    model = _model()
    runner = ModelRunner(model, batch_size=4)
    rng = np.random.default_rng(3)
    images = rng.uniform(0, 1, (2, 8, 8, 2)).astype(np.float32)
    fills = rng.uniform(0, 1, (2, 1, 1, 2)).astype(np.float32)
    masks = rng.uniform(0, 1, (10, 8, 8)).astype(np.float32)
    rows = np.array([0] * 5 + [1] * 5)
    copies = fills[rows] + (images[rows] - fills[rows]) * masks[..., None]
    target = resolve_target(runner.predict(images), ModelInfo(task="classification", input_shape=(8, 8, 2)))
    expected = runner.scores(copies, target, rows)

    class ScoreOnly:  # a third-party target: no output weights
        def score(self, outputs, rows_):
            return target.score(outputs, rows_)

    for tgt in (target, ScoreOnly()):
        got = list(runner.iter_blend_scores(Blend(images, fills, rows, lambda a, b: masks[a:b]), tgt))
        assert [(s, e) for s, e, _, _ in got] == [(0, 4), (4, 8), (8, 10)]
        np.testing.assert_allclose(np.concatenate([m for _, _, m, _ in got]), masks)
        np.testing.assert_allclose(np.concatenate([s for _, _, _, s in got]), expected, rtol=1e-5, atol=1e-6)
