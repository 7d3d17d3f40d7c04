"""Running the application with uvicorn: on 127.0.0.1 unless told otherwise, xaicli's log
configuration (no access log with query strings, see :mod:`xaicli.serve.security`), a bound on open
connections, and a keep-alive timeout so an idle connection does not hold a slot."""

from __future__ import annotations

from typing import Any

from xaicli.serve.config import ServeConfig
from xaicli.serve.core import InferenceCore

#: seconds an idle keep-alive connection is kept open
KEEP_ALIVE = 5


def build(core: InferenceCore, *, log_level: str = "info", configure_logging: bool = True) -> Any:
    """A ``uvicorn.Server`` for ``core`` (not started): ``server.run()`` (or ``run(sockets=[...])``
    on a socket bound already) serves until ``server.should_exit`` is set (SIGINT/SIGTERM when it
    runs in the main thread). ``configure_logging=False`` leaves logging as the process has it
    (every logger then reaches the root logger: the tests read them all)."""
    import uvicorn

    from xaicli.serve.app import create_app
    from xaicli.serve.security import log_config, read_token

    config: ServeConfig = core.config
    token = read_token(config.token_file) if config.token_file is not None else None
    app = create_app(core, token=token)
    uv = uvicorn.Config(app, host=config.host, port=config.port, log_config=log_config(log_level) if configure_logging else None,
                        access_log=False, limit_concurrency=config.max_connections, timeout_keep_alive=KEEP_ALIVE,
                        server_header=False, lifespan="on")
    return uvicorn.Server(uv)


def serve(core: InferenceCore, *, log_level: str = "info") -> None:
    """Serve until interrupted (the command line's ``xaicli serve``)."""
    server = build(core, log_level=log_level)
    server.run()
    if not server.started:  # uvicorn has logged why (address in use exits by itself)
        from xaicli.errors import XaicliError

        raise XaicliError(f"the service could not start on {core.config.host}:{core.config.port} "
                          "(address in use, or the models failed to load: see the log above)", exit_code=1)
