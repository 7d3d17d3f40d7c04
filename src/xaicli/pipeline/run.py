"""The pipeline: sources flow through read -> predict/target -> explain in batches, one model runner
per run; the commands (``predict``, ``explain``, ``compare``, ``score``, the consistency study), the
Python API and the other front ends are compositions of these stages and of the sinks.

:class:`Pipeline` holds what a run shares -- the model, its one :class:`~xaicli.runner.ModelRunner`
(compiled once, reused for every batch, method and metric), the explainers -- and
:meth:`Pipeline.batches` yields one :class:`Batch` at a time, in input order: memory holds one
batch of images. A file that cannot be read comes back as a failed record (``record.error``) and
does not stop the run. Each stage is a plain function of a batch, so an engine that runs batches
elsewhere (a server, a cluster) runs the same code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.api import Explanation, LoadedModel, Target
from xaicli.errors import InputError, ModelError, PluginError, UsageError
from xaicli.io import Source
from xaicli.pipeline.record import MethodMap, Record, method_key

Stage = Callable[["Batch", "Pipeline"], None]


@dataclass
class Batch:
    """Up to ``batch_size`` records; ``x`` (model inputs) and ``target`` cover the good ones."""

    records: list[Record]
    x: np.ndarray | None = None
    target: Target | None = None

    @property
    def good(self) -> list[Record]:
        return [r for r in self.records if r.ok]


@dataclass
class Method:
    """A chosen explainer: its plugin name, parameters and instance."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    explainer: Any = None


def make_methods(methods: Iterable[tuple[str, dict[str, Any]] | str]) -> list[Method]:
    """Explainers by name (``"gradcam"`` or ``("rise", {"n_masks": 500})``), each made once."""
    from xaicli import plugins

    chosen: list[Method] = []
    for item in methods:
        name, params = (item, {}) if isinstance(item, str) else item
        if any(m.name == name for m in chosen):
            raise UsageError(f"method {name!r} is named twice", parameter="methods")
        chosen.append(Method(name, dict(params), plugins.make("explainers", name, params)))
    return chosen


class Pipeline:
    """One model and its runner, the chosen methods, and the stages that fill records.

    ``target``: ``predicted`` (default), a class index or name, ``output:k``; ``score``:
    ``probability`` or ``logit``; ``target_masks`` (segmentation): a :class:`~xaicli.io.MaskMatcher`
    giving each image the mask whose summed output is explained; ``frame``: which frame of
    multi-frame files to read.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        methods: Sequence[Method] = (),
        *,
        target: str | None = None,
        score: str = "probability",
        batch_size: int = 16,
        target_masks: Any = None,
        frame: int | None = None,
    ) -> None:
        from xaicli.preprocessing import PREPROCESSORS
        from xaicli.runner import ModelRunner

        self.loaded = loaded
        self.info = info = loaded.info
        self.methods = list(methods)
        self.target = target
        self.score = score
        self.frame = frame
        if target_masks is not None and info.task != "segmentation":
            raise UsageError("target_mask applies to segmentation models only", parameter="target_mask")
        self.target_masks = target_masks
        self.runner = ModelRunner(
            loaded.model,
            batch_size=batch_size,
            preprocess=lambda images: PREPROCESSORS[info.preprocessing](np.asarray(images, np.float32)),
            score=score,
            cam_layer=info.cam_layer,
            input_shape=tuple(info.input_shape),
        )
        for method in self.methods:
            if method.explainer.needs_gradients and not differentiable(loaded.model):
                raise ModelError(f"method {method.name!r} needs gradients, which this model does not provide")
        self.traced = False

    @property
    def batch_size(self) -> int:
        return self.runner.batch_size

    def trace(self, *, probability: bool = False) -> None:
        """Trace every compiled call the methods will make, before any is timed (tracing costs
        0.2-3 s per function the first time and would be charged to whichever method ran first)."""
        explainers = [m.explainer for m in self.methods]
        self.runner.trace(
            scores=any(e.needs_scores for e in explainers),
            blends=any(e.needs_blends for e in explainers),
            gradients=any(e.needs_gradients and not e.uses_layers for e in explainers),
            layers=[self.runner.resolve_layers(e.layer_names()) for e in explainers if e.uses_layers],
            probability=probability,
        )
        self.traced = True

    def batches(self, sources: Sequence[Source], *, truths: Sequence[Any] | None = None,
                stages: Sequence[Stage] = (), start: int = 0) -> Iterator[Batch]:
        """Batches of records for ``sources`` (in order), each through read, predict and target,
        explain and then the extra ``stages``; ``truths[i]`` is source i's known truth."""
        size = self.batch_size
        for first in range(0, len(sources), size):
            records = [Record(start + first + k, source, truth=None if truths is None else truths[first + k])
                       for k, source in enumerate(sources[first : first + size])]
            yield self.process(records, stages)

    def process(self, records: list[Record], stages: Sequence[Stage] = ()) -> Batch:
        """One batch of records through read, predict and target, explain and the extra ``stages``:
        what every engine runs, in this process or on a worker of a cluster."""
        if self.methods and not self.traced:
            self.trace()
        batch = Batch(records)
        read(batch, self)
        predict(batch, self)
        explain(batch, self)
        for stage in stages:
            stage(batch, self)
        return batch

    def records(self, sources: Sequence[Source], **kwargs: Any) -> Iterator[Record]:
        for batch in self.batches(sources, **kwargs):
            yield from batch.records


