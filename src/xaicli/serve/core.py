"""The inference core the HTTP app and the chat bot share: models, their runners, and the pipelines
concurrent requests are batched through.

A request names a model, optionally a method (with a layer), a target and a score: that is its
*key*, and requests with the same key share one :class:`~xaicli.pipeline.run.Pipeline` -- the
same read, predict/target and explain stages every command runs, plus the scoring stage of
``compare`` for a region sent with the image (the metric plugins through
:class:`~xaicli.pipeline.scoring.Scorer`). All pipelines of a model and score share one
:class:`~xaicli.runner.ModelRunner`, so a new method or target traces nothing the model has
traced already. Every pipeline call runs in the batcher's one worker thread.

:meth:`InferenceCore.analyse` is the whole of one request: check the upload into its own
temporary folder (:mod:`~xaicli.serve.intake`), queue it, wait for its record within the
request timeout, remove the folder. The record comes back with the image, prediction and maps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xaicli.api import LoadedModel, NoRegion, RegionSource
from xaicli.errors import XaicliError
from xaicli.io import Source
from xaicli.pipeline.record import Record
from xaicli.serve.batching import Batcher, Job
from xaicli.serve.config import ServeConfig
from xaicli.serve.errors import Refused, refusal
from xaicli.serve.uploads import TempStore

log = logging.getLogger("xaicli.serve")
#: pipelines kept (method x layer x target x score combinations); the least recently used goes
PIPELINES_KEPT = 32
SCORES = ("probability", "logit")


@dataclass(frozen=True)
class Options:
    """What a request asks: ``method`` None predicts only; ``metrics`` () with a region: the
    region metrics; ``frame``: which frame of a multi-frame upload."""

    model: str | None = None
    method: str | None = None
    layer: str | None = None
    target: str | None = None
    score: str = "probability"
    metrics: tuple[str, ...] = ()
    frame: int | None = None


@dataclass
class Analysis:
    """One answered request: the record (image, prediction, maps, scores) and what to say about it."""

    model: str
    info: Any
    record: Record
    upload: dict[str, Any]
    scored: bool = False
    region: str | None = None


@dataclass
class _Work:
    source: Source
    scored: bool


class UploadedRegion(RegionSource):
    """The region mask sent with an upload (``region.*`` beside the image in its folder)."""

    name = "uploaded"

    def region(self, path: Path | None, image: Any, root: Path | None = None) -> Any:
        from xaicli.io import read_mask
        from xaicli.serve.intake import region_file

        found = region_file(Path(path).parent) if path is not None else None
        if found is None:
            raise NoRegion("no region sent")
        return read_mask(found, shape=image.shape[:2])


class InferenceCore:
    """The models by name (loaded here or given loaded), the worker, the temporary store."""

    def __init__(self, models: Mapping[str, LoadedModel | str | Path], config: ServeConfig | None = None) -> None:
        self.config = config or ServeConfig()
        self.limits = self.config.limits
        if not models:
            raise Refused(500, "no model to serve")
        self.models: dict[str, Any] = dict(models)
        self.store = TempStore(self.config.ttl, self.config.temp_dir)
        self.batcher = Batcher(self._run, max_batch=self.config.max_batch, max_wait=self.config.max_wait,
                               queue_size=self.config.queue_size, retry_after=self.config.retry_after,
                               expecting=lambda: self._arriving > 0)
        #: requests whose upload is being checked: the worker waits for them to fill a batch
        self._arriving = 0
        #: the de-identification key: random per start (nothing de-identified here leaves the service)
        self.secret = secrets.token_bytes(32)
        self.ready = False
        self._sweeper: asyncio.Task | None = None
        self._runners: dict[tuple[str, str], Any] = {}
        # looked up once: the registry reads the installed packages' entry points on every call
        self._metrics: frozenset[str] | None = None
        self._layered: frozenset[str] | None = None
        self._pipelines: OrderedDict[Hashable, tuple[Any, Any]] = OrderedDict()

    @property
    def default_model(self) -> str:
        return next(iter(self.models))

    def info(self, name: str) -> Any:
        return self.models[name].info

    # ---------------------------------------------------------------- life cycle

    async def start(self) -> None:
        """Open the store and its sweeper, start the worker, load the models (in the worker); warm
        up in the background (``ready`` turns True when every model's calls are traced)."""
        self.store.open()
        self._sweeper = asyncio.create_task(self._sweep())
        self.batcher.start()
        await asyncio.wrap_future(self.batcher.call(self._load))
        warm = self.batcher.call(self._warm_up)
        warm.add_done_callback(self._warmed)

    async def _sweep(self) -> None:
        """Remove upload folders older than the TTL, a few times per TTL, until stopped."""
        interval = max(0.05, min(self.config.ttl / 4.0, 30.0))
        while True:
            await asyncio.sleep(interval)
            await asyncio.to_thread(self.store.sweep)

    def _warmed(self, future: Any) -> None:
        if future.cancelled():
            return
        if future.exception() is not None:  # the service stays up, unready: /ready says so
            log.error("warm-up failed (%s): the service is not ready", type(future.exception()).__name__)
            return
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        await asyncio.to_thread(self.batcher.stop)
        self.store.close()

    def _load(self) -> None:
        from xaicli.models.io import load_model

        for name, model in list(self.models.items()):
            if not isinstance(model, LoadedModel):
                self.models[name] = load_model(model)

    def _warm_up(self) -> None:
        """Trace the predict call and the first served method on every model before anyone waits."""
        for name in self.models:
            self._pipeline(self.key(Options(model=name)))
            self._pipeline(self.key(Options(model=name, method=self.config.methods[0])))

    # ---------------------------------------------------------------- requests

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Mark a request on its way to the queue (its body arriving, its upload being checked):
        while any is, the worker waits up to ``max_wait`` to batch it with the others."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1

    def key(self, options: Options) -> Hashable:
        """The pipeline a request runs on; checks what can be checked without the model (400)."""
        from xaicli import plugins
        from xaicli.pipeline.scoring import default_metrics

        model = options.model or self.default_model
        if model not in self.models:
            raise Refused(404, f"no model named {model!r}; served: {', '.join(self.models)}")
        if options.score not in SCORES:
            raise Refused(400, f"score must be probability or logit, not {options.score!r}")
        if self._metrics is None:
            self._metrics = frozenset(plugins.names("metrics"))
            self._layered = frozenset(m for m in self.config.methods if plugins.accepts("explainers", m, "layer"))
        method, metrics = options.method, tuple(options.metrics)
        if method is not None:
            if method not in self.config.methods:
                raise Refused(400, f"method {method!r} is not served; served: {', '.join(self.config.methods)}")
            if options.layer and method not in self._layered:
                raise Refused(400, f"layer applies to the CAM methods, not {method!r}")
            metrics = metrics or tuple(default_metrics(region=True, model=False))
            for name in metrics:
                if name not in self._metrics:
                    try:
                        plugins.entry("metrics", name)  # the registry's message, with the closest name
                    except XaicliError as exc:
                        raise refusal(exc) from None
        elif options.layer or metrics:
            raise Refused(400, "layer and metrics apply to explain, not predict")
        return model, method, options.layer or None, options.target or None, options.score, metrics

    async def analyse(self, image: bytes, options: Options | None = None, *, region: bytes | None = None) -> Analysis:
        """One request, start to end (see the module docstring); :class:`Refused` when it cannot be."""
        from xaicli.pipeline.scoring import strip_path
        from xaicli.serve.intake import accept_image, accept_region, describe

        options = options or Options()
        key = self.key(options)
        if region is not None and options.method is None:
            raise Refused(400, "a region is scored against a map: send it to explain")
        folder = self.store.new()
        try:
            with self.arriving():
                accepted = await asyncio.to_thread(accept_image, image, self.store, folder, self.limits, self.secret,
                                                   frame=options.frame)
                if region is not None:
                    await asyncio.to_thread(accept_region, region, self.store, folder, self.limits,
                                            accepted.image.shape)
                scored = region is not None or bool(options.metrics)
                job = Job(key, _Work(Source(accepted.path, folder, "upload", accepted.image), scored))
                future = self.batcher.submit(job)
            try:
                record = await asyncio.wait_for(asyncio.wrap_future(future), timeout=self.config.request_timeout)
            except asyncio.TimeoutError:
                raise Refused(504, f"no answer within {self.config.request_timeout:g} s (the service is "
                                   "overloaded or the method is slow)") from None
            except XaicliError as exc:
                raise refusal(exc) from None
            if not record.ok:
                raise Refused(422, f"image: {strip_path(record.error or 'cannot be read', record.label)}")
            return Analysis(key[0], self.info(key[0]), record, describe(accepted), scored,
                            record.region_status if scored else None)
        finally:
            self.store.remove(folder)

    # ---------------------------------------------------------------- the worker's side

    def _runner(self, model: str, score: str) -> Any:
        from xaicli.pipeline.run import Pipeline

        if (model, score) not in self._runners:  # built once, by the pipeline's own rules
            self._runners[model, score] = Pipeline(self.models[model], score=score,
                                                   batch_size=self.config.max_batch).runner
        return self._runners[model, score]

    def _pipeline(self, key: Hashable) -> tuple[Any, Any]:
        from xaicli.pipeline.run import Pipeline, make_methods
        from xaicli.pipeline.scoring import Scorer

        if key in self._pipelines:
            self._pipelines.move_to_end(key)
            return self._pipelines[key]
        model, method, layer, target, score, metrics = key
        methods = make_methods([(method, {"layer": layer} if layer else {})]) if method else []
        pipeline = Pipeline(self.models[model], methods, target=target, score=score,
                            runner=self._runner(model, score))
        scorer = Scorer(list(metrics), roi=UploadedRegion(), available=("image", "model_fn")) if method else None
        if methods:  # layer names and method parameters are checked here, before any request waits
            pipeline.trace(probability=scorer is not None and "model_fn" in scorer.needs)
        self._pipelines[key] = (pipeline, scorer)
        while len(self._pipelines) > PIPELINES_KEPT:
            self._pipelines.popitem(last=False)
        return pipeline, scorer

    def _run(self, key: Hashable, jobs: list[Job]) -> None:
        pipeline, scorer = self._pipeline(key)
        wanted = {id(job.payload.source) for job in jobs if job.payload.scored}
        stages = [_scoring(scorer, wanted)] if scorer is not None and wanted else []
        records = list(pipeline.records([job.payload.source for job in jobs], stages=stages))
        for job, record in zip(jobs, records, strict=True):
            job.future.set_result(record)


def _scoring(scorer: Any, wanted: set[int]) -> Callable[[Any, Any], None]:
    """``compare``'s scoring stage, on the records that came with a region or asked for metrics."""
    from xaicli.pipeline.compare import score_stage
    from xaicli.pipeline.run import Batch

    inner = score_stage(scorer, random_baseline=False, seed=0)

    def stage(batch: Any, pipeline: Any) -> None:
        inner(Batch([r for r in batch.good if id(r.source) in wanted]), pipeline)

    return stage


__all__ = ["Analysis", "InferenceCore", "Options", "UploadedRegion"]
