"""The bearer token, and logs that carry nothing of an upload.

The token (RFC 6750 ``Authorization: Bearer ...``) is read from a file, so it appears neither on
a command line (``ps``) nor in the shell's history, and compared in constant time
(:func:`hmac.compare_digest`: the time taken says nothing about how much of a guess was right).

Logs: uvicorn's access log prints the request line, query string included; it is replaced by
:class:`AccessLog`, one line per request with the method, the route's template (``/explain``, never
the path as sent), the status and the time taken. Nothing else of a request is logged anywhere:
not a file name, not a form field, not a header value.
"""

from __future__ import annotations

import hmac
import logging
import os
import stat
import time
from pathlib import Path
from typing import Any

from xaicli.errors import InputError

access_log = logging.getLogger("xaicli.serve.access")


def read_token(path: str | os.PathLike[str]) -> bytes:
    """The token in ``path`` (surrounding whitespace dropped); refused when empty or readable by others."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        token = path.read_bytes().strip()
    except FileNotFoundError:
        raise InputError(f"{path}: no such token file", parameter="token_file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the token file ({exc.strerror or exc})", parameter="token_file") from None
    if not token:
        raise InputError(f"{path}: the token file is empty", parameter="token_file")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(f"{path}: the token file is readable by others; chmod 600 it", parameter="token_file")
    return token


def token_matches(header: str | None, token: bytes | None) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (always true when no token is set)."""
    if token is None:
        return True
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"), token)


class AccessLog:
    """ASGI middleware: ``POST /explain 200 12.3 ms`` per request (the route's template only)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "(no route)"
            access_log.info("%s %s %d %.1f ms", scope.get("method", "?"), path, status["code"],
                            (time.perf_counter() - started) * 1000.0)


def log_config(level: str = "info") -> dict[str, Any]:
    """Logging for ``xaicli serve``: uvicorn's error log and xaicli's own lines on stderr; no
    uvicorn access log (see the module docstring)."""
    formatter = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    handler = {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": formatter},
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
            "xaicli": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
        },
    }
