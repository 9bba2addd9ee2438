"""Run the API (projector + HTTP server) until `stop` is set: libs.service_main's `serve` contract.

HTTPS: orchestrator's `UseSSL` with `SSLCertFile`/`SSLPrivateKeyFile` serves the API over TLS only;
`UseMutualTLS` also requires a client certificate signed by `SSLCAFile`. The files are checked before
the server starts, so a bad one fails at start naming its key.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path
from typing import Any

import uvicorn

from libs.aio import cancel_and_wait
from libs.config import Settings
from libs.errors import ConfigError
from libs.service_main import Serve, require_nats
from libs.tls import TLSFileError, server_context
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


def https_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's TLS options for UseSSL/SSLCertFile/SSLPrivateKeyFile/UseMutualTLS/SSLCAFile ({} when
    UseSSL is false). Raises ConfigError naming the key whose file is missing or unusable."""
    if not settings.UseSSL:
        if settings.UseMutualTLS:
            raise ConfigError("UseMutualTLS: needs UseSSL (client certificates are a part of HTTPS)")
        return {}
    for key in ("SSLCertFile", "SSLPrivateKeyFile"):
        path = getattr(settings, key)
        if not path:
            raise ConfigError(f"{key}: needed with UseSSL")
        if not Path(path).is_file():
            raise ConfigError(f"{key}: {path!r} is not a readable file")
    if settings.UseMutualTLS and not settings.SSLCAFile:
        raise ConfigError("SSLCAFile: needed with UseMutualTLS (the CA of the client certificates)")
    client_ca = settings.SSLCAFile if settings.UseMutualTLS else ""
    try:
        server_context(settings.SSLCertFile, settings.SSLPrivateKeyFile, client_ca)
    except TLSFileError as exc:
        key = "SSLCAFile" if exc.what == "ca_file" else "SSLCertFile/SSLPrivateKeyFile"
        raise ConfigError(f"{key}: {exc}") from None
    options: dict[str, Any] = {
        "ssl_certfile": settings.SSLCertFile,
        "ssl_keyfile": settings.SSLPrivateKeyFile,
    }
    if client_ca:
        options |= {"ssl_ca_certs": client_ca, "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return options


def serve_with(*, listen: str | None = None, store: str | None = None, log_level: str = "warning") -> Serve:
    async def serve(settings: Settings, stop: asyncio.Event) -> None:
        require_nats(settings, "api")
        host, port = split_listen(listen or settings.ListenAddress)
        tls = https_options(settings)
        runtime = Runtime(settings, store_url=store)
        await runtime.start()
        try:
            config = uvicorn.Config(
                create_app(settings, runtime),
                host=host,
                port=port,
                log_level=log_level,
                access_log=False,
                **tls,
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
