"""Run the test Consul in-process on a loopback port (tests) or as a process (`python -m`)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from tests.consul_server.app import ConsulApp, ServerConfig
from tests.consul_server.store import KVStore

STATE_FILE_NAME = "consul-kv.json"


class ConsulTestServer:
    """One test datacenter's Consul. `start()` binds 127.0.0.1 (port 0 → a free one)."""

    def __init__(self, config: ServerConfig | None = None, *, data_dir: Path | None = None) -> None:
        self.config = config or ServerConfig()
        state_file = data_dir / STATE_FILE_NAME if data_dir is not None else None
        self.store = KVStore(state_file)
        self._runner: web.AppRunner | None = None
        self.host = "127.0.0.1"
        self.port = 0

    @property
    def address(self) -> str:
        """`host:port`, what a Consul client is configured with."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = ConsulApp(self.store, self.config).build()
        # Blocking queries hang for up to `wait`; don't let shutdown wait for them.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.host = host
        self.port = sockets[0].getsockname()[1] if sockets else port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ConsulTestServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
