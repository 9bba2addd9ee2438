"""Run the API (projector + HTTP server) until `stop` is set: libs.service_main's `serve` contract."""

from __future__ import annotations

import asyncio
import logging

import uvicorn

from libs.aio import cancel_and_wait
from libs.config import Settings
from libs.errors import ConfigError
from libs.service_main import Serve, require_nats
from services.api.app import create_app
from services.api.numbers import is_number
from services.api.runtime import Runtime

log = logging.getLogger(__name__)


def split_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` (all interfaces) or `[v6]:PORT` → (host, port)."""
    host, _, port = listen.rpartition(":")
    if not is_number(port) or not 0 < int(port) < 65536:
        raise ConfigError(f"ListenAddress {listen!r}: expected HOST:PORT")
    return (host.strip("[]") or "0.0.0.0"), int(port)


def serve_with(*, listen: str | None = None, store: str | None = None, log_level: str = "warning") -> Serve:
    async def serve(settings: Settings, stop: asyncio.Event) -> None:
        require_nats(settings, "api")
        host, port = split_listen(listen or settings.ListenAddress)
        runtime = Runtime(settings, store_url=store)
        await runtime.start()
        try:
            config = uvicorn.Config(
                create_app(settings, runtime), host=host, port=port, log_level=log_level, access_log=False
            )
            server = uvicorn.Server(config)
            serving = asyncio.create_task(server.serve(), name="api http")
            stopping = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                server.should_exit = True
                stopping.cancel()
                try:
                    await asyncio.wait_for(asyncio.shield(serving), timeout=5)
                except TimeoutError:
                    await cancel_and_wait(serving)
            if not server.started and serving.done() and not serving.cancelled():
                raise ConfigError(f"API: could not listen on {host}:{port} (address in use?)")
            stop.set()  # the server ended by itself (a signal it captured): stop the others too
        finally:
            await runtime.stop()

    return serve


serve = serve_with()
