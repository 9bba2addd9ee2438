"""The FastAPI application: routes, auth, the envelope, and the runtime's lifecycle.

`create_app(settings)` starts its own `Runtime` in the lifespan; `create_app(settings, runtime=rt)`
serves an already started one (tests, `baton up`, which share it with other services).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from libs.config import Settings
from services.api import envelope
from services.api.auth import Authenticator
from services.api.routes import audit, baton, event_stream, health, instances, read, recovery, ui
from services.api.runtime import Runtime

log = logging.getLogger(__name__)


def _version() -> str:
    try:
        return version("baton")
    except PackageNotFoundError:
        return "0"


def listen_host(settings: Settings) -> str:
    host = settings.ListenAddress.rsplit(":", 1)[0].strip("[]")
    return host or "0.0.0.0"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StripTrailingSlash:
    """`/api/downtimed/` (what orchestrator-client sends for `downtimed` without a cluster) is served
    as `/api/downtimed`, instead of a redirect that curl does not follow."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if len(path) > 1 and path.endswith("/"):
                scope = {**scope, "path": path.rstrip("/") or "/", "raw_path": None}
        await self.app(scope, receive, send)


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    owned = runtime is None
    rt = runtime or Runtime(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if owned:
            await rt.start()
        try:
            yield
        finally:
            if owned:
                await rt.stop()

    if not settings.AuthenticationMethod and not is_loopback(listen_host(settings)):
        log.warning(
            "api: listening on %s with no authentication (set AuthenticationMethod)", settings.ListenAddress
        )
    app = FastAPI(
        title="Baton API",
        version=_version(),
        description="orchestrator-compatible HTTP API of Baton (routes under /api/), plus Baton's own "
        "(/api/baton/..., /api/events). See docs/api.md.",
        lifespan=lifespan,
        root_path=settings.URLPrefix.rstrip("/"),
    )
    app.state.runtime = rt
    app.state.auth = Authenticator(settings)
    envelope.install(app)
    for module in (health, read, instances, recovery, audit, baton, event_stream, ui):
        app.include_router(module.router)
    app.add_middleware(StripTrailingSlash)
    return app
