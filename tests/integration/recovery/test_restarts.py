"""Issue 11 item 1 on real sandboxes: the recovery leader's action connections survive restarts.

A leader that has acted once holds pooled connections to every node. Restarting every node (SIGTERM and
start, as for maintenance; automated recoveries switched off meanwhile, as an operator would) leaves
those connections dead; the next failover or takeover must re-establish them before use, not fail with
`[2006] MySQL server has gone away`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from libs.bus.provision import SETTINGS
from libs.bus.server import NatsServer
from libs.bus.subjects import kv_key
from libs.models import InstanceKey, utcnow
from libs.models.operator import GLOBAL_RECOVERIES_KEY, CommandStatus, GlobalRecoveries
from libs.recovery.audit import Outcome, RecoveryRecord
from libs.sandbox import Sandbox
from libs.sandbox.spec import master_replicas
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.recovery.harness import wait_replicating_from, writable_masters
from tests.integration.recovery.stack import Stack, master_of


async def _switch(stack: Stack, enabled: bool) -> None:
    assert stack.bus is not None
    value = GlobalRecoveries(enabled=enabled, by="maintenance").model_dump_json().encode()
    await stack.bus.js.publish(f"$KV.{SETTINGS}.{kv_key(GLOBAL_RECOVERIES_KEY)}", value)


async def _takeover(stack: Stack, alias: str, master: InstanceKey, target: InstanceKey) -> RecoveryRecord:
    reply = await stack.command(
        "graceful-master-takeover-auto", cluster=str(master), alias=alias, destination=target
    )
    assert reply.status is CommandStatus.OK, reply.message
    assert reply.successor == target
    record = RecoveryRecord.model_validate(reply.recovery)
    assert record.outcome is Outcome.SUCCEEDED, record.reason
    return record


async def _recovered(stack: Stack, failed: InstanceKey, within: float = 30.0) -> RecoveryRecord:
    """The recovery of `failed` once it is over (refusals are skipped, and shown on a timeout)."""
    assert stack.recovery is not None
    deadline = time.monotonic() + within
    while True:
        done = [r for r in stack.recovery.finished if r.failed == failed]
        ran = [r for r in done if r.outcome is not Outcome.SKIPPED]
        if ran:
            return ran[-1]
        assert time.monotonic() < deadline, (
            f"no recovery of {failed}: {[(r.outcome, r.reason) for r in done]}"
        )
        await asyncio.sleep(0.1)


async def _healthy(stack: Stack, sb: Sandbox, master: str, within: float = 30.0) -> None:
    """Every node answers again, the replicas replicate from `master`, and the recovery's memory has
    fresh, reachable probes of every node (so no detection is pending)."""
    assert stack.recovery is not None
    for name in sb.names:
        if name != master:
            await wait_replicating_from(sb, name, sb.key(master), within=within)
    deadline = time.monotonic() + within
    since = utcnow()
    while True:
        states = stack.recovery.memory.states
        fresh = all(
            (s := states.get(sb.key(n))) is not None
            and s.last_probe.reachable
            and s.last_probe.probed_at > since
            for n in sb.names
        )
        if fresh and not stack.recovery.deferred and not stack.recovery.running:
            return
        assert time.monotonic() < deadline, f"not healthy: deferred {sorted(stack.recovery.deferred)}"
        await asyncio.sleep(0.1)


async def _restart_everything(stack: Stack, sb: Sandbox, master: str) -> None:
    """Maintenance: automated recoveries off, every replica then the master restarted, recoveries on."""
    await _switch(stack, False)
    for name in [n for n in sb.names if n != master] + [master]:
        await sb.restart(name)
    await _healthy(stack, sb, master)
    await _switch(stack, True)


@contextlib.asynccontextmanager
async def _acted_then_restarted(sb: Sandbox, nats_url: str) -> AsyncIterator[Stack]:
    """A leader that has acted once (a takeover to replica1: its action connections to every node are
    open and pooled), then every node restarted."""
    stack = await Stack(sb, nats_url, retry_s=0.3).start()
    try:
        await _takeover(stack, str(sb.key("master")), sb.key("master"), sb.key("replica1"))
        await _healthy(stack, sb, "replica1")
        await _restart_everything(stack, sb, "replica1")
        yield stack
    finally:
        await stack.stop()


@pytest.mark.timeout(150)
async def test_failover_after_every_node_restarted(
    sandbox_factory: SandboxFactory, nats_server: NatsServer
) -> None:
    sb = await sandbox_factory(master_replicas(3))
    async with _acted_then_restarted(sb, nats_server.url) as stack:
        assert stack.bus is not None
        before = await master_of(stack.bus.js, str(sb.key("master")))
        assert before is not None and before.master == sb.key("replica1")
        sb.kill("replica1")
        record = await _recovered(stack, sb.key("replica1"))
        assert record.outcome is Outcome.SUCCEEDED, (record.reason, record.errors)
        assert record.successor is not None
        new = sb.name_of(record.successor)
        assert new is not None and new != "replica1"
        assert await writable_masters(sb, sb.names) == [new]
        for other in set(sb.names) - {new, "replica1"}:
            await wait_replicating_from(sb, other, record.successor)


@pytest.mark.timeout(150)
async def test_graceful_takeover_after_every_node_restarted(
    sandbox_factory: SandboxFactory, nats_server: NatsServer
) -> None:
    sb = await sandbox_factory(master_replicas(2))
    async with _acted_then_restarted(sb, nats_server.url) as stack:
        back = await _takeover(stack, str(sb.key("master")), sb.key("replica1"), sb.key("master"))
        assert [s.name for s in back.steps if s.outcome.value == "failed"] == []
        assert await writable_masters(sb, sb.names) == ["master"]
        for other in ("replica1", "replica2"):
            await wait_replicating_from(sb, other, sb.key("master"))
