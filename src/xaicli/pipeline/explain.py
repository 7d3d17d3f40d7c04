"""``explain``: saliency maps for images with one or several methods -- the pipeline's read,
predict/target and explain stages into the map sink (raw maps, overlays, ``maps.csv``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from xaicli.api import LoadedModel
from xaicli.errors import InputError, UsageError
from xaicli.pipeline.run import Method, Pipeline, make_methods
from xaicli.pipeline.scoring import strip_path
from xaicli.pipeline.sinks import MapSink, close_all, discard_all


@dataclass
class ExplainRun:
    """What an ``explain`` run did: counts, the files it wrote, the first rows of ``maps.csv``
    (for a terminal table) and the inputs that failed, as (input, reason)."""

    images: int
    explained: int
    outputs: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    maps: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (input, what a person should know)


def target_masks(location: str | os.PathLike[str] | None) -> Any:
    """The target masks of a segmentation run: one mask file for every image, or a folder."""
    from xaicli.io import MaskMatcher

    return None if location is None else MaskMatcher(location)


def explain_stages(loaded: LoadedModel, methods: Sequence[tuple[str, dict[str, Any]]], *, target: str | None,
                   score: str, batch_size: int, target_mask: str | os.PathLike[str] | None,
                   frame: int | str | None, max_size: int = 1024, precision: str = "fp32",
                   map_resolution: str = "image") -> tuple[Pipeline, list[Any]]:
    """The per-image stages of ``explain`` (built in this process, and once on each worker of a cluster)."""
    pipeline = Pipeline(loaded, make_methods(methods), target=target, score=score, batch_size=batch_size,
                        target_masks=target_masks(target_mask), frame=frame, max_size=max_size, precision=precision,
                        map_resolution=map_resolution)
    pipeline.trace()  # layer names and method parameters checked before anything is written
    return pipeline, []


def explain(
    loaded: LoadedModel,
    inputs: Sequence[str | os.PathLike[str]],
    methods: Sequence[tuple[str, dict[str, Any]] | str] | Sequence[Method],
    output_dir: str | os.PathLike[str],
    *,
    target: str | None = None,
    target_mask: str | os.PathLike[str] | None = None,
    score: str = "probability",
    batch_size: int = 16,
    map_format: str = "npy",
    colormap: str = "jet",
    alpha: float = 0.45,
    overwrite: bool = False,
    frame: int | str | None = None,
    max_size: int = 1024,
    precision: str = "fp32",
    map_resolution: str = "image",
    keep_rows: int = 60,
    progress: Callable[[int, int], None] | None = None,
    engine: Any = "local",
    address: str | None = None,
    resume: bool = False,
) -> ExplainRun:
    """Explain every image under ``inputs`` with every method; write ``OUTPUT/<name>/<method>.npy``
    and ``.png`` per map and ``OUTPUT/maps.csv`` (see :class:`~xaicli.pipeline.sinks.MapSink`);
    ``engine`` runs the per-image stages, ``resume`` continues an interrupted run (as in ``compare``)."""
    from xaicli.io import check_outputs, discover
    from xaicli.io.render import check_alpha, check_colormap
    from xaicli.pipeline.engines import Work, engine_for, records
    from xaicli.pipeline.journal import RunJournal, model_key

    check_colormap(colormap)
    check_alpha(alpha)
    out = Path(output_dir)
    check_outputs([out / "maps.csv"], overwrite or resume)
    chosen = list(methods) if methods and isinstance(methods[0], Method) else make_methods(methods)
    if not chosen:
        raise UsageError("name at least one method", parameter="methods")
    sources = discover(inputs, frames=frame)
    if not sources:
        raise InputError(f"no image files found in {', '.join(str(p) for p in inputs)}")
    runner = engine_for(engine, address)
    pairs = [(m.name, m.params) for m in chosen]
    settings = dict(target=target, score=score, batch_size=batch_size, target_mask=target_mask, frame=frame,
                    max_size=max_size, precision=precision, map_resolution=map_resolution)
    # the batch size is left out of the key: maps do not depend on it, and a resumed run may use another
    journal = RunJournal(out, "explain", sources, [model_key(loaded), pairs,
                                                   *(v for k, v in settings.items() if k != "batch_size")],
                         resume=resume, overwrite=overwrite)
    overwrite = overwrite or journal.resuming  # this run's own outputs, made again from the same records
    work = Work(loaded, partial(explain_stages, methods=pairs, **settings))
    work.built()
    sinks = [MapSink(out, fmt=map_format, colormap=colormap, alpha=alpha, overwrite=overwrite, keep_rows=keep_rows)]
    failures: list[tuple[str, str]] = []
    warnings: list[tuple[str, str]] = []
    done = maps = 0
    try:
        for record in records(runner, work, sources, journal=journal):
            done += 1
            warnings.extend((record.label, w) for w in record.warnings)
            if not record.ok:
                failures.append((record.label, strip_path(record.error or "failed", record.label)))
            else:
                maps += len(record.maps)
            for sink in sinks:
                sink.add(record)
            if progress is not None:
                progress(done, len(sources))
        outputs = close_all(sinks)
    except BaseException as error:
        discard_all(sinks)
        journal.interrupted(error)
        raise
    journal.finish()
    return ExplainRun(len(sources), len(sources) - len(failures), outputs, sinks[0].rows, maps, failures, warnings)
