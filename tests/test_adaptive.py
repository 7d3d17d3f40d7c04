"""Sampling that stops when the map is stable: each image takes as many samples as its map needs
to reach the target reliability (or the cap), and its map is exactly the fixed-count map of that
many samples (a prefix of the same draws)."""

from __future__ import annotations

import numpy as np
import pytest

from xaicli import plugins
from xaicli.api import ModelInfo
from xaicli.runner import ModelRunner
from xaicli.targets import resolve_target
from xaicli.testing import tiny_classifier

CASES = {
    "rise": ({"n_masks": 600, "grid_size": 4, "chunk": 100}, "n_masks"),
    "lime": ({"num_samples": 400, "segmentation": "grid", "grid_size": 4, "chunk": 100}, "num_samples"),
    "smoothgrad": ({"n_samples": 40, "chunk": 5}, "n_samples"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_image_stops_when_its_map_is_stable_and_gets_the_fixed_count_map(name):
    params, cap = CASES[name]
    model = tiny_classifier(3)
    x = np.random.default_rng(4).uniform(0, 1, (3, 16, 16, 3)).astype(np.float32)
    target = resolve_target(np.asarray(model(x)), ModelInfo(task="classification", input_shape=(16, 16, 3)))
    runner = ModelRunner(model, batch_size=32)
    adaptive = plugins.make("explainers", name, {**params, "reliability": 0.9}).explain(runner, x, target)
    used = adaptive.extras["samples"].astype(int)
    reached = adaptive.extras["reliability"]
    assert np.all(used <= params[cap]) and np.all(used >= min(params[cap], 2 * params["chunk"]))
    assert np.all((reached >= 0.9) | (used == params[cap])), (used, reached)  # stable, or at the cap
    for i in range(3):
        fixed = plugins.make("explainers", name, {**params, cap: int(used[i]), "reliability": 0}).explain(
            runner, x[i : i + 1], target.subset([i]))
        # the same sums, in another order (rounds): equal to float32 rounding, 1e-4 of the map's range
        np.testing.assert_allclose(adaptive.maps[i], fixed.maps[0], rtol=1e-4, atol=1e-4 * np.abs(fixed.maps).max())
        assert fixed.extras["samples"][0] == used[i]
        if used[i] - params["chunk"] >= 2 * params["chunk"]:  # it stopped at the first round that was stable
            earlier = plugins.make("explainers", name, {**params, cap: int(used[i]) - params["chunk"],
                                                         "reliability": 0}).explain(runner, x[i : i + 1], target.subset([i]))
            assert earlier.extras["reliability"][0] < 0.9, (i, used[i], earlier.extras["reliability"][0])
    # a fixed count takes every sample
    every = plugins.make("explainers", name, {**params, "reliability": "0"}).explain(runner, x, target)
    assert np.all(every.extras["samples"] == params[cap])


def test_an_easy_map_stops_early_and_a_hard_one_runs_to_the_cap():
    """A linear model's RISE map converges fast; a target the masks barely move does not."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 1))
    out = keras.layers.Dense(1)(keras.layers.Flatten()(inp))
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).uniform(0.5, 1, (1, 16, 16, 1)).astype(np.float32)
    target = resolve_target(np.asarray(model(x)), ModelInfo(task="regression", input_shape=(16, 16, 1)))
    rise = plugins.make("explainers", "rise", {"n_masks": 4000, "grid_size": 4, "chunk": 250})
    explanation = rise.explain(ModelRunner(model, batch_size=64), x, target)
    # stable at once: it stops after the two rounds its split-half estimate needs at the least
    assert explanation.extras["samples"][0] == 500 and explanation.extras["reliability"][0] >= 0.95
    hopeless = plugins.make("explainers", "rise", {"n_masks": 500, "grid_size": 4, "chunk": 250, "reliability": 0.999999})
    assert hopeless.explain(ModelRunner(model, batch_size=64), x, target).extras["samples"][0] == 500


def test_reliability_is_a_usage_choice():
    from xaicli.errors import UsageError

    with pytest.raises(UsageError, match="reliability must lie in"):
        plugins.make("explainers", "rise", {"reliability": 1.5})
