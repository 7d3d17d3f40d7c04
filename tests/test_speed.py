"""Below the fp32 floor without changing the answer: shared passes give every method its own map
from one forward + backward; reduced precision approximates float32 closely and leaves the
predictions alone. (Speed itself is measured by the benchmarks, never asserted here.)"""

from __future__ import annotations

import numpy as np

from xaicli.api import LoadedModel, ModelInfo
from xaicli.io import Source
from xaicli.pipeline.run import Pipeline, make_methods
from xaicli.testing import tiny_classifier

GRADIENT_PASS = ["gradcam", "gradcam++", "saliency", "gradient-x-input"]


def _sources(n: int = 5) -> list[Source]:
    rng = np.random.default_rng(3)
    return [Source(None, None, f"a{i}", rng.uniform(0, 1, (16, 16, 3)).astype(np.float32)) for i in range(n)]


def _loaded() -> LoadedModel:
    return LoadedModel(tiny_classifier(2), ModelInfo(task="classification", input_shape=(16, 16, 3),
                                                     class_names=["a", "b", "c"]))


def _maps(pipeline: Pipeline, sources: list[Source]) -> dict[tuple[int, str], np.ndarray]:
    return {(r.index, m.key): m.map for r in pipeline.records(sources) for m in r.maps}


def test_the_cam_family_saliency_and_gradient_x_input_share_one_pass_with_the_same_maps():
    loaded, sources = _loaded(), _sources()
    together = Pipeline(loaded, make_methods(GRADIENT_PASS), batch_size=8)
    shared = _maps(together, sources)
    evaluated = together.runner.rows_evaluated
    alone, rows = {}, 0
    for name in GRADIENT_PASS:
        pipeline = Pipeline(loaded, make_methods([name]), batch_size=8)
        alone.update(_maps(pipeline, sources))
        rows += pipeline.runner.rows_evaluated
    assert shared.keys() == alone.keys()
    for key, value in alone.items():
        np.testing.assert_allclose(shared[key], value, rtol=1e-5, atol=1e-7, err_msg=str(key))
    # one prediction and one gradient pass per image, against a prediction and a pass per method
    assert evaluated == 2 * len(sources) and rows == 2 * len(sources) * len(GRADIENT_PASS)


def test_reduced_precision_approximates_float32_and_keeps_the_predictions():
    loaded, sources = _loaded(), _sources()
    exact = list(Pipeline(loaded, make_methods(["gradcam", "saliency"]), batch_size=8).records(sources))
    for precision in ("bf16", "mixed"):
        pipeline = Pipeline(loaded, make_methods(["gradcam", "saliency"]), batch_size=8, precision=precision)
        approximate = list(pipeline.records(sources))
        assert pipeline.runner.precision == precision
        for a, b in zip(exact, approximate, strict=True):
            np.testing.assert_array_equal(a.prediction.output, b.prediction.output)  # fp32 predictions
            for ma, mb in zip(a.maps, b.maps, strict=True):
                assert not np.array_equal(ma.map, mb.map)  # really computed in bfloat16
                assert np.corrcoef(ma.map.ravel(), mb.map.ravel())[0, 1] > 0.9, (precision, ma.key)


def test_auto_precision_decides_from_a_probe_on_the_first_batch():
    from xaicli.runner import precision

    loaded, sources = _loaded(), _sources()
    pipeline = Pipeline(loaded, make_methods(["saliency"]), batch_size=8, precision="auto")
    records = list(pipeline.records(sources))
    probe = pipeline.probe
    assert set(probe) >= {"fp32_seconds", "bf16_seconds", "speedup", "correlation", "choice"}
    faster = probe["speedup"] >= precision.SPEEDUP and probe["correlation"] >= precision.FIDELITY
    assert pipeline.runner.precision == ("bf16" if faster else "fp32") == probe["choice"]
    assert len(records) == len(sources) and all(r.maps for r in records)
