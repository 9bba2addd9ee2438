"""A real failover (prober + analyzer + recovery on a MariaDB sandbox) reaches all three DCs' Consul.

Uses the recovery tests' in-process stack (`tests/integration/recovery/stack.py`): SIGKILL the master,
the recovery leader writes the successor to baton_masters, and the kvpublisher must put it in every
DC within the bound.
"""

from __future__ import annotations

import pytest

from libs.bus.server import NatsServer
from libs.sandbox.spec import master_replicas
from tests.fixtures.consul import ConsulDCFactory
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.kvpublisher.conftest import addresses
from tests.integration.kvpublisher.helpers import (
    event_log,
    running_publisher,
    time_until_published,
)
from tests.integration.recovery.stack import Stack

BOUND_S = 2.0


@pytest.mark.timeout(120)
async def test_a_failover_on_a_real_sandbox_updates_all_three_dcs(
    sandbox_factory: SandboxFactory, nats_server: NatsServer, consul_dcs: ConsulDCFactory
) -> None:
    import httpx

    sb = await sandbox_factory(master_replicas(2))
    dcs = consul_dcs(3)
    stack = await Stack(sb, nats_server.url).start()
    clients = [httpx.AsyncClient(base_url=dc.url, timeout=1.0) for dc in dcs]
    try:
        assert stack.bus is not None
        async with event_log(stack.bus) as log, running_publisher(stack.bus, addresses(dcs)):
            timing = await stack.failover(within=15)
            new = timing.published
            assert new.master == timing.record.successor and new.epoch > 0
            took = await time_until_published(clients, new, timeout=BOUND_S + 3)
            assert max(took) < BOUND_S, f"DCs took {took} s after baton_masters changed"
            await log.wait("kv.published", [dc.name for dc in dcs], new.epoch)
            event = log.of("kv.published", "dc1", new.epoch)[0]
            assert event.data["value"] == f"{new.master.host}:{new.master.port}"
    finally:
        for client in clients:
            await client.aclose()
        await stack.stop()
