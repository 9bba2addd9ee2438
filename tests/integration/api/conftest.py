"""Fixtures of the API tests: read-model backends (SQLite file, MariaDB on a one-node sandbox), the
API as a real subprocess (`python -m services.api`) on a free port against a real nats-server, and a
4-node sandbox whose probed snapshots are published the way the prober publishes them.

`api` is parametrized over both read-model backends, module-scoped: each test module runs once per
backend against a fresh API process and a fresh database.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from libs.bus.connection import connect
from libs.bus.messages import publish_model
from libs.bus.provision import provision
from libs.bus.server import NatsServer, free_port
from libs.bus.subjects import snapshot_subject
from libs.models import InstanceSnapshot
from libs.mysql.connection import ConnectionPool
from libs.mysql.probe import probe
from libs.sandbox import NodeSpec, Sandbox, TopologySpec

REPO = Path(__file__).resolve().parents[3]
STORE_USER = "baton_rm"
STORE_PASSWORD = "rm-secret-pw"


@pytest.fixture(scope="session")
def mariadb_store(tmp_path_factory: pytest.TempPathFactory, sandbox_template: Path) -> Iterator[Sandbox]:
    """A one-node MariaDB (sandbox code) holding the read-model databases of the tests."""
    spec = TopologySpec(shape="store", nodes=(NodeSpec(name="store"),))
    sb = Sandbox(tmp_path_factory.mktemp("rm-mariadb"), spec, template_dir=sandbox_template)
    try:
        asyncio.run(sb.start())
        asyncio.run(
            sb.script(
                "store",
                [
                    (f"CREATE USER IF NOT EXISTS '{STORE_USER}'@'%%' IDENTIFIED BY %s", (STORE_PASSWORD,)),
                    f"GRANT ALL ON *.* TO '{STORE_USER}'@'%'",
                ],
            )
        )
        yield sb
    finally:
        asyncio.run(sb.stop())


def new_store_url(backend: str, tmp: Path, mariadb: Sandbox | None) -> str:
    """A fresh, empty read model on `backend`."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp}/rm-{uuid.uuid4().hex[:8]}.db"
    assert mariadb is not None
    db = f"rm_{uuid.uuid4().hex[:10]}"
    asyncio.run(mariadb.sql("store", f"CREATE DATABASE {db}"))
    port = mariadb.key("store").port
    return f"mysql+asyncmy://{STORE_USER}:{STORE_PASSWORD}@127.0.0.1:{port}/{db}?charset=utf8mb4"


@pytest.fixture(params=["sqlite", "mariadb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    mariadb = request.getfixturevalue("mariadb_store") if request.param == "mariadb" else None
    return new_store_url(request.param, tmp_path, mariadb)


@dataclass
class ApiProcess:
    """A running `python -m services.api`."""

    base: str  # http://127.0.0.1:PORT
    nats_url: str
    store_url: str
    backend: str
    proc: subprocess.Popen[bytes]
    log: Path
    config: Path

    @property
    def api(self) -> str:
        return f"{self.base}/api"

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(f"{self.api}/{path.lstrip('/')}", timeout=30, **kw)

    def wait_for(self, path: str, check: Any, within: float = 15.0, **kw: Any) -> httpx.Response:
        """GET `path` until `check(response)` is true; the last response otherwise (assert on it)."""
        deadline = time.monotonic() + within
        while True:
            resp = self.get(path, **kw)
            if check(resp) or time.monotonic() > deadline:
                return resp
            time.sleep(0.1)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_api(
    tmp: Path, nats_url: str, store_url: str, backend: str, config: dict[str, Any] | None = None
) -> ApiProcess:
    port = free_port()
    cfg = tmp / f"api-{port}.json"
    # The tests publish each snapshot once, as a prober that has just probed; with a 1 s poll every
    # instance would count as stale (not live, so no cluster master) a few seconds later.
    cfg.write_text(json.dumps({"InstancePollSeconds": 60, **(config or {})}))
    log = tmp / f"api-{port}.log"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [
        sys.executable,
        "-m",
        "services.api",
        "--config",
        str(cfg),
        "--listen",
        f"127.0.0.1:{port}",
        "--nats",
        nats_url,
        "--store",
        store_url,
        "--log-level",
        "warning",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    api = ApiProcess(f"http://127.0.0.1:{port}", nats_url, store_url, backend, proc, log, cfg)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"API exited with {proc.returncode}: {api.logs()[-2000:]}")
        try:
            if httpx.get(f"{api.api}/health", timeout=2).status_code == 200:
                return api
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    api.stop()
    raise RuntimeError(f"API did not come up: {api.logs()[-2000:]}")


@pytest.fixture(scope="module", params=["sqlite", "mariadb"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, nats_server_module: NatsServer
) -> Iterator[ApiProcess]:
    """The API (no auth) on a fresh read model of each backend, sharing the module's NATS server."""
    tmp = tmp_path_factory.mktemp(f"api-{request.param}")
    mariadb = request.getfixturevalue("mariadb_store") if request.param == "mariadb" else None
    url = new_store_url(request.param, tmp, mariadb)
    proc = start_api(tmp, nats_server_module.url, url, request.param, {"RecoverMasterClusterFilters": ["*"]})
    try:
        yield proc
    finally:
        proc.stop()


async def probe_all(sb: Sandbox) -> list[InstanceSnapshot]:
    pool = ConnectionPool()
    try:
        return [await probe(sb.key(name), sb.topology_creds, pool=pool, prober="test") for name in sb.names]
    finally:
        pool.close()


async def publish_snapshots(nats_url: str, snapshots: list[InstanceSnapshot]) -> None:
    bus = await connect(nats_url, "api-test")
    try:
        await provision(bus.js)
        for snap in snapshots:
            await publish_model(bus.js, snapshot_subject(snap.key), snap)
    finally:
        await bus.close()


def publish_topology(sb: Sandbox, nats_url: str) -> list[InstanceSnapshot]:
    """Probe every node of the sandbox for real and publish the snapshots (as the prober would)."""
    snaps = asyncio.run(probe_all(sb))
    assert all(s.reachable for s in snaps), [s.error for s in snaps]
    asyncio.run(publish_snapshots(nats_url, snaps))
    return snaps