def differentiable(model: Any) -> bool:
    """A SavedModel wrapped as a Keras layer has no gradients to give."""
    return not any(type(layer).__name__ == "TFSMLayer" for layer in model.layers)


# ------------------------------------------------------------------------------------ stages


def as_image(array: Any, name: str) -> np.ndarray:
    """An in-memory image (H x W, H x W x C with C in 1, 3, 4; uint8, uint16, bool or float in
    [0, 1]) as the readers return files: float32 (H, W, 1 or 3) in [0, 1]."""
    from xaicli.io.read import _channels_last, _to_float

    image = np.asarray(array)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise InputError(f"{name}: an image array must be H x W or H x W x C (C = 1, 3 or 4), not {image.shape}")
    if image.size == 0:
        raise InputError(f"{name}: the image array is empty")
    return _channels_last(_to_float(image, Path(name)), Path(name), bgr=False)


def read(batch: Batch, pipeline: Pipeline) -> None:
    """Read each record's image (and its target mask); a failure marks the record, not the run."""
    from xaicli.io import read_image, read_mask

    for record in batch.records:
        source = record.source
        try:
            if source.array is not None:
                record.image = as_image(source.array, source.name)
            else:
                record.image = read_image(source.path, frame=pipeline.frame)
            if pipeline.target_masks is not None:
                record.target_mask = read_mask(_target_mask_file(pipeline.target_masks, source))
        except InputError as exc:
            record.image = None
            record.error = exc.message


def _target_mask_file(matcher: Any, source: Source) -> Any:
    from xaicli.api import NoRegion

    try:
        return matcher.find(source.path)
    except NoRegion:
        raise InputError(f"{source.label}: no target mask found for it") from None


def predict(batch: Batch, pipeline: Pipeline) -> None:
    """One model call per batch: predictions, and the target of each image fixed from them."""
    from xaicli.predictions import predictions
    from xaicli.preprocessing import display_image, preprocess
    from xaicli.targets import resolve_target

    good = batch.good
    if not good:
        return
    info = pipeline.info
    x = preprocess([r.image for r in good], info)
    outputs = pipeline.runner.predict(x)
    if info.task == "segmentation" and outputs.ndim != 4:
        raise ModelError(f"{pipeline.loaded.path}: the model does not output maps; is it a segmentation model?")
    masks = [r.target_mask for r in good] if pipeline.target_masks is not None else None
    target = resolve_target(outputs, info, pipeline.target, masks)
    if pipeline.score == "logit":
        target.labels = [f"{label} (logit)" for label in target.labels]
    for j, (record, prediction) in enumerate(zip(good, predictions(outputs, info), strict=True)):
        record.view = display_image(record.image, info)
        record.prediction = prediction
        record.target = target.subset([j])
    batch.x, batch.target = x, target


def explain(batch: Batch, pipeline: Pipeline) -> None:
    """Every method on the batch; each image gets its maps at its own resolution."""
    good = batch.good
    if not good or not pipeline.methods:
        return
    shape = (len(good), *pipeline.runner.input_shape[:2])
    for method in pipeline.methods:
        started = time.perf_counter()
        explanation = Explanation.of(method.explainer.explain(pipeline.runner, batch.x, batch.target))
        seconds = (time.perf_counter() - started) / len(good)
        if explanation.maps.shape != shape:
            raise PluginError(f"explainer {method.name!r} returned maps of shape {explanation.maps.shape}, "
                              f"expected {shape}")
        for j, record in enumerate(good):
            record.maps.extend(method_maps(method.name, method.explainer.display, explanation, j, seconds,
                                           record.image.shape[:2]))


def method_maps(name: str, display: str, explanation: Explanation, j: int, seconds: float,
                size: tuple[int, int]) -> list[MethodMap]:
    """Image ``j``'s maps from an explanation: the map, then each layer's when there are several."""
    from xaicli.io import resize

    def at_size(m: np.ndarray) -> np.ndarray:
        return resize(np.asarray(m, np.float32), tuple(size), interpolation="linear").astype(np.float32)

    extras = {key: float(values[j]) for key, values in explanation.extras.items()}
    if not explanation.layers:
        return [MethodMap(name, at_size(explanation.maps[j]), seconds, explanation.layer, extras, display)]
    count = 1 + len(explanation.layers)
    out = [MethodMap(name, at_size(explanation.maps[j]), seconds, "combined", extras, display)]
    for layer, maps in explanation.layers.items():
        out.append(MethodMap(name, at_size(maps[j]), 0.0, layer, extras, display, method_key(name, layer, count)))
    return out
