"""The chat bot end to end: ``xaicli-telegram`` as a person runs it (a subprocess) against a fake
Bot API server on 127.0.0.1, never the internet. A photo and a DICOM document are answered with
the class and an overlay; a file that is not an image, one over the size limit (refused before it
is fetched) and a stranger's message are not; nothing of the patient, the file names or the token
is in the bot's log; its temporary folder is gone when it stops."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fake_bot_api import FakeBotApi
from PIL import Image

ROOT = Path(__file__).resolve().parents[3]
MODEL = ROOT / "sample_data" / "models" / "chest" / "model.keras"
CHEST = ROOT / "sample_data" / "chest" / "test"
DICOM = ROOT / "sample_data" / "dicom"
TOKEN = "123456:TEST-token-of-the-fake-api"
DOCTOR, STRANGER = 1001, 666
PHI = ("Kowalczyk", "Annabel", "PID-448812-X", "19580314", "ACC20260311001", "Elsewhere", "Okonkwo", "Lindqvist")
PATIENCE = 180.0


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def fake_api():
    import uvicorn

    api = FakeBotApi(TOKEN)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(api.app, log_config=None, access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "the fake Bot API to start")
    api.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield api
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bot")
    token_file = tmp / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    log = tmp / "bot.log"
    with fake_api() as api, open(log, "wb") as stderr:
        command = [sys.executable, "-m", "xaicli_telegram", str(MODEL), "--token-file", str(token_file),
                   "--allowed-chat", str(DOCTOR), "--max-upload-mb", "0.1",
                   "--base-url", f"{api.url}/bot", "--base-file-url", f"{api.url}/file/bot"]
        env = {**os.environ, "TMPDIR": str(tmp)}
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            wait_for(lambda: process.poll() is not None or "getUpdates" in api.methods, "the bot to poll")
            assert process.poll() is None, log.read_text()
            api.log, api.process, api.tmp = log, process, tmp
            yield api
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(60)


def answer(api: FakeBotApi, chat: int = DOCTOR, **content) -> dict:
    before = len(api.replies_to(chat))
    api.message(chat, **content)
    wait_for(lambda: len(api.replies_to(chat)) > before, "the bot's reply")
    return api.replies_to(chat)[before]


def jpeg(path: Path) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).convert("L").save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def test_a_photo_is_answered_with_the_class_and_the_overlay(bot):
    data = jpeg(CHEST / "nodule" / "test_0016.png")  # Telegram sends photos as JPEG
    reply = answer(bot, photo=[bot.file(data, width=64, height=64)], caption="Kowalczyk")
    assert reply["kind"] == "photo" and reply["caption"].startswith("nodule (")
    assert "gradcam at relu4" in reply["caption"]
    overlay = np.asarray(Image.open(io.BytesIO(reply["photo"])))
    assert overlay.shape == (64, 64, 3) and overlay.dtype == np.uint8


def test_a_dicom_document_is_deidentified_and_answered(bot):
    data = (DICOM / "IM0004.dcm").read_bytes()
    document = bot.file(data, file_name="Kowalczyk^Annabel_PID-448812-X.dcm", mime_type="application/dicom")
    reply = answer(bot, document=document)
    assert reply["kind"] == "photo" and reply["caption"].startswith("cavity (")
    assert not any(value in reply["caption"] for value in PHI)


def test_what_is_not_an_image_or_too_large_is_refused_in_one_line(bot):
    text = bot.file(b"Kowalczyk Annabel, born 19580314\n" * 10, file_name="notes.txt", mime_type="text/plain")
    reply = answer(bot, document=text)
    assert reply == {"chat_id": DOCTOR, "kind": "text", "text": "Sorry: image: not an image (PNG, JPEG, TIFF, DICOM expected)"}
    big = bot.file(b"\x89PNG\r\n\x1a\n" + bytes(200 * 1024), file_name="big.png", mime_type="image/png")
    reply = answer(bot, document=big)
    assert reply["kind"] == "text" and "larger than the upload limit (102 KiB)" in reply["text"]
    assert big["file_id"] not in bot.downloads  # its announced size was enough to refuse it
    assert answer(bot, text="hello")["text"].startswith("Send a chest image")


def test_a_stranger_gets_no_answer_and_the_log_holds_nothing_of_the_patient_or_the_token(bot):
    bot.message(STRANGER, photo=[bot.file(jpeg(CHEST / "normal" / "test_0000.png"), width=64, height=64)])
    stranger_done = bot.message(DOCTOR, text="/help")  # updates are answered in order
    wait_for(lambda: any(s["chat_id"] == DOCTOR and "Send a chest image" in s.get("text", "")
                         for s in bot.sent[-1:]), "the doctor's /help reply")
    assert stranger_done and bot.replies_to(STRANGER) == []
    bot.process.send_signal(signal.SIGINT)
    bot.process.wait(60)
    log = bot.log.read_text()
    assert "answered a photo" in log and "answered a document" in log and "refused a document (415)" in log
    for value in (*PHI, TOKEN, "TEST-token", "notes.txt", "big.png"):
        assert value not in log, value
    assert not list(bot.tmp.glob("xaicli-serve-*"))  # the core's private folder went with it
