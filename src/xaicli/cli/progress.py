"""Progress of a long command, on stderr: a rich bar on a terminal, plain lines elsewhere.

When stderr is not a terminal (a CI log, ``| tee``, ``2>&1 | cat``) a bar would be invisible or
garbage, so plain lines are printed instead: ``compare: 16/60 images (27 %), 1.4 images/s, about 31 s
left``, one whenever work advances and at least every :data:`HEARTBEAT` seconds while it runs (a
slow method can spend minutes on one batch: the line then says how long it has been working).
``--quiet`` prints neither.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

HEARTBEAT = 10.0  # seconds between plain lines, at most
MIN_INTERVAL = 2.0  # seconds between plain lines, at least (a fast run prints a few, not thousands)


class Progress:
    """``with Progress(console, "compare", unit="images") as update: update(done, total)``."""

    def __init__(self, console: Any, label: str, *, unit: str = "images", quiet: bool = False,
                 interactive: bool | None = None) -> None:
        self.console, self.label, self.unit, self.quiet = console, label, unit, quiet
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.done, self.total = 0, None
        self.started = self.last = time.monotonic()
        self._bar: Any = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def __enter__(self):
        if self.quiet:
            return self.update
        if self.interactive:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            console=self.console, transient=True)
            self._task = self._bar.add_task(self.label, total=None)
            self._bar.__enter__()
        else:
            self._line(f"{self.label}: started")
            self._thread = threading.Thread(target=self._heartbeat, name="xaicli-progress", daemon=True)
            self._thread.start()
        return self.update

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        if self._bar is not None:
            self._bar.__exit__(*exc)
        elif not self.quiet and exc[0] is None and self.done:
            self._line(self._status(final=True))

    def update(self, done: int, total: int | None = None) -> None:
        with self._lock:
            self.done, self.total = done, total
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total)
        elif time.monotonic() - self.last >= MIN_INTERVAL:
            self._line(self._status())

    def _heartbeat(self) -> None:
        while not self._stop.wait(1.0):
            if time.monotonic() - self.last >= HEARTBEAT:
                self._line(self._status())

    def _status(self, final: bool = False) -> str:
        with self._lock:
            done, total = self.done, self.total
        elapsed = time.monotonic() - self.started
        text = f"{self.label}: {done}/{total if total is not None else '?'} {self.unit}"
        if total:
            text += f" ({100 * done / total:.0f} %)"
        if done and elapsed > 0:
            rate = done / elapsed
            text += f", {rate:.3g} {self.unit}/s"
            if total and not final:
                text += f", about {max(total - done, 0) / rate:.0f} s left"
        elif not final:
            text += f", working for {elapsed:.0f} s"
        return text + (f", done in {elapsed:.0f} s" if final else "")

    def _line(self, text: str) -> None:
        with self._lock:
            self.last = time.monotonic()
        self.console.print(text, highlight=False, markup=False)
