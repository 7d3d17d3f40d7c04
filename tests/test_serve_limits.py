"""``xaicli serve`` under pressure, through real servers on loopback ports: the bearer token, the
full queue (503 with Retry-After, filled deterministically by holding the worker), the request
timeout (504), the TTL sweep of upload folders, and the temporary folder gone after shutdown."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from serve_helpers import CHEST_MODEL, CHEST_TEST, running_service, wait_for

import xaicli
from xaicli.errors import InputError

NODULE = (CHEST_TEST / "nodule" / "test_0015.png").read_bytes()


@pytest.fixture(scope="module")
def chest():
    return xaicli.load_model(CHEST_MODEL)


class Gate:
    """A ``before_batch`` hook that holds the worker on its first batch until released."""

    def __init__(self) -> None:
        self.entered, self.released = threading.Event(), threading.Event()

    def __call__(self, jobs) -> None:
        self.entered.set()
        self.released.wait(120)


def test_the_token_is_required_on_every_data_route_and_compared_exactly(chest, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    token_file.chmod(0o600)
    with running_service({"chest": chest}, token_file=token_file) as service:
        for route in ("/predict", "/explain"):
            for headers in (None, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer s3cret-tokenX"},
                            {"Authorization": "Basic s3cret-token"}, {"Authorization": "Bearer s3cret-toke"}):
                response = service.post(route, NODULE, headers=headers)
                assert response.status_code == 401, (route, headers)
                assert response.headers["WWW-Authenticate"] == "Bearer"
                assert "bearer token" in response.json()["error"]
            good = service.post(route, NODULE, headers={"Authorization": "Bearer s3cret-token"})
            assert good.status_code == 200
        assert service.client.get("/models").status_code == 401
        assert service.client.get("/models", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        assert service.client.get("/health").status_code == 200 and service.client.get("/ready").status_code == 200
        page = service.client.get("/")
        assert page.status_code == 200 and 'id="token"' in page.text and "s3cret" not in page.text
        assert service.uploads() == []


def test_a_token_file_others_can_read_or_an_empty_one_is_refused(tmp_path):
    from xaicli.serve.security import read_token

    loose = tmp_path / "loose"
    loose.write_text("abc")
    loose.chmod(0o644)
    with pytest.raises(InputError, match="readable by others"):
        read_token(loose)
    empty = tmp_path / "empty"
    empty.write_text(" \n")
    empty.chmod(0o600)
    with pytest.raises(InputError, match="empty"):
        read_token(empty)
    with pytest.raises(InputError, match="no such token file"):
        read_token(tmp_path / "missing")


def test_a_full_queue_answers_503_with_retry_after_and_keeps_nothing(chest):
    """Queue of one: request A held in the worker, B waiting in the queue, so C finds it full."""
    with running_service({"chest": chest}, queue_size=1, retry_after=3) as service:
        gate = Gate()
        service.core.batcher.before_batch = gate
        with ThreadPoolExecutor(2) as pool:
            a = pool.submit(service.post, "/predict", NODULE)
            assert gate.entered.wait(120)
            b = pool.submit(service.post, "/predict", NODULE)
            wait_for(lambda: service.core.batcher.queue.full(), "B in the queue")
            c = service.post("/explain", NODULE)
            assert c.status_code == 503 and c.headers["Retry-After"] == "3"
            assert c.json() == {"error": "the service is busy; retry shortly"}
            assert len(service.uploads()) == 2  # A's and B's, not C's
            gate.released.set()
            assert a.result().status_code == 200 and b.result().status_code == 200
        service.core.batcher.before_batch = None
        assert service.post("/predict", NODULE).status_code == 200
        assert service.uploads() == []


def test_no_answer_within_the_timeout_is_504_and_the_upload_is_gone(chest):
    with running_service({"chest": chest}, request_timeout=1.0) as service:
        gate = Gate()
        service.core.batcher.before_batch = gate
        try:
            response = service.post("/explain", NODULE)
            assert response.status_code == 504 and "no answer within 1 s" in response.json()["error"]
            assert service.uploads() == []
        finally:
            gate.released.set()
        service.core.batcher.before_batch = None
        assert service.post("/predict", NODULE).status_code == 200


def test_the_ttl_removes_an_upload_folder_whatever_its_request_does(chest):
    """A request held in the worker keeps its folder past the TTL: the sweeper removes it anyway
    (the image is in memory by then: the request is still answered)."""
    with running_service({"chest": chest}, ttl=0.5) as service:
        gate = Gate()
        service.core.batcher.before_batch = gate
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(service.post, "/predict", NODULE)
            assert gate.entered.wait(120)
            assert len(service.uploads()) == 1
            wait_for(lambda: service.uploads() == [], "the sweeper to remove the held upload's folder")
            gate.released.set()
            assert held.result().json()["prediction"]["predicted"] == "nodule"
        service.core.batcher.before_batch = None


def test_shutdown_removes_the_services_folder_and_a_dead_services_folder_is_removed_later(chest, tmp_path):
    with running_service({"chest": chest}, temp_dir=tmp_path) as service:
        root = service.core.store.root
        assert root.parent == tmp_path and (root.stat().st_mode & 0o777) == 0o700
        assert service.post("/predict", NODULE).status_code == 200
    assert not root.exists() and list(tmp_path.iterdir()) == []

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f"xaicli-serve-{int(dead.stdout)}-abc123"
    (orphan / "0123456789abcdef").mkdir(parents=True)
    (orphan / "0123456789abcdef" / "image.dcm").write_bytes(b"left behind by a killed service")
    alive = tmp_path / f"xaicli-serve-{os.getpid()}-def456"  # this process: alive, kept
    alive.mkdir()
    from xaicli.serve.uploads import TempStore

    store = TempStore(60, tmp_path)
    store.open()
    assert not orphan.exists() and alive.exists()
    store.close()
