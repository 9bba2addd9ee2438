"""Shared by the refactoring integration tests: the real API process (module-scoped), a real recovery
leader (`Stack`: prober + analyzer + recovery in-process) on one nats-server, an HTTP client that waits
until the API knows the whole sandbox, and helpers that read the MySQL side on the servers themselves."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from libs.bus.server import NatsServer
from libs.models import InstanceKey
from libs.sandbox import Sandbox
from tests.integration.api.conftest import ApiProcess, new_store_url, start_api
from tests.integration.recovery.stack import Stack


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, nats_server_module: NatsServer) -> Iterator[ApiProcess]:
    tmp = tmp_path_factory.mktemp("api-refactor")
    proc = start_api(tmp, nats_server_module.url, new_store_url("sqlite", tmp, None), "sqlite")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def stack(sandbox4: Sandbox, nats_server_module: NatsServer) -> AsyncIterator[Stack]:
    s = await Stack(sandbox4, nats_server_module.url, retry_s=0.3).start()
    try:
        yield s
    finally:
        await s.stop()


@pytest.fixture
async def http(api: ApiProcess, stack: Stack, sandbox4: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client once the API knows the whole cluster (the prober's snapshots reached it)."""
    master = sandbox4.key("master")
    async with httpx.AsyncClient(base_url=api.api, timeout=120) as client:
        deadline = time.monotonic() + 30
        while True:
            resp = await client.get(f"/cluster/{master}")
            if resp.status_code == 200 and len(resp.json()) == len(sandbox4.names):
                break
            assert time.monotonic() < deadline, resp.text
            await asyncio.sleep(0.2)
        yield client


async def wait_master(sb: Sandbox, name: str, want: InstanceKey | None, within: float = 20.0) -> None:
    """`name` replicates from `want` (both threads running), or is no replica when `want` is None."""
    deadline = time.monotonic() + within
    while True:
        rows = await sb.sql(name, "SHOW SLAVE STATUS")
        if want is None and not rows:
            return
        if rows and want is not None:
            row = rows[0]
            here = f"{row['Master_Host']}:{row['Master_Port']}"
            if here == str(want) and row["Slave_IO_Running"] == "Yes" and row["Slave_SQL_Running"] == "Yes":
                return
        assert time.monotonic() < deadline, f"{name}: {rows[0] if rows else 'not a replica'}, want {want}"
        await asyncio.sleep(0.1)


def path(verb: str, *keys: InstanceKey, extra: str = "") -> str:
    parts = "/".join(f"{k.host}/{k.port}" for k in keys)
    return f"/{verb}/{parts}" + (f"/{extra}" if extra else "")


async def call(
    http: httpx.AsyncClient, verb: str, *keys: InstanceKey, extra: str = "", status: int = 200
) -> Any:
    resp = await http.post(path(verb, *keys, extra=extra))
    assert resp.status_code == status, (verb, resp.text)
    body = resp.json()
    assert body["Code"] == ("OK" if status == 200 else "ERROR"), body
    return body


def names(sb: Sandbox) -> tuple[InstanceKey, InstanceKey, InstanceKey, InstanceKey]:
    m, r1, r2, r3 = (sb.key(n) for n in ("master", "replica1", "replica2", "replica3"))
    return m, r1, r2, r3


async def back_to_star(sb: Sandbox) -> None:
    m = sb.key("master")
    for name in ("replica1", "replica2", "replica3"):
        await wait_master(sb, name, m)
    assert not await sb.sql("master", "SHOW SLAVE STATUS")
