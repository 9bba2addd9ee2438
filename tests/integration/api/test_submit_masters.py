"""`submit-masters-to-kv-stores[/{clusterHint}]`, the `baton submit-masters-to-kv-stores` verb and
orchestrator-client's: the API process resolves the hint and asks a real recovery leader (in-process,
on the API's nats-server, probing the 4-node sandbox), which writes baton_masters and answers
orchestrator's envelope with the submitted KV pairs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from libs.bus.connection import connect
from libs.bus.server import NatsServer
from libs.kv.layout import cluster_master_kv_pairs
from libs.models import InstanceKey, MasterRecord
from libs.sandbox import Sandbox
from services.recovery.service import RecoveryService
from tests.integration.api.conftest import ApiProcess, new_store_url, publish_topology, start_api
from tests.integration.e2e.test_baton_up import baton_cli
from tests.integration.recovery.stack import master_of, stack_settings

ROUTE = "submit-masters-to-kv-stores"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, nats_server_module: NatsServer) -> Iterator[ApiProcess]:
    """The API on SQLite only: the read model plays no part in this command."""
    tmp = tmp_path_factory.mktemp("api-submit")
    proc = start_api(tmp, nats_server_module.url, new_store_url("sqlite", tmp, None), "sqlite")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def master(api: ApiProcess, sandbox4: Sandbox) -> str:
    publish_topology(sandbox4, api.nats_url)
    name = str(sandbox4.key("master"))
    api.wait_for("cluster/" + name, lambda r: r.status_code == 200 and len(r.json()) == 4)
    return name


@contextlib.asynccontextmanager
async def recovery_leader(nats_url: str, sb: Sandbox, within: float = 30.0) -> AsyncIterator[RecoveryService]:
    settings = stack_settings(nats_url, [str(sb.key(n)) for n in sb.names])
    service = await RecoveryService(settings, node="submit-test").start()
    try:
        deadline = time.monotonic() + within
        keys = {sb.key(n) for n in sb.names}
        while not (service.is_leader and keys <= set(service.memory.states)):
            assert time.monotonic() < deadline, "the recovery service did not lead with the fleet known"
            await asyncio.sleep(0.1)
        yield service
    finally:
        await service.stop()


def expected_pairs(master: str, epoch: int) -> list[dict[str, str]]:
    record = MasterRecord(cluster=master, alias=master, master=InstanceKey.parse(master), epoch=epoch)
    return [{"Key": k, "Value": v} for k, v in cluster_master_kv_pairs(record, "mysql/master").items()]


def test_no_recovery_leader_is_503_and_an_unknown_cluster_404(api: ApiProcess, master: str) -> None:
    for path in (ROUTE, f"{ROUTE}/", f"{ROUTE}/{master}"):
        resp = api.get(path)
        assert resp.status_code == 503, (path, resp.text)
        body = resp.json()
        assert body["Code"] == "ERROR" and "no recovery leader" in body["Message"]
    resp = httpx.post(f"{api.api}/{ROUTE}", timeout=30)
    assert resp.status_code == 503
    resp = api.get(f"{ROUTE}/no-such-cluster")
    assert resp.status_code == 404
    assert resp.json() == {
        "Code": "ERROR",
        "Message": "Unable to determine cluster name. clusterHint=no-such-cluster",
        "Details": None,
    }


@pytest.mark.timeout(180)
async def test_submit_with_a_leader_route_cli_and_orchestrator_client(
    api: ApiProcess, master: str, sandbox4: Sandbox
) -> None:
    replica = str(sandbox4.key("replica2"))
    async with (
        recovery_leader(api.nats_url, sandbox4) as leader,
        httpx.AsyncClient(base_url=api.api, timeout=60) as http,
    ):
        epoch = leader.status()["epoch"]
        want = expected_pairs(master, epoch)
        for method, path in (
            ("GET", ROUTE),
            ("POST", ROUTE),
            ("GET", f"{ROUTE}/"),
            ("GET", f"{ROUTE}/{master}"),
            ("POST", f"{ROUTE}/{replica}"),
        ):
            resp = await http.request(method, f"/{path}")
            assert resp.status_code == 200, (method, path, resp.text)
            assert resp.json() == {"Code": "OK", "Message": "Submitted 1 masters", "Details": want}, path
        resp = await http.get(f"/{ROUTE}/no-such-cluster")
        assert resp.status_code == 404
        assert resp.json()["Message"] == "Unable to determine cluster name. clusterHint=no-such-cluster"

        bus = await connect([api.nats_url], "submit-test-reader")
        try:
            record = await master_of(bus.js, master)
        finally:
            await bus.close()
        assert record is not None and str(record.master) == master and record.epoch == epoch

        lines = sorted(f"{p['Key']}:{p['Value']}" for p in want)
        verbs: list[tuple[str, ...]] = [(ROUTE,), (ROUTE, "-a", master)]
        for args in verbs:
            done = await asyncio.to_thread(baton_cli, api.base, *args)
            assert done.returncode == 0 and sorted(done.stdout.splitlines()) == lines, done
        done = await asyncio.to_thread(baton_cli, api.base, ROUTE, "-a", "no-such-cluster")
        assert done.returncode == 1 and "Unable to determine cluster name" in done.stderr, done
