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
    multi-frame files to read (N, ``first``, ``middle``; ``all`` is a matter of discovery:
    ``xaicli.io.discover(..., frames="all")``). ``max_size``: maps are made at most this many
    pixels on their long side (0: the image's size; memory and files stay bounded whatever the
    input); ``map_resolution``: ``image`` (the default) or ``model`` (the model input's size).
    ``runner``: a :class:`~xaicli.runner.ModelRunner` of the same model shared with other
    pipelines (a server keeps one per model and score, so a new method or target does not trace
    the model's calls again); its ``score``, ``batch_size`` and ``precision`` then apply.
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
        frame: int | str | None = None,
        max_size: int = 1024,
        map_resolution: str = "image",
        precision: str = "fp32",
        runner: Any = None,
    ) -> None:
        from xaicli.preprocessing import PREPROCESSORS
        from xaicli.runner import ModelRunner

        self.loaded = loaded
        self.info = info = loaded.info
        self.methods = list(methods)
        self.target = target
        self.score = score
        self.frame = None if frame is None or str(frame).lower() == "all" else frame
        if map_resolution not in ("image", "model"):
            raise UsageError(f"map_resolution must be image or model, not {map_resolution!r}", parameter="map_resolution")
        if int(max_size) < 0:
            raise UsageError(f"max_size must be >= 0 pixels, not {max_size}", parameter="max_size")
        self.max_size, self.map_resolution = int(max_size), map_resolution
        if target_masks is not None and info.task != "segmentation":
            raise UsageError("target_mask applies to segmentation models only", parameter="target_mask")
        self.target_masks = target_masks
        if runner is not None:
            if runner.model is not loaded.model:
                raise ValueError("a shared runner must run the pipeline's own model")
            self.score = runner.score_kind
        self.runner = runner if runner is not None else ModelRunner(
            loaded.model,
            batch_size=batch_size,
            preprocess=lambda images: PREPROCESSORS[info.preprocessing](np.asarray(images, np.float32)),
            score=score,
            cam_layer=info.cam_layer,
            input_shape=tuple(info.input_shape),
            precision=precision,
        )
        self.precision = precision if runner is None else self.runner.precision
        #: what the ``auto`` precision probe measured on the first batch (xaicli.runner.precision.probe)
        self.probe: dict[str, Any] | None = None
        cams = [m.name for m in self.methods if m.explainer.uses_layers]
        if cams and is_savedmodel(loaded.model):
            from xaicli import plugins

            working = [n for n in plugins.names("explainers") if not plugins.load("explainers", n).uses_layers]
            raise ModelError(f"{', '.join(cams)}: a SavedModel hides its layers, so CAM methods cannot run on it; "
                             f"the methods that can: {', '.join(working)}")
        self.traced = False

    @property
    def batch_size(self) -> int:
        return self.runner.batch_size

    def shared_layers(self) -> list[Any] | None:
        """The layers of the one forward + backward pass the methods share, or None when fewer than
        two methods need that pass (``Explainer.gradient_pass``)."""
        sharers = [m.explainer for m in self.methods if m.explainer.gradient_pass]
        if len(sharers) < 2:
            return None
        refs = {r.path: r for e in sharers if e.uses_layers for r in self.runner.resolve_layers(e.layer_names())}
        return list(refs.values())

    def trace(self, *, probability: bool = False) -> None:
        """Trace every compiled call the methods will make, before any is timed (tracing costs
        0.2-3 s per function the first time and would be charged to whichever method ran first)."""
        explainers = [m.explainer for m in self.methods]
        shared = self.shared_layers()
        if shared is not None:
            self.runner.shared.trace(self.runner, shared)
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
        batch = Batch(records)
        read(batch, self)
        predict(batch, self)
        # ``auto`` precision is decided on the first batch, before the calls are traced at that precision
        if self.precision == "auto" and self.probe is None and batch.x is not None and self.methods:
            self.decide_precision(batch)
        if self.methods and not self.traced:
            self.trace()
        explain(batch, self)
        for stage in stages:
            stage(batch, self)
        return batch

    def decide_precision(self, batch: Batch) -> None:
        """``auto``: bfloat16 only where a short probe on this model, machine and batch measured it
        faster and its input gradients agree with float32's (``xaicli.runner.precision``)."""
        from xaicli.runner.precision import probe

        self.probe = probe(self.runner._base, batch.x, batch.target.weights)
        if self.probe["choice"] != self.runner.precision:
            known = self.runner.shared.values.get("model")  # the batch's scores survive the switch
            self.runner.use_precision(self.probe["choice"])
            self.traced = False
            if known is not None:
                self.runner.shared.remember_scores(batch.x, batch.target, known)

    def records(self, sources: Sequence[Source], **kwargs: Any) -> Iterator[Record]:
        for batch in self.batches(sources, **kwargs):
            yield from batch.records


def is_savedmodel(model: Any) -> bool:
    """A TensorFlow SavedModel wrapped as a Keras layer: gradients flow through it, layers are hidden."""
    return any(type(layer).__name__ == "TFSMLayer" for layer in model.layers)


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
    from xaicli.io.read import frame_index

    for record in batch.records:
        source = record.source
        try:
            if source.array is not None:
                record.image = as_image(source.array, source.name)
            else:
                frame = source.frame if source.frame is not None else frame_index(pipeline.frame, source.path)
                record.image = read_image(source.path, frame=frame)
            size_warning(record, pipeline.info)
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
    # the target scores of the unperturbed images, from this one forward pass (occlusion's baseline...)
    axes = tuple(range(1, outputs.ndim))
    pipeline.runner.shared.remember_scores(x, target, (outputs * target.weights).sum(axis=axes))


def explain(batch: Batch, pipeline: Pipeline) -> None:
    """Every method on the batch; each image gets its maps at its own resolution. The methods that
    need the same forward + backward pass get it from one (its time shared out among them)."""
    good = batch.good
    if not good or not pipeline.methods:
        return
    shape = (len(good), *pipeline.runner.input_shape[:2])
    shared, share = pipeline.shared_layers(), 0.0
    if shared is not None:
        started = time.perf_counter()
        pipeline.runner.shared.compute(pipeline.runner, batch.x, batch.target, shared)
        sharers = sum(m.explainer.gradient_pass for m in pipeline.methods)
        share = (time.perf_counter() - started) / len(good) / sharers
    for method in pipeline.methods:
        started = time.perf_counter()
        explanation = Explanation.of(method.explainer.explain(pipeline.runner, batch.x, batch.target))
        seconds = (time.perf_counter() - started) / len(good) + (share if method.explainer.gradient_pass else 0.0)
        if explanation.maps.shape != shape:
            raise PluginError(f"explainer {method.name!r} returned maps of shape {explanation.maps.shape}, "
                              f"expected {shape}")
        for j, record in enumerate(good):
            size = map_size(record.image.shape[:2], pipeline.runner.input_shape[:2], pipeline.max_size,
                            pipeline.map_resolution)
            record.maps.extend(method_maps(method.name, method.explainer.display, explanation, j, seconds, size))
    pipeline.runner.shared.clear()


def map_size(image: tuple[int, int], model: tuple[int, int], max_size: int, resolution: str) -> tuple[int, int]:
    """The size maps are made at: the image's (or the model input's), scaled down so that the long
    side is at most ``max_size`` (a 6000 x 6000 input must not mean 144 MB maps for a 64 px model)."""
    height, width = model if resolution == "model" else image
    if max_size and max(height, width) > max_size:
        scale = max_size / max(height, width)
        height, width = max(1, round(height * scale)), max(1, round(width * scale))
    return int(height), int(width)


def size_warning(record: Record, info: Any) -> None:
    """An input much larger or smaller than the model's input loses or invents detail: say so."""
    height, width = record.image.shape[:2]
    model_h, model_w = info.input_shape[:2]
    if min(height, width) < 2:
        record.image, record.error = None, f"{record.label}: image is {width}x{height} px: too small to explain"
        return
    factor = max(height / model_h, width / model_w, model_h / height, model_w / width)
    if factor >= 4:
        way = "shrunk" if height > model_h or width > model_w else "enlarged"
        record.warnings.append(f"{width}x{height} px {way} to the model's {model_w}x{model_h} "
                               f"({factor:.0f}x): {'fine detail is lost' if way == 'shrunk' else 'the model sees blur'}")


def method_maps(name: str, display: str, explanation: Explanation, j: int, seconds: float,
                size: tuple[int, int]) -> list[MethodMap]:
    """Image ``j``'s maps from an explanation: the map, then each layer's when there are several
    (each with the method's seconds: one pass made them all)."""
    from xaicli.io import resize

    model_size = explanation.maps.shape[1:3]
    scale = float(np.mean([size[0] / model_size[0], size[1] / model_size[1]]))

    def at_size(m: np.ndarray) -> np.ndarray:
        return resize(np.asarray(m, np.float32), tuple(size), interpolation="linear").astype(np.float32)

    extras = {key: float(values[j]) for key, values in explanation.extras.items()}
    cell = extras.get("cell", 0.0) * scale
    if not explanation.layers:
        return [MethodMap(name, at_size(explanation.maps[j]), seconds, explanation.layer, extras, display, cell=cell)]
    count = 1 + len(explanation.layers)
    out = [MethodMap(name, at_size(explanation.maps[j]), seconds, "combined", extras, display, cell=cell)]
    for layer, maps in explanation.layers.items():
        layer_cell = explanation.layer_cells.get(layer, 0.0) * scale
        out.append(MethodMap(name, at_size(maps[j]), seconds, layer, extras, display, method_key(name, layer, count),
                             cell=layer_cell))
    return out
