"""The Ray engine: a run's per-image stages as Ray Data work on a cluster (``pip install "xaicli[ray]"``).

The images to compute become a dataset of small rows (the image's index, source and known truth);
``map_batches`` sends them in batches of the run's batch size to an actor pool of :class:`Worker`\\ s,
each of which builds the command's pipeline once (model loaded and compiled once per worker) and
runs the same stages the local engine runs (:meth:`xaicli.pipeline.run.Pipeline.process`): the
workers read the images, explain and score them. Each record comes back packed
(:mod:`xaicli.pipeline.transfer`): its fields in the reply, its arrays (maps, image) written by the
worker into the run folder on the shared output when the worker sees that folder, else in the
reply. The driver puts the records back in input order and hands them to the sinks, which write the
summaries, the grid and the CSVs once.

Pool size: one worker per GPU when the cluster has GPUs, else one per ``cpus_per_worker`` CPUs,
never more workers than batches. Faults: a worker that dies (its node lost, killed, out of memory)
is restarted and its batch is retried (Ray Data's actor pools run with ``max_restarts=-1`` and
``max_task_retries=-1``, which this engine relies on; the fault drill below tests it); a batch's outputs
are whole-file atomic writes of the same bytes, so a retried batch neither loses nor duplicates an
image, and the driver takes each image once. A crashed driver is resumed from the run journal.

Fault drill: with ``XAICLI_RAY_FAULT_DRILL=FILE`` in the driver's environment, the first worker
that finishes a batch creates FILE and exits at once (``os._exit``), before replying: the batch
must be redone by the worker that replaces it (FILE exists then, so that one proceeds).
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.errors import UsageError, XaicliError
from xaicli.pipeline.engines import Done, Item, Work
from xaicli.pipeline.record import Record

DRILL = "XAICLI_RAY_FAULT_DRILL"
#: with "0", Ray takes 127.0.0.1 as the node's address and every Ray process listens there only
#: (read when Ray is imported; Ray otherwise binds its servers to all interfaces and the node's
#: outward address, even when given _node_ip_address="127.0.0.1")
LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def import_ray(*, local: bool = False) -> Any:
    """Ray, or a usage error naming the extra; ``local``: Ray is to start here, on the loopback only."""
    if local and "ray" not in sys.modules:
        os.environ.setdefault(LOOPBACK_ONLY, "0")
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data is the part of the extra the engine uses)
    except ImportError:
        raise UsageError('the ray engine needs Ray: pip install "xaicli[ray]"', parameter="engine") from None
    return ray


class Worker:
    """One worker of the actor pool: the pipeline built once, then one batch per call."""

    def __init__(self, model: list[Any], build: Any, store: str | None, with_image: bool, threads: int,
                 drill: str | None) -> None:
        import ray

        from xaicli._quiet import quiet_tensorflow

        quiet_tensorflow()
        if threads:
            import tensorflow as tf

            # one thread pool per reserved CPU: several workers on a node must not oversubscribe it
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(threads)
            except RuntimeError:  # TensorFlow started already in this process: its pools are fixed
                pass
        loaded = ray.get(model[0])
        self.pipeline, self.stages = build(loaded)
        self.store = Path(store) if store is not None and Path(store).is_dir() else None
        self.with_image = with_image
        self.drill = drill

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from xaicli.io import write_bytes
        from xaicli.pipeline.journal import arrays_path, dumps
        from xaicli.pipeline.transfer import encode_arrays, pack

        records = []
        for row in batch["items"]:  # a row is one pipeline batch, as the local engine forms them
            chunk = [Record(index, source, truth=truth) for index, source, truth in pickle.loads(row)]
            records += self.pipeline.process(chunk, self.stages).records
        reply: dict[str, list[Any]] = {"index": [], "fields": [], "data": [], "stored": []}
        for record in records:
            fields, arrays = pack(record, with_image=self.with_image)
            data, stored = (encode_arrays(arrays) if arrays else b""), False
            if data and self.store is not None:  # the shared output: the driver reads it back from there
                write_bytes(arrays_path(self.store, record.name), data, overwrite=True)
                data, stored = b"", True
            reply["index"].append(record.index)
            reply["fields"].append(dumps(fields))
            reply["data"].append(data)
            reply["stored"].append(stored)
        if self.drill is not None:
            _drill(self.drill)
        return {"index": np.asarray(reply["index"], np.int64), "fields": np.asarray(reply["fields"], object),
                "data": np.asarray(reply["data"], object), "stored": np.asarray(reply["stored"], bool)}


def _drill(marker: str) -> None:
    try:
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        return
    os._exit(17)


def _cause(error: BaseException) -> XaicliError | None:
    """The xaicli error a worker raised, through Ray's wrappers (a user's mistake stays one line)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, XaicliError):
            return error
        error = getattr(error, "cause", None) or error.__cause__
    return None


