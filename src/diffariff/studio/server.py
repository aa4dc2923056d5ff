"""The studio's web server: a Starlette application serving one page and its JSON API.

Every answer of ``/api/...`` is JSON; an error is ``{"error": "<one line>"}`` with a 4xx status for
a request the studio refuses (bad upload, bad value, unknown lane) and 500 for a bug, whose
traceback goes to the server log only. Requests whose Host header is not the local machine are
refused (DNS rebinding), request bodies are limited in size (:class:`BodyLimit`), and the page's
Content-Security-Policy lets it load nothing from outside the server.

Routes (``{sid}``: a browser session, from ``POST /api/session``)::

    GET  /                                   the page            GET  /static/...   its assets
    GET  /api/info                           model state, samplers, limits
    POST /api/session                        a new browser session -> {"session": sid}
    GET  /api/s/{sid}                        the track: lanes, candidates, settings, active jobs
    POST /api/s/{sid}/start                  form: mode=mix|stems|silence, files, seconds
    POST /api/s/{sid}/lanes                  form: files -> more lanes
    PATCH/DELETE /api/s/{sid}/lanes/{lane}   JSON {name, muted, solo} / delete
    GET  /api/s/{sid}/lanes/{lane}/audio     float WAV for playback
    GET  /api/s/{sid}/lanes/{lane}/download?format=wav|flac     24-bit, 48 kHz
    GET  /api/s/{sid}/mix/download?format=wav|flac              the audible lanes' mix
    GET  /api/s/{sid}/candidates/{c}/audio   POST .../keep (JSON {replace, name})   DELETE one / all
    POST /api/s/{sid}/generate               form: options.generate fields, reference, style_reference
    POST /api/s/{sid}/edit                   form: options.edit fields
    GET  /api/s/{sid}/jobs/{job}             progress;  POST .../cancel
    PUT  /api/s/{sid}/settings               JSON: the page's settings (saved in the zip)
    GET  /api/s/{sid}/session.zip            POST /api/s/{sid}/open (form: file)
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import DiffariffError
from . import routes
from .jobs import JobQueue
from .uploads import Limits, StudioError, UploadTooLarge, one_line
from .workspace import Workspaces

log = logging.getLogger("diffariff.studio")
STATIC = Path(__file__).parent / "static"
LOCAL_HOSTS = ["127.0.0.1", "localhost", "[::1]", "::1"]
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")


class BodyLimit:
    """ASGI middleware: refuse request bodies larger than ``max_bytes`` (413), from the declared
    Content-Length at once, else while the body streams in (the handler's form parsing then raises
    :class:`UploadTooLarge`)."""

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, int(max_bytes)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            msg = f"the upload is larger than the limit of {self.max_bytes / 1e6:.0f} MB"
            await JSONResponse({"error": msg}, status_code=413)(scope, receive, send)
            return
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise UploadTooLarge(f"the upload is larger than the limit of {self.max_bytes / 1e6:.0f} MB")
            return message

        await self.app(scope, limited, send)


def error_response(exc: BaseException) -> JSONResponse:
    """One JSON line for any error (the traceback of an unexpected one goes to the log)."""
    if isinstance(exc, StudioError):
        return JSONResponse({"error": one_line(exc)}, status_code=exc.status)
    if isinstance(exc, DiffariffError):
        return JSONResponse({"error": one_line(exc)}, status_code=400)
    log.error("internal error", exc_info=exc)
    return JSONResponse({"error": one_line(f"internal error ({type(exc).__name__}); see the server log")},
                        status_code=500)


def endpoint(fn: Callable[..., Awaitable[Response | dict]]) -> Callable[[Request], Awaitable[Response]]:
    """A handler ``fn(studio, request)`` whose dict result is sent as JSON and whose errors are one
    JSON line."""

    @functools.wraps(fn)
    async def handler(request: Request) -> Response:
        try:
            out = await fn(request.app.state.studio, request)
        except Exception as exc:  # every error becomes one line for the page
            return error_response(exc)
        return JSONResponse(out) if isinstance(out, dict) else out

    return handler


class Studio:
    """What the handlers share: the model's job queue, the browser sessions and the limits."""

    def __init__(self, bundle: str, limits: Limits, loader: Callable[[], Any] | None = None):
        self.bundle, self.limits = str(bundle), limits
        self.workspaces = Workspaces(limits)

        def load() -> Any:
            from ..pipeline import Accompanist

            return Accompanist.from_pretrained(self.bundle)

        self.jobs = JobQueue(loader or load)

    def info(self) -> dict[str, Any]:
        acc = self.jobs.acc
        out: dict[str, Any] = {"model": self.jobs.state, "load_error": self.jobs.load_error, "bundle": self.bundle,
                               "limits": self.limits.public(), "sample_rate": 48_000, "busy": self.jobs.busy(),
                               "samplers": [], "default_sampler": None, "default_steps": {}}
        if acc is not None:
            modes = set(acc.models)
            out["samplers"] = (["heun", "dpmpp_2m", "euler"] if "edm" in modes else []) + \
                (["consistency"] if "consistency" in modes else [])
            out["default_sampler"] = acc.model_for(None)[1]
            out["default_steps"] = {("consistency" if m == "consistency" else "edm"): acc.models[m].config.default_sampling()[1]
                                    for m in modes}
            out["prior"] = acc.prior is not None
            out["bridge"] = acc.bridge is not None
        return out

    def close(self) -> None:
        self.jobs.close()
        self.workspaces.close_all()


async def page(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@endpoint
async def info(studio: Studio, request: Request) -> dict:
    return studio.info()


def create_app(bundle: str = "default", *, limits: Limits | None = None, allowed_hosts: list[str] | None = None,
               loader: Callable[[], Any] | None = None) -> Starlette:
    """The studio application. ``bundle``: model bundle folder or "default" (loaded once, in the
    worker thread, as the server starts); ``allowed_hosts``: Host header values accepted besides the
    local ones; ``loader``: build the Accompanist another way (tests)."""
    limits = limits or Limits()
    studio = Studio(bundle, limits, loader)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        try:
            yield
        finally:
            await run_in_threadpool(studio.close)

    async def csp(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    app = Starlette(
        routes=[Route("/", page), Route("/api/info", info), *routes.api_routes(endpoint),
                Mount("/static", StaticFiles(directory=STATIC), name="static")],
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=LOCAL_HOSTS + list(allowed_hosts or [])),
                    Middleware(BodyLimit, max_bytes=2 * limits.max_upload_bytes + (1 << 20)),
                    Middleware(BaseHTTPMiddleware, dispatch=csp)],
        exception_handlers={404: _not_found, 405: _not_allowed},
        lifespan=lifespan,
    )
    app.state.studio = studio
    return app


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": f"no such page: {one_line(request.url.path)}"}, status_code=404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": f"{request.method} is not allowed here"}, status_code=405)


def serve(bundle: str = "default", host: str = "127.0.0.1", port: int = 7860, *, limits: Limits | None = None,
          log_level: str = "warning") -> None:
    """Run the studio with uvicorn until interrupted (Ctrl-C)."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="diffariff studio: %(message)s")
    every = host.strip("[]") in ("0.0.0.0", "::")  # all interfaces: any address of this machine
    app = create_app(bundle, limits=limits, allowed_hosts=["*"] if every else [host])
    uvicorn.run(app, host=host, port=int(port), log_level=log_level, server_header=False, date_header=False)


__all__ = ["create_app", "serve", "Studio", "BodyLimit"]
