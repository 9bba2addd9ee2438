"""Prober + analyzer + recovery services on a sandbox: SIGKILL the master → a new writable master,
published in baton_masters, within a few seconds."""

from __future__ import annotations

import pytest

from libs.bus.server import NatsServer
from libs.recovery.audit import Outcome
from libs.sandbox.spec import master_replicas
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.recovery.harness import wait_replicating_from, writable_masters
from tests.integration.recovery.stack import Stack


@pytest.mark.timeout(90)
async def test_sigkill_master_new_master_published(
    sandbox_factory: SandboxFactory, nats_server: NatsServer
) -> None:
    sb = await sandbox_factory(master_replicas(3))
    stack = await Stack(sb, nats_server.url).start()
    try:
        timing = await stack.failover(within=15)
        record = timing.record
        assert record.outcome is Outcome.SUCCEEDED, record.reason
        assert timing.published.master == record.successor
        new = sb.name_of(timing.published.master)
        assert new is not None
        assert await writable_masters(sb, sb.names) == [new]
        for other in {"replica1", "replica2", "replica3"} - {new}:
            await wait_replicating_from(sb, other, timing.published.master)
        split = timing.split()
        print("failover timing", split)
        assert split["total"] < 5.0, split
    finally:
        await stack.stop()
