"""A fake Telegram Bot API server on 127.0.0.1 for the bot's end-to-end tests (never the internet).

It speaks the part of the Bot API (https://core.telegram.org/bots/api) the bot uses: ``getMe``,
``getUpdates`` (long polling, bounded), ``getFile`` and the file download under ``/file/bot<token>/``,
``sendMessage``, ``sendPhoto``; any other method answers ``true``. The test queues updates with
:meth:`FakeBotApi.message` and reads what the bot sent in :attr:`FakeBotApi.sent`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

BOT = {"id": 4242, "is_bot": True, "first_name": "xaicli", "username": "xaicli_test_bot",
       "can_join_groups": False, "can_read_all_group_messages": False, "supports_inline_queries": False}


class FakeBotApi:
    def __init__(self, token: str) -> None:
        self.token = token
        self.lock = threading.Lock()
        self.updates: list[dict[str, Any]] = []
        self.files: dict[str, bytes] = {}
        self.downloads: list[str] = []
        self.sent: list[dict[str, Any]] = []
        self.methods: list[str] = []
        self._ids = 0
        self.app = Starlette(routes=[
            Route("/bot{token}/{method}", self.call, methods=["GET", "POST"]),
            Route("/file/bot{token}/{path:path}", self.download, methods=["GET"]),
        ])

    def _next(self) -> int:
        self._ids += 1
        return self._ids

    # -------------------------------------------------------------- the test's side

    def message(self, chat: int, **content: Any) -> int:
        """Queue an update holding a message from ``chat`` (``text=``, ``photo=``, ``document=``)."""
        with self.lock:
            update_id = self._next()
            self.updates.append({"update_id": update_id, "message": {
                "message_id": update_id, "date": int(time.time()),
                "chat": {"id": chat, "type": "private", "first_name": "Dr"},
                "from": {"id": chat, "is_bot": False, "first_name": "Dr"}, **content}})
        return update_id

    def file(self, data: bytes, **fields: Any) -> dict[str, Any]:
        """A file the bot can fetch; returns its PhotoSize/Document fields."""
        with self.lock:
            file_id = f"file{self._next()}"
            self.files[file_id] = data
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": len(data), **fields}

    def replies_to(self, chat: int) -> list[dict[str, Any]]:
        with self.lock:
            return [s for s in self.sent if s["chat_id"] == chat]

    # -------------------------------------------------------------- the bot's side

    async def call(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return JSONResponse({"ok": False, "error_code": 401, "description": "Unauthorized"}, status_code=401)
        method = request.path_params["method"]
        form = await request.form() if request.method == "POST" else {}
        fields = {key: value for key, value in form.items()}
        if request.headers.get("content-type", "").startswith("application/json"):
            fields = await request.json()
        self.methods.append(method)
        handler = getattr(self, f"do_{method}", None)
        result = await handler(fields) if handler else True
        return JSONResponse({"ok": True, "result": result})

    async def do_getMe(self, fields: dict) -> dict:  # noqa: N802 - Bot API method names
        return BOT

    async def do_getUpdates(self, fields: dict) -> list:  # noqa: N802
        offset = int(fields.get("offset") or 0)
        deadline = time.monotonic() + min(float(fields.get("timeout") or 0), 2.0)
        while True:
            with self.lock:
                pending = [u for u in self.updates if u["update_id"] >= offset]
            if pending or time.monotonic() >= deadline:
                return pending
            await asyncio.sleep(0.05)

    async def do_getFile(self, fields: dict) -> dict:  # noqa: N802
        file_id = str(fields["file_id"])
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": len(self.files[file_id]),
                "file_path": f"documents/{file_id}"}

    async def _sent(self, fields: dict, kind: str, **extra: Any) -> dict:
        chat = int(fields["chat_id"])
        with self.lock:
            message_id = self._next()
            self.sent.append({"chat_id": chat, "kind": kind, **extra})
        return {"message_id": message_id, "date": int(time.time()), "chat": {"id": chat, "type": "private"},
                "from": BOT, **({"text": extra["text"]} if kind == "text" else {})}

    async def do_sendMessage(self, fields: dict) -> dict:  # noqa: N802
        return await self._sent(fields, "text", text=str(fields["text"]))

    async def do_sendPhoto(self, fields: dict) -> dict:  # noqa: N802
        photo = fields["photo"]
        data = await photo.read() if hasattr(photo, "read") else b""
        return await self._sent(fields, "photo", photo=data, caption=str(fields.get("caption", "")))

    async def download(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return Response(status_code=401)
        file_id = request.path_params["path"].rsplit("/", 1)[-1]
        with self.lock:
            self.downloads.append(file_id)
            data = self.files.get(file_id)
        return Response(data, media_type="application/octet-stream") if data is not None else Response(status_code=404)
