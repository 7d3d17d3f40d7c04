"""Concurrent requests batched into model calls: a bounded queue and one worker thread.

Every model call of the service happens in the worker thread (TensorFlow never runs on the event
loop, and one thread owns the runners, which are not thread-safe). The worker takes the first job
waiting, then whatever else is waiting, and -- while ``expecting()`` says more requests are on their
way (uploads being checked) -- what arrives within ``max_wait`` seconds, up to ``max_batch`` jobs
(a lone request never waits for company that is not coming), and hands them to ``run`` grouped by
their key (the same model, method, layer, target: the same
pipeline), so that while a batch runs the next one fills up. That is dynamic batching as model
servers do it (e.g. TensorFlow Serving's batching, Clipper, NSDI 2017): at 16 concurrent clients a
batch holds about 16 images and the service runs near the runner's batched throughput.

The queue is bounded: when it is full, :meth:`Batcher.submit` raises at once (the HTTP app
answers 503 with Retry-After) instead of letting memory grow with the backlog. A job whose
request gave up (timed out, client gone) before the worker reached it is skipped.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from xaicli.serve.errors import Refused

_STOP = object()


@dataclass
class Job:
    """One request's work: its pipeline ``key``, what it carries, and the future it is answered on."""

    key: Hashable
    payload: Any
    future: Future = field(default_factory=Future)


@dataclass
class _Call:
    """A function to run in the worker (loading, warming up): it shares the worker's thread."""

    function: Callable[[], Any]
    future: Future = field(default_factory=Future)


class QueueFull(Refused):
    def __init__(self, retry_after: int) -> None:
        super().__init__(503, "the service is busy; retry shortly", {"Retry-After": str(retry_after)})


class Batcher:
    """The queue and its worker; ``run(key, jobs)`` answers each job's future (see the module
    docstring). ``before_batch(jobs)``, when set, is called in the worker before each batch runs:
    a test hook (hold the worker to fill the queue deterministically)."""

    def __init__(self, run: Callable[[Hashable, list[Job]], None], *, max_batch: int = 16,
                 max_wait: float = 0.005, queue_size: int = 64, retry_after: int = 1,
                 expecting: Callable[[], bool] | None = None) -> None:
        self.run = run
        self.expecting = expecting or (lambda: True)
        self.max_batch = int(max_batch)
        self.max_wait = float(max_wait)
        self.retry_after = int(retry_after)
        self.queue: queue.Queue = queue.Queue(maxsize=int(queue_size))
        self.before_batch: Callable[[list[Job]], None] | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = False
        #: batches run and jobs in them, for the benchmark and the tests
        self.batches = 0
        self.jobs = 0

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="xaicli-serve-worker", daemon=True)
            self._thread.start()

    def submit(self, job: Job) -> Future:
        """Queue ``job``; :class:`QueueFull` (503) when the queue is full or the service stopping."""
        with self._lock:
            if self._stopping:
                raise Refused(503, "the service is shutting down", {"Retry-After": str(self.retry_after)})
            try:
                self.queue.put_nowait(job)
            except queue.Full:
                raise QueueFull(self.retry_after) from None
        return job.future

    def call(self, function: Callable[[], Any]) -> Future:
        """Run ``function`` in the worker thread (queued like a job, but never refused)."""
        item = _Call(function)
        self.queue.put(item)
        return item.future

    def stop(self) -> None:
        """Refuse new jobs, cancel those waiting, let the running batch finish, end the worker."""
        with self._lock:
            self._stopping = True
            while True:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP:
                    item.future.cancel()
            self.queue.put_nowait(_STOP)
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # ------------------------------------------------------------------ the worker

    def _collect(self, first: Any) -> tuple[list[Job], bool]:
        jobs, stop = [first], False
        deadline = time.monotonic() + self.max_wait
        while len(jobs) < self.max_batch:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.expecting():
                    break
                try:  # short slices: stop waiting as soon as nothing more is on its way
                    item = self.queue.get(timeout=min(remaining, 0.001))
                except queue.Empty:
                    continue
            if item is _STOP:
                stop = True
                break
            if isinstance(item, _Call):  # a control call never waits behind a batch being gathered
                self._call(item)
                continue
            jobs.append(item)
        return jobs, stop

    @staticmethod
    def _call(item: _Call) -> None:
        if not item.future.set_running_or_notify_cancel():
            return
        try:
            item.future.set_result(item.function())
        except BaseException as exc:  # noqa: BLE001 - the caller gets it
            item.future.set_exception(exc)

    def _loop(self) -> None:
        while True:
            item = self.queue.get()
            if item is _STOP:
                return
            if isinstance(item, _Call):
                self._call(item)
                continue
            jobs, stop = self._collect(item)
            live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
            if live:
                self._run(live)
            if stop:
                return

    def _run(self, jobs: list[Job]) -> None:
        if self.before_batch is not None:
            self.before_batch(jobs)
        self.batches += 1
        self.jobs += len(jobs)
        groups: dict[Hashable, list[Job]] = {}
        for job in jobs:
            groups.setdefault(job.key, []).append(job)
        for key, group in groups.items():
            try:
                self.run(key, group)
            except BaseException as exc:  # noqa: BLE001 - the requests get it; the worker lives on
                for job in group:
                    if not job.future.done():
                        job.future.set_exception(exc)