class RayEngine:
    """The per-image stages on a Ray cluster (see the module docstring).

    ``address``: the cluster to join (``ray://host:10001``, ``host:6379``, ``auto``); default:
    the cluster of ``RAY_ADDRESS`` or, without one, a local Ray started for the run, listening on
    127.0.0.1 only, and stopped after it. A Ray already initialised in this process is used as it is.
    ``workers``: the pool size (default: from the cluster's GPUs or CPUs).
    """

    name = "ray"

    def __init__(self, address: str | None = None, *, workers: int | None = None, cpus_per_worker: float = 1.0,
                 gpus_per_worker: float | None = None) -> None:
        if workers is not None and workers < 1:
            raise UsageError(f"workers must be at least 1, not {workers}", parameter="workers")
        self.address, self.workers = address, workers
        self.cpus_per_worker, self.gpus_per_worker = float(cpus_per_worker), gpus_per_worker

    @property
    def joins(self) -> bool:
        """Whether the run joins a running cluster (else it starts a local Ray)."""
        return self.address is not None or bool(os.environ.get("RAY_ADDRESS"))

    def _connect(self, ray: Any) -> bool:
        """Join or start Ray; True when this run started it (and stops it)."""
        if ray.is_initialized():
            return False
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
        if self.joins:
            ray.init(address=self.address, **quiet)
        else:
            ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", **quiet)
        return True

    def pool(self, ray: Any, batches: int) -> tuple[int, dict[str, float]]:
        """The pool size and each worker's resources, from the cluster's GPUs or CPUs."""
        resources = ray.cluster_resources()
        gpus = self.gpus_per_worker if self.gpus_per_worker is not None else (1.0 if resources.get("GPU") else 0.0)
        if gpus:
            size = int(resources.get("GPU", 0) // gpus)
        else:
            size = int(resources.get("CPU", 1) // self.cpus_per_worker)
        size = max(1, min(self.workers or size, batches))
        return size, {"num_cpus": self.cpus_per_worker, "num_gpus": gpus}

    def run(self, work: Work, items: Sequence[Item], store: Path | None = None) -> Iterator[Done]:
        ray = import_ray(local=not self.joins)
        pipeline, _ = work.built()  # the driver's checks, and the batch size the workers use
        started = self._connect(ray)
        try:
            yield from self._run(ray, work, items, store, pipeline.batch_size)
        finally:
            if started:
                ray.shutdown()

    def _run(self, ray: Any, work: Work, items: Sequence[Item], store: Path | None, batch_size: int) -> Iterator[Done]:
        from ray.data import ActorPoolStrategy, DataContext

        from xaicli.pipeline.journal import arrays_path
        from xaicli.pipeline.transfer import decode_arrays, unpack

        size, resources = self.pool(ray, math.ceil(len(items) / batch_size))
        context = DataContext.get_current()
        logger = logging.getLogger("ray.data")
        saved = context.execution_options.preserve_order, context.enable_progress_bars, logger.level
        context.execution_options.preserve_order = True  # blocks come back in input order
        context.enable_progress_bars = False  # the command shows its own progress
        logger.setLevel(logging.ERROR)  # its notes on execution plans and progress bars
        try:
            # one row per batch of the run, so that every batch holds the images the local engine's would
            rows = [{"items": pickle.dumps(list(items[first : first + batch_size]))}
                    for first in range(0, len(items), batch_size)]
            # blocks of a few batches: a lost worker redoes little, and records reach the journal soon
            blocks = min(len(rows), max(math.ceil(len(rows) / 8), 4 * size))
            dataset = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
                # one batch in flight per worker: a batch goes to the first worker free (batches take
                # seconds; a queue behind a busy or starting worker would hold up the records in order)
                Worker, batch_size=1, batch_format="numpy",
                compute=ActorPoolStrategy(size=size, max_tasks_in_flight_per_actor=1),
                fn_constructor_kwargs={"model": [ray.put(work.loaded)], "build": work.build,
                                       "store": None if store is None else str(store), "with_image": work.with_image,
                                       "threads": max(1, int(resources["num_cpus"])), "drill": os.environ.get(DRILL)},
                **resources)
            sources = {index: (source, truth) for index, source, truth in items}
            waiting: dict[int, Done] = {}
            order = iter(index for index, _, _ in items)
            expected = next(order, None)
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                for index, text, data, stored in zip(batch["index"], batch["fields"], batch["data"], batch["stored"],
                                                     strict=True):
                    index = int(index)
                    if index not in sources or index in waiting:
                        continue  # taken already: an image is handed on once
                    source, truth = sources[index]
                    fields = json.loads(text)
                    raw = arrays_path(store, source.name).read_bytes() if stored else bytes(data)
                    record = unpack(fields, decode_arrays(raw) if raw else {}, source, truth)
                    waiting[index] = Done(record, fields, None if stored else (raw or None), bool(stored))
                while expected is not None and expected in waiting:
                    yield waiting.pop(expected)
                    del sources[expected]
                    expected = next(order, None)
            if expected is not None:
                raise RuntimeError(f"the cluster returned no record for image {expected}")
        except Exception as error:
            cause = _cause(error)
            if cause is not None:
                raise cause from None
            raise
        finally:
            context.execution_options.preserve_order, context.enable_progress_bars, level = saved
            logger.setLevel(level)
