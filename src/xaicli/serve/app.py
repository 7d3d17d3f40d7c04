"""The HTTP application (FastAPI): predict and explain an uploaded image, health and readiness, the
models served, the page at ``/``, the OpenAPI document at ``/openapi.json`` (``/docs`` renders it).

Every error is ``{"error": "<one line>"}`` with its status: 400 a bad parameter or an empty upload,
401 a missing or wrong token, 404 an unknown model, 408 an upload that did not arrive in time, 413
an upload over the byte or pixel limit, 415 not an image, 422 an image that cannot be read (truncated,
corrupt, DICOM without pixels or with burned-in patient data), 503 the queue full (with
``Retry-After``) or the models still warming up, 504 no answer within the request timeout.
The work of a request is :meth:`xaicli.serve.core.InferenceCore.analyse`; this module is HTTP only.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from xaicli import __version__
from xaicli.errors import XaicliError
from xaicli.serve import results
from xaicli.serve.core import InferenceCore, Options
from xaicli.serve.errors import Refused, refusal
from xaicli.serve.multipart import read_form
from xaicli.serve.security import AccessLog, token_matches

log = logging.getLogger("xaicli.serve")
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")

UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["image"],
    "properties": {
        "image": {"type": "string", "format": "binary",
                  "description": "PNG, JPEG, TIFF or DICOM (recognised by content; DICOM is de-identified on arrival)"},
        "region": {"type": "string", "format": "binary",
                   "description": "explain only: a mask (set pixels = region) to score each map against"},
    }}}}}}
ERRORS = {code: {"description": text} for code, text in {
    400: "bad parameter or empty upload", 401: "missing or wrong bearer token", 404: "unknown model",
    408: "upload too slow", 413: "upload over the byte or pixel limit", 415: "not an image",
    422: "image cannot be read", 503: "queue full (Retry-After) or warming up", 504: "no answer in time"}.items()}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(core: InferenceCore, *, token: bytes | None = None) -> FastAPI:
    """The application around ``core``; ``token``: the bearer token every data route needs."""
    config = core.config
    limits = config.limits

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await core.start()  # models loaded once, the worker and the TTL sweeper started
        try:
            yield
        finally:
            await core.stop()

    app = FastAPI(title="xaicli serve", version=__version__, lifespan=lifespan,
                  description="Predict and explain an image with the models of this service (docs/serve.md).")
    if config.host in LOOPBACK:  # a page elsewhere cannot reach a loopback service by DNS rebinding
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]"])
    app.add_middleware(AccessLog)
    app.state.core = core
    bearer = HTTPBearer(auto_error=False, description="the token of --token-file, when the service has one")

    async def authorized(request: Request, _: Any = Depends(bearer)) -> None:
        if not token_matches(request.headers.get("authorization"), token):
            raise Refused(401, "a valid bearer token is required (Authorization: Bearer ...)",
                          {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(Refused)
    async def refused(_: Request, exc: Refused) -> JSONResponse:
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        return _error(400, f"{where}: {first.get('msg', 'invalid')}")

    async def upload(request: Request) -> dict[str, bytes]:
        try:
            parts = await asyncio.wait_for(
                read_form(request.headers.get("content-type"), request.headers.get("content-length"),
                          request.stream(), limits.max_bytes), timeout=config.request_timeout)
        except asyncio.TimeoutError:
            raise Refused(408, f"the upload did not arrive within {config.request_timeout:g} s") from None
        if "image" not in parts:
            raise Refused(400, "send the image in a multipart form field named 'image'")
        return parts

    async def answer(request: Request, options: Options, *, colormap: str = "jet", alpha: float = 0.45,
                     maps: bool = False) -> JSONResponse:
        try:
            if options.method is not None:
                from xaicli.io.render import check_colormap

                check_colormap(colormap)
            with core.arriving():  # the worker waits for this one to fill its batch
                parts = await upload(request)
            analysis = await core.analyse(parts["image"], options, region=parts.get("region"))
            doc = await asyncio.to_thread(results.body, analysis, colormap=colormap, alpha=alpha,
                                          max_side=limits.max_side, numbers=maps)
        except Refused:
            raise
        except XaicliError as exc:
            raise refusal(exc) from None
        except Exception as exc:  # a bug: logged by type and place, never with the request's content
            log.error("internal error on %s: %s", request.url.path, type(exc).__name__, exc_info=exc)
            raise Refused(500, "the service failed on this request") from None
        return JSONResponse(doc)

    common = {"dependencies": [Depends(authorized)], "openapi_extra": UPLOAD_BODY, "responses": ERRORS}

    @app.post("/predict", summary="The model's prediction for an image", **common)
    async def predict(request: Request, model: str | None = Query(None, description="a served model (default: the first)"),
                      frame: int | None = Query(None, ge=0, description="the frame of a multi-frame file")) -> JSONResponse:
        """Class and probabilities (classification), value (regression) or mask size (segmentation)."""
        return await answer(request, Options(model=model, frame=frame))

    @app.post("/explain", summary="The prediction and its saliency map(s), as overlay PNGs", **common)
    async def explain(
        request: Request,
        method: str = Query(config.methods[0], description=f"one of the served methods: {', '.join(config.methods)}"),
        layer: str | None = Query(None, description="CAM methods: a layer name, several (comma-separated) or all-conv"),
        target: str | None = Query(None, description="predicted (default), a class index or name, output:K"),
        score: str = Query("probability", description="probability or logit (what a class target weighs)"),
        maps: bool = Query(False, description="also send each map as numbers"),
        metrics: str | None = Query(None, description="metrics to score the maps with (default with a region: "
                                                      "roi-ratio, background-ratio, entropy, pointing-hit)"),
        model: str | None = Query(None, description="a served model (default: the first)"),
        colormap: str = Query("jet", description="overlay colour map"),
        alpha: float = Query(0.45, ge=0.0, le=1.0, description="overlay heat-map weight"),
        frame: int | None = Query(None, ge=0, description="the frame of a multi-frame file"),
    ) -> JSONResponse:
        """The prediction, then per map its overlay (base64 PNG), value range, display, and with a
        region (form field ``region``) or ``metrics`` its scores."""
        from xaicli.pipeline.scoring import parse_list

        options = Options(model=model, method=method, layer=layer, target=target, score=score,
                          metrics=tuple(parse_list(metrics)), frame=frame)
        return await answer(request, options, colormap=colormap, alpha=alpha, maps=maps)

    @app.get("/health", summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="Readiness: models loaded and warmed up, worker running",
             responses={503: {"description": "starting or stopping"}})
    async def ready() -> JSONResponse:
        if core.ready and core.batcher.alive:
            return JSONResponse({"status": "ready", "models": list(core.models),
                                 "batched": {"batches": core.batcher.batches, "images": core.batcher.jobs}})
        return JSONResponse({"error": "the service is not ready (models warming up or stopping)",
                             "status": "starting"}, status_code=503)

    @app.get("/models", summary="The models served, their classes and the methods", dependencies=[Depends(authorized)])
    async def models() -> dict[str, Any]:
        return {"models": [_model_fields(name, core.info(name)) for name in core.models],
                "methods": list(config.methods),
                "limits": {"max_bytes": limits.max_bytes, "max_pixels": limits.max_pixels}}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_render_page(core, token_required=token is not None))

    return app


def _model_fields(name: str, info: Any) -> dict[str, Any]:
    return {"name": name, "task": info.task, "classes": list(info.class_names),
            "input_shape": list(info.input_shape)}


def _render_page(core: InferenceCore, *, token_required: bool) -> str:
    """The page (templates/index.html): self-contained, its colour scale inlined as a data URI."""
    import jinja2

    environment = jinja2.Environment(loader=jinja2.PackageLoader("xaicli.serve", "templates"),
                                     autoescape=jinja2.select_autoescape(["html"]))
    colorbar = base64.b64encode(results.colorbar_png("jet")).decode("ascii")
    return environment.get_template("index.html").render(
        models=[_model_fields(name, core.info(name)) for name in core.models], methods=list(core.config.methods),
        token_required=token_required, colorbar=colorbar, max_mb=core.limits.max_bytes / 2**20,
        version=__version__)
