"""ACL token checks, and the subprocess form that keeps its data through a restart."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.consul_server import ConsulTestServer, ServerConfig
from tests.fixtures.consul import ConsulDCFactory

WRITE = "write-token-0123456789"
READ = "read-token-0123456789"


@pytest.fixture
async def acl_server() -> AsyncIterator[ConsulTestServer]:
    async with ConsulTestServer(ServerConfig(acl_token=WRITE, read_token=READ)) as server:
        yield server


async def test_acl_rules(acl_server: ConsulTestServer) -> None:
    async with httpx.AsyncClient(base_url=acl_server.url) as http:
        put = await http.put("/v1/kv/k", content=b"v", headers={"X-Consul-Token": WRITE})
        assert put.json() is True
        # anonymous: denied
        assert (await http.get("/v1/kv/k")).status_code == 403
        assert (await http.put("/v1/kv/k", content=b"x")).text == "Permission denied"
        filtered = await http.get("/v1/kv/", params={"recurse": ""})
        assert filtered.status_code == 404
        assert filtered.headers["X-Consul-Results-Filtered-By-ACLs"] == "true"
        # unknown token
        wrong = await http.get("/v1/kv/k", headers={"X-Consul-Token": "guess"})
        assert (wrong.status_code, wrong.text) == (403, "ACL not found")
        # read token: reads yes, writes no; ?token= works too
        assert (await http.get("/v1/kv/k", params={"token": READ})).status_code == 200
        assert (await http.delete("/v1/kv/k", headers={"X-Consul-Token": READ})).status_code == 403
        # a transaction reports denied operations per operation (409), as Txn.Apply's pre-check does
        ops = [{"KV": {"Verb": "set", "Key": "k", "Value": base64.b64encode(b"x").decode()}}]
        txn = await http.put("/v1/txn", json=ops, headers={"X-Consul-Token": READ})
        assert txn.status_code == 409
        assert txn.json()["Errors"] == [{"OpIndex": 0, "What": "Permission denied"}]
        ok = await http.put("/v1/txn", json=ops, headers={"Authorization": f"Bearer {WRITE}"})
        assert ok.status_code == 200
        raw = await http.get("/v1/kv/k", params={"raw": ""}, headers={"X-Consul-Token": WRITE})
        assert raw.content == b"x"


async def test_subprocess_dc_keeps_data_across_restart_on_same_port(consul_dcs: ConsulDCFactory) -> None:
    [dc] = consul_dcs(1)
    async with httpx.AsyncClient(base_url=dc.url) as http:
        assert (await http.get("/v1/agent/self")).json()["Config"]["Datacenter"] == "dc1"
        await http.put("/v1/kv/keep/me", content=b"v1")
        [before] = (await http.get("/v1/kv/keep/me")).json()
    port, pid = dc.port, dc.pid

    await dc.astop(kill=True)  # even SIGKILL loses nothing: state is written on every change
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=dc.url) as http:
            await http.get("/v1/kv/keep/me")

    await dc.astart()
    assert dc.port == port and dc.pid != pid
    async with httpx.AsyncClient(base_url=dc.url) as http:
        [after] = (await http.get("/v1/kv/keep/me")).json()
        assert after == before
        await http.put("/v1/kv/keep/me", content=b"v2")
        [again] = (await http.get("/v1/kv/keep/me")).json()
        assert again["ModifyIndex"] > before["ModifyIndex"]  # the raft index survived too

    await dc.astop()
    dc.reset()
    await dc.astart()
    async with httpx.AsyncClient(base_url=dc.url) as http:
        assert (await http.get("/v1/kv/keep/me")).status_code == 404
