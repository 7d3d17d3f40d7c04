"""Engines: where a run's per-image stages execute. Every engine runs the *same* stages.

A command is a composition: the per-image stages (read, predict/target, explain, and its own, such
as ``compare``'s scoring) built by one function from the model -- a :class:`Work` -- and the sinks
that write the outputs. An engine takes the work and the images and hands back each image's record
in input order; the sinks run once, in the calling process, whatever the engine:

* :class:`LocalEngine` runs the stages in this process, batch after batch (the default);
* :class:`~xaicli.pipeline.ray_engine.RayEngine` runs them on a Ray cluster, the model loaded once
  per worker of an actor pool (``pip install "xaicli[ray]"``).

:func:`records` adds the run journal (:mod:`xaicli.pipeline.journal`): the images a resumed run
finished before are restored, the engine computes only the others, and each computed record is
journaled before the sinks see it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from xaicli.api import LoadedModel
from xaicli.errors import UsageError
from xaicli.io import Source
from xaicli.pipeline.record import Record

ENGINES = ("local", "ray")

#: (index in the run, source, known truth) of one image to compute
Item = tuple[int, Source, Any]


@dataclass
class Work:
    """The per-image stages of a command: ``build(loaded) -> (pipeline, extra stages)``.

    ``build`` is a module-level function (or a ``functools.partial`` of one) so that it travels to
    a cluster's workers, where each builds its own pipeline once. ``with_image``: whether the sinks
    need each image back (overlays, the grid) or only its prediction.
    """

    loaded: LoadedModel
    build: Callable[[LoadedModel], tuple[Any, list[Any]]]
    with_image: bool = True
    _built: tuple[Any, list[Any]] | None = field(default=None, repr=False)

    def built(self) -> tuple[Any, list[Any]]:
        """The pipeline and stages in this process, built once (the checks a run makes before it
        writes anything: method parameters, layer names)."""
        if self._built is None:
            self._built = self.build(self.loaded)
        return self._built


@dataclass
class Done:
    """A computed record; ``fields``/``data``: as a worker packed it (:mod:`~xaicli.pipeline.transfer`),
    ``stored``: its arrays file is in the run folder already."""

    record: Record
    fields: dict[str, Any] | None = None
    data: bytes | None = None
    stored: bool = False


class Engine(Protocol):
    name: str

    def run(self, work: Work, items: Sequence[Item], store: Path | None) -> Iterator[Done]:
        """One :class:`Done` per item, in the order of ``items``; ``store``: the run folder's
        arrays folder (None: no journal), where workers that see it may write."""
        ...


class LocalEngine:
    """The stages in this process, one batch after another (memory holds one batch)."""

    name = "local"

    def run(self, work: Work, items: Sequence[Item], store: Path | None = None) -> Iterator[Done]:
        pipeline, stages = work.built()
        size = pipeline.batch_size
        for first in range(0, len(items), size):
            records = [Record(index, source, truth=truth) for index, source, truth in items[first : first + size]]
            for record in pipeline.process(records, stages).records:
                yield Done(record)


def engine_for(engine: str | Engine = "local", address: str | None = None) -> Engine:
    """The engine named ``engine`` (``local`` or ``ray``; an engine object is taken as it is);
    ``address``: the Ray cluster to join (default: a local Ray started for the run)."""
    if not isinstance(engine, str):
        if address is not None:
            raise UsageError("address is given to the engine object itself", parameter="address")
        return engine
    if engine == "local":
        if address is not None:
            raise UsageError("address applies to the ray engine only (engine ray)", parameter="address")
        return LocalEngine()
    if engine == "ray":
        from xaicli.pipeline.ray_engine import RayEngine

        return RayEngine(address)
    raise UsageError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}", parameter="engine")


def records(engine: Engine, work: Work, sources: Sequence[Source], truths: Sequence[Any] | None = None,
            journal: Any = None) -> Iterator[Record]:
    """Every source's record, in input order: finished ones restored from ``journal``, the others
    computed by ``engine`` and journaled before they are handed on."""
    truths = list(truths) if truths is not None else [None] * len(sources)
    done = journal.done if journal is not None else {}
    if journal is not None:
        journal.begin()
    todo = [(i, source, truths[i]) for i, source in enumerate(sources) if source.name not in done]
    computed = engine.run(work, todo, journal.records if journal is not None else None) if todo else _nothing()
    try:
        for i, source in enumerate(sources):
            if source.name in done:
                yield journal.restore(source, truths[i])
                continue
            item = next(computed, None)
            if item is None or item.record.index != i:
                raise RuntimeError(f"engine {engine.name!r} returned records out of order (expected image {i})")
            if journal is not None:
                journal.add(item.record, fields=item.fields, data=item.data, stored=item.stored,
                            with_image=work.with_image)
            yield item.record
    finally:
        computed.close()  # a cluster engine stops its work and lets go of the cluster


def _nothing() -> Iterator[Done]:
    yield from ()
