"""A real ``xaicli serve`` on a loopback port, in a thread of the test process (shared by the serve,
page and README tests): the socket is bound first (port 0: the system picks a free one), then
uvicorn serves on it, and the helper waits until ``/ready`` says the models are warmed up."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
CHEST_MODEL = ROOT / "sample_data" / "models" / "chest" / "model.keras"
CHEST_TEST = ROOT / "sample_data" / "chest" / "test"
#: patient values the shipped DICOM series carries (sample_data/README.md): none may come back
PHI = ("Kowalczyk", "Annabel", "PID-448812-X", "19580314", "ACC20260311001", "Elsewhere", "Harbour Road",
       "Okonkwo", "Lindqvist", "SN-77120", "S1104", "SPS-5521", "RP-5521", "CR-ROOM-3")
#: how long a helper waits for a condition before failing (a bound, not a timed assertion)
PATIENCE = 120.0


def loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    with contextlib.closing(loopback_socket()) as sock:
        return sock.getsockname()[1]


def wait_for(condition, what: str, patience: float = PATIENCE) -> None:
    deadline = time.monotonic() + patience
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


class Service:
    """A running service: ``url``, ``core`` (the inference core, for test hooks), ``client``."""

    def __init__(self, core, server, thread, url: str) -> None:
        self.core, self.server, self.thread, self.url = core, server, thread, url
        self.client = httpx.Client(base_url=url, timeout=PATIENCE)

    def post(self, route: str, image: bytes | None = None, *, region: bytes | None = None, params=None,
             headers=None, name: str = "upload.png") -> httpx.Response:
        files = {}
        if image is not None:
            files["image"] = (name, image, "application/octet-stream")
        if region is not None:
            files["region"] = ("region.png", region, "image/png")
        return self.client.post(route, files=files or {"other": ("x", b"1")}, params=params, headers=headers)

    def uploads(self) -> list[Path]:
        return self.core.store.entries()


@contextlib.contextmanager
def running_service(models: dict | None = None, **config) -> Iterator[Service]:
    """Serve ``models`` (default: the shipped chest model as ``chest``) with ``ServeConfig(**config)``
    (``limits`` may be a dict of :class:`~xaicli.serve.config.Limits` fields)."""
    from xaicli.serve.config import Limits, ServeConfig
    from xaicli.serve.core import InferenceCore
    from xaicli.serve.server import build

    limits = config.pop("limits", {})
    sock = loopback_socket()
    port = sock.getsockname()[1]
    core = InferenceCore(models or {"chest": CHEST_MODEL}, ServeConfig(port=port, limits=Limits(**limits), **config))
    server = build(core, configure_logging=False)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="test-serve", daemon=True)
    thread.start()
    service = Service(core, server, thread, f"http://127.0.0.1:{port}")
    try:
        wait_for(lambda: server.started or not thread.is_alive(), "the server to start")
        assert thread.is_alive(), "the server did not start"
        wait_for(lambda: service.client.get("/ready").status_code == 200, "the models to warm up")
        yield service
    finally:
        server.should_exit = True
        thread.join(PATIENCE)
        service.client.close()
        sock.close()


class LogRecords(logging.Handler):
    """Every log record of every logger, formatted with its traceback, kept for inspection."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@contextlib.contextmanager
def capture_logs() -> Iterator[LogRecords]:
    handler = LogRecords()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
