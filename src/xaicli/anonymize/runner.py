"""The batch runner: files in chunks over ``jobs`` worker processes, results in plan order.

Workers never outlive the run. Each asks the kernel to kill it when its parent dies
(``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on Linux, through ctypes) and, where that is not there or
did not take, watches its parent from a thread and exits when it is gone. The parent kills its
workers when it is stopped: on SIGTERM (turned into KeyboardInterrupt, so the command exits 130),
on Ctrl-C (workers ignore SIGINT: the terminal sends it to the whole process group, and the parent
alone decides), and on any error. A worker that dies fails its chunk's files and is replaced; the
other chunks go on. No module globals: each worker's state lives in its own main function.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time

from xaicli.anonymize.fileproc import Item, Worker
from xaicli.anonymize.settings import FileResult, Settings

PR_SET_PDEATHSIG = 1
WATCH_SECONDS = 0.5
DIED = "worker process died"


def run_batch(items: list[Item], settings: Settings, jobs: int) -> list[FileResult]:
    """Process every item; one result per item, in order."""
    from xaicli.dicom import quiet_pydicom

    if jobs <= 1 or len(items) < 16:
        worker = Worker(settings)
        try:
            with quiet_pydicom():
                return [worker.process(item) for item in items]
        finally:
            worker.journal.close()
    size = max(4, min(64, len(items) // (jobs * 4) or 1))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    done = _Pool(settings, min(jobs, len(chunks))).run(chunks)
    return [result for index in range(len(chunks)) for result in done[index]]


class _Pool:
    """Workers with a pipe each: the parent hands a chunk to an idle worker and knows what each
    one holds, so a worker that dies fails its own chunk and no lock shared with it is left held."""

    def __init__(self, settings: Settings, jobs: int):
        import multiprocessing

        import pydicom  # noqa: F401 - imported before forking so that workers inherit it

        # fork: workers start in milliseconds with everything imported (spawn re-imports).
        methods = multiprocessing.get_all_start_methods()
        self.context = multiprocessing.get_context("fork" if "fork" in methods else None)
        self.settings, self.jobs = settings, jobs
        self.workers: dict[object, tuple[object, int | None]] = {}  # pipe -> (process, chunk held)

    def run(self, chunks: list[list[Item]]) -> dict[int, list[FileResult]]:
        from multiprocessing.connection import wait

        done: dict[int, list[FileResult]] = {}
        waiting = list(range(len(chunks)))[::-1]
        with _terminate_on_sigterm():
            try:
                for _ in range(self.jobs):
                    self._start(waiting, chunks)
                while len(done) < len(chunks):
                    for pipe in wait(list(self.workers)):
                        process, index = self.workers[pipe]
                        try:
                            done[index] = pipe.recv()
                        except (EOFError, OSError):  # the worker died: its chunk failed
                            done[index] = [FileResult(src, None, "failed", DIED) for src, _, _ in chunks[index]]
                            del self.workers[pipe]
                            pipe.close()
                            self._start(waiting, chunks)
                            continue
                        self._hand(pipe, process, waiting, chunks)
            finally:
                self._stop()
        return done

    def _start(self, waiting: list[int], chunks: list[list[Item]]) -> None:
        if not waiting:
            return
        ours, theirs = self.context.Pipe()
        process = self.context.Process(target=_worker_main, args=(self.settings, theirs, os.getpid()), daemon=True)
        process.start()
        theirs.close()
        self._hand(ours, process, waiting, chunks)

    def _hand(self, pipe, process, waiting: list[int], chunks: list[list[Item]]) -> None:
        if waiting:
            index = waiting.pop()
            self.workers[pipe] = (process, index)
            # A worker gone meanwhile: wait() then reports its pipe closed, and its chunk fails there.
            with contextlib.suppress(OSError):
                pipe.send(chunks[index])
        else:
            with contextlib.suppress(OSError):
                pipe.send(None)  # nothing left: the worker exits
            del self.workers[pipe]
            process.join(5)
            pipe.close()

    def _stop(self) -> None:
        for process, _ in self.workers.values():
            if process.is_alive():
                process.kill()
        for pipe, (process, _) in self.workers.items():
            process.join(5)
            pipe.close()


def _worker_main(settings: Settings, pipe, parent: int) -> None:
    from xaicli.dicom import quiet_pydicom

    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    worker = Worker(settings)
    with quiet_pydicom():
        for chunk in iter(pipe.recv, None):
            pipe.send([worker.process(item) for item in chunk])
    worker.journal.close()


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), name="xaicli-parent-watch", daemon=True).start()


def _watch(parent: int) -> None:
    """Fallback where PR_SET_PDEATHSIG is missing: an orphan is adopted, so its parent changes."""
    while os.getppid() == parent:
        time.sleep(WATCH_SECONDS)
    os._exit(1)


@contextlib.contextmanager
def _terminate_on_sigterm():
    """SIGTERM during the batch: stop like Ctrl-C (the pool kills its workers on the way out)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
