"""The FastAPI application: routes, auth, the envelope, and the runtime's lifecycle.

`create_app(settings)` starts its own `Runtime` in the lifespan; `create_app(settings, runtime=rt)`
serves an already started one (tests, `baton up`, which share it with other services).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from libs.config import Settings
from libs.config.derive import analysis_params
from libs.config.reload import current_source
from services.api import envelope
from services.api.auth import Authenticator
from services.api.routes import (
    audit,
    baton,
    event_stream,
    health,
    instances,
    metrics,
    questions,
    read,
    recovery,
    refactor,
    ui,
)
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


def reconfigure(app: FastAPI, settings: Settings) -> None:
    """Apply reloaded settings (libs/config/reload.py, LIVE_KEYS["api"]): the routes read them per
    request through the runtime and the authenticator."""
    rt: Runtime = app.state.runtime
    rt.settings = settings
    rt.params = analysis_params(settings)
    rt.poll = timedelta(seconds=settings.InstancePollSeconds)
    app.state.auth = Authenticator(settings)


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
    source = current_source()
    if source is not None and source.service == "api":  # reload-configuration / SIGHUP
        source.listen(lambda new: reconfigure(app, new))
    envelope.install(app)
    for module in (
        health,
        read,
        instances,
        recovery,
        refactor,
        audit,
        baton,
        questions,
        event_stream,
        ui,
        metrics,
    ):
        app.include_router(module.router)
    if settings.StatusEndpoint != "/api/status":  # orchestrator's StatusEndpoint: the status, elsewhere too
        app.add_api_route(
            settings.StatusEndpoint, health.status, methods=["GET"], summary="Status (StatusEndpoint)"
        )
    app.add_middleware(StripTrailingSlash)
    return app
