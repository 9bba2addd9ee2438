"""Issue 11 item 8 on real sandboxes: a failed master that comes back stays read-only.

Prober + analyzer + recovery in-process (`Stack`), one nats-server, real mariadbd. The old master is
killed (SIGKILL), the cluster fails over, and the old master is started again the way it boots: a root
without `--read-only`, i.e. writable. `restart_measured` times it from its port accepting a TCP
connection to `read_only=1` read back (root over the unix socket, as fast as it answers); the bound
asserted is generous for a loaded 2-core box, the figure is printed (the target is 0.2 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncmy  # type: ignore[import-untyped]
import pytest

from libs.bus.server import NatsServer
from libs.models import InstanceKey, utcnow
from libs.models.operator import CommandStatus
from libs.recovery.audit import Outcome, new_record
from libs.recovery.fence import StaticFence
from libs.recovery.fence_watch import FenceWatch, KVFenceStore
from libs.recovery.old_master import OldMasterFencer, fencer_pool
from libs.recovery.recovery_events import MemoryEventSink
from libs.sandbox import REPL_PASSWORD, REPL_USER, TOPOLOGY_PASSWORD, TOPOLOGY_USER, Sandbox
from libs.sandbox.spec import NodeOptions, NodeSpec, TopologySpec, master_replicas
from services.recovery.service import RecoveryService
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.recovery.harness import wait_replicating_from, writable_masters
from tests.integration.recovery.stack import Events, FailoverTiming, Stack
from tests.unit.candidate.builders import cluster, k, r
from tests.unit.recovery.fakes import detection

BOUND_MS = 1000.0  # asserted; the target is 200 ms (printed figures)

# The old master keeps a replication configuration across restarts without starting it (as a server
# left with a CHANGE MASTER does when it boots with --skip-slave-start).
SPEC = TopologySpec(
    nodes=(
        NodeSpec(name="master", options=NodeOptions(extra_args=("--skip-slave-start",))),
        NodeSpec(name="replica1", master="master"),
        NodeSpec(name="replica2", master="master"),
    )
)


@dataclass
class Fencing:
    accept_to_read_only_ms: float
    writable_reads: int  # reads after the port accepted that still saw read_only=0


async def restart_measured(sb: Sandbox, name: str, within: float = 30.0) -> Fencing:
    """Start `name` again (writable at boot) and time its port accepting to read_only=1."""
    port = sb.key(name).port

    async def knock() -> float:
        deadline = time.monotonic() + within
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                assert time.monotonic() < deadline, f"{name} never accepted on {port}"
                await asyncio.sleep(0.002)
                continue
            accepted = time.monotonic()
            writer.close()
            return accepted

    knocking = asyncio.create_task(knock())
    restarting = asyncio.create_task(sb.restart(name))
    try:
        accepted = await knocking
        writable = 0
        conn = await asyncmy.connect(  # over TCP, which is what accepted
            host="127.0.0.1", port=port, user=TOPOLOGY_USER, password=TOPOLOGY_PASSWORD, connect_timeout=5
        )
        try:
            async with conn.cursor() as cur:
                while True:
                    await cur.execute("SELECT @@global.read_only")
                    (value,) = await cur.fetchone()
                    now = time.monotonic()
                    if int(value) == 1:
                        break
                    writable += 1
                    assert now - accepted < 10, f"{name} still writable {now - accepted:.1f}s after accepting"
                    await asyncio.sleep(0.001)
        finally:
            conn.close()
        return Fencing((now - accepted) * 1000.0, writable)
    finally:
        await restarting


async def _watch_of(stack: Stack, key: InstanceKey) -> FenceWatch | None:
    assert stack.bus is not None
    return await KVFenceStore(stack.bus.js).get(key)


async def _wait_watch(stack: Stack, key: InstanceKey, until: Any, within: float = 10.0) -> FenceWatch:
    deadline = time.monotonic() + within
    while True:
        watch = await _watch_of(stack, key)
        if watch is not None and until(watch):
            return watch
        assert time.monotonic() < deadline, f"fence watch of {key}: {watch}"
        await asyncio.sleep(0.05)


async def _read_only(sb: Sandbox, name: str) -> bool:
    return int((await sb.sql(name, "SELECT @@read_only AS r"))[0]["r"]) == 1


@contextlib.asynccontextmanager
async def _failed_over(
    sandbox_factory: SandboxFactory, url: str, spec: TopologySpec | None = None
) -> AsyncIterator[tuple[Sandbox, Stack, Events, FailoverTiming]]:
    """A stack on a fresh sandbox whose master was killed and failed over, its fence watch begun."""
    sb = await sandbox_factory(spec or master_replicas(2))
    stack = await Stack(sb, url, retry_s=0.3).start()
    assert stack.bus is not None
    events = await Events().start(stack.bus)
    try:
        first = await stack.failover()
        assert first.record.outcome is Outcome.SUCCEEDED, first.record.reason
        watch = await _wait_watch(stack, sb.key("master"), lambda w: w.active)
        assert watch.uid == first.record.uid and watch.fenced == 0
        yield sb, stack, events, first
    finally:
        await events.stop()
        await stack.stop()


@pytest.mark.timeout(150)
async def test_returning_old_master_is_made_read_only_at_once_whatever_its_replication(
    sandbox_factory: SandboxFactory, nats_server: NatsServer
) -> None:
    async with _failed_over(sandbox_factory, nats_server.url, SPEC) as (sb, stack, events, first):
        old, uid, new = sb.key("master"), first.record.uid, first.published.master
        new_name = sb.name_of(new)
        assert new_name is not None

        # 1. back with read_only=0 and no replication configured
        plain = await restart_measured(sb, "master")
        print(f"\nold master back, no replication: read_only=1 {plain.accept_to_read_only_ms:.1f} ms after "
              f"its port accepted ({plain.writable_reads} reads saw it writable)")  # fmt: skip
        assert plain.accept_to_read_only_ms < BOUND_MS
        await events.wait("recovery.fenced", uid=uid)
        assert await writable_masters(sb, sb.names) == [new_name]
        assert await sb.sql("master", "SHOW SLAVE STATUS") == []  # never repointed

        # 2. kept so with a replication configuration (CHANGE MASTER, not started) and read_only=0 by hand
        await sb.sql(
            "master",
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%s, MASTER_USER=%s, MASTER_PASSWORD=%s, "
            "MASTER_USE_GTID=slave_pos",
            (new.port, REPL_USER, REPL_PASSWORD),
        )
        flipped = time.monotonic()
        await sb.sql("master", "SET GLOBAL read_only = 0")
        while not await _read_only(sb, "master"):
            assert time.monotonic() - flipped < 2.0, "read_only=0 by hand was not undone"
            await asyncio.sleep(0.005)
        undone_ms = (time.monotonic() - flipped) * 1000
        print(f"read_only=0 by hand on the configured old master undone in {undone_ms:.1f} ms")

        # 3. killed and back again, its replication configuration kept (not started)
        sb.kill("master")
        await asyncio.sleep(0.3)  # the guard sees it down
        configured = await restart_measured(sb, "master")
        print(f"old master back, CHANGE MASTER configured: read_only=1 "
              f"{configured.accept_to_read_only_ms:.1f} ms after its port accepted "
              f"({configured.writable_reads} reads saw it writable)")  # fmt: skip
        assert configured.accept_to_read_only_ms < BOUND_MS
        (status,) = await sb.sql("master", "SHOW SLAVE STATUS")
        assert int(status["Master_Port"]) == new.port and status["Slave_IO_Running"] == "No"
        watch = await _wait_watch(stack, old, lambda w: w.fenced >= 3)
        assert watch.active and watch.last_fenced_at is not None
        deadline = time.monotonic() + 5
        while len(events.matching("recovery.fenced", uid=uid)) < 3:  # each fencing audited
            assert time.monotonic() < deadline, events.matching("recovery.fenced", uid=uid)
            await asyncio.sleep(0.05)
        assert await writable_masters(sb, sb.names) == [new_name]

        # 4. a cluster-wide acknowledgement lifts blocks, not the fence; one naming the server ends it
        bulk = await stack.command("ack-recoveries", scope="all", comment="lift the blocks")
        assert bulk.status is CommandStatus.OK and "read-only" not in bulk.message
        assert (await _watch_of(stack, old) or watch).active
        named = await stack.command(
            "ack-recoveries", scope="instance", instance=old, comment="rejoined by hand"
        )
        assert named.status is CommandStatus.OK, named.message
        assert f"no longer kept read-only: {old}" in named.message
        ended = await _wait_watch(stack, old, lambda w: not w.active)
        assert ended.ended_by == "test" and "rejoined by hand" in ended.ended_reason
        await events.wait("recovery.fence-ended", uid=uid)
        await sb.sql("master", "SET GLOBAL read_only = 0")
        await asyncio.sleep(0.5)
        assert not await _read_only(sb, "master")  # the operator's call now


@pytest.mark.timeout(120)
async def test_fence_watch_survives_a_leader_change(
    sandbox_factory: SandboxFactory, nats_server: NatsServer
) -> None:
    async with _failed_over(sandbox_factory, nats_server.url) as (sb, stack, events, first):
        old, uid = sb.key("master"), first.record.uid

        # the leader steps down before the old master returns; a second process takes over
        second = await RecoveryService(stack.settings, node="r2", retry_s=0.3).start()
        assert stack.recovery is not None
        await stack.recovery.stop()
        stack.recovery = second  # stopped by stack.stop()
        deadline = time.monotonic() + 20
        while not (second.term is not None and old in second.term.fencer.watches):
            assert time.monotonic() < deadline, "the second leader never loaded the fence watch"
            await asyncio.sleep(0.05)
        epoch = second.term.fence.epoch

        measured = await restart_measured(sb, "master")
        print(f"\nafter a leader change: read_only=1 {measured.accept_to_read_only_ms:.1f} ms after the old "
              f"master's port accepted ({measured.writable_reads} reads saw it writable)")  # fmt: skip
        assert measured.accept_to_read_only_ms < BOUND_MS
        fenced = await events.wait("recovery.fenced", uid=uid)
        assert fenced.epoch == epoch  # the second leader did it
        watch = await _wait_watch(stack, old, lambda w: w.fenced >= 1)
        assert watch.active and watch.epoch < epoch  # begun by the first leader


@pytest.mark.timeout(150)
async def test_a_takeover_back_to_the_old_master_is_not_fenced_and_ends_the_watch(
    sandbox_factory: SandboxFactory, nats_server: NatsServer
) -> None:
    async with _failed_over(sandbox_factory, nats_server.url) as (sb, stack, events, first):
        old, uid, new = sb.key("master"), first.record.uid, first.published.master
        await sb.restart("master")
        await events.wait("recovery.fenced", uid=uid)

        # the operator rejoins it under the new master, then moves the master role back to it
        await sb.script(
            "master",
            [
                "SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos",
                (
                    "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%s, MASTER_USER=%s, "
                    "MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos",
                    (new.port, REPL_USER, REPL_PASSWORD),
                ),
                "START SLAVE",
            ],
        )
        await wait_replicating_from(sb, "master", new)
        assert stack.recovery is not None
        deadline = time.monotonic() + 10
        while True:  # the recovery's memory knows it as a replica of the new master
            state = stack.recovery.memory.states.get(old)
            seen = state.last_seen if state is not None else None
            if seen is not None and seen.replication is not None and seen.replication.master == new:
                break
            assert time.monotonic() < deadline, "the old master is not seen replicating from the new one"
            await asyncio.sleep(0.05)
        reply = await stack.command(
            "graceful-master-takeover-auto", cluster=str(new), alias=str(new), destination=old
        )
        assert reply.status is CommandStatus.OK, reply.message
        assert reply.successor == old
        ended = await _wait_watch(stack, old, lambda w: not w.active)
        assert ended.ended_by == "baton" and "baton_masters" in ended.ended_reason
        await events.wait("recovery.fence-ended", uid=uid)
        await asyncio.sleep(0.5)
        assert await writable_masters(sb, sb.names) == ["master"]  # never fenced while promoted


@pytest.mark.timeout(90)
async def test_a_server_that_was_down_is_fenced_on_the_answer_prepared_meanwhile(
    sandbox_factory: SandboxFactory,
) -> None:
    """While the watched server is down the guard keeps "may it be fenced?" answered; when it comes back
    writable it is fenced on that answer, with no bus round trip (JetStream may still be catching up
    after a partition heals: the chaos tier's master-dc-isolated saw a 0.6 s wait for it)."""
    sb = await sandbox_factory(master_replicas(1))
    key = sb.key("master")
    named_calls: list[float] = []

    async def named() -> set[InstanceKey]:
        named_calls.append(time.monotonic())
        return set()

    fencer = OldMasterFencer(fencer_pool(1.5), sb.topology_creds, MemoryEventSink(), named_masters=named)
    record = new_record(detection(cluster(r(1), r(2))), epoch=5, node="n", now=utcnow())
    record.successor = k(1)
    record.close(Outcome.SUCCEEDED, "promoted", utcnow())
    fencer.watches[key] = FenceWatch(instance=key, recovery=record, started_at=utcnow(), epoch=5)
    live_looks: list[InstanceKey] = []
    live = fencer._exempt

    async def counted(k_: InstanceKey) -> str | None:
        live_looks.append(k_)
        return await live(k_)

    fencer._exempt = counted  # type: ignore[method-assign]
    sb.kill("master")
    running = asyncio.create_task(fencer.run(StaticFence(epoch=5)))
    try:
        deadline = time.monotonic() + 30
        while not named_calls:  # the guard found it down and asked while it was
            assert time.monotonic() < deadline, "no answer prepared while the server was down"
            await asyncio.sleep(0.05)
        fencing = await restart_measured(sb, "master")
        print(
            f"fenced {fencing.accept_to_read_only_ms:.0f} ms after accepting ({fencing.writable_reads} reads)"
        )
        assert fencing.accept_to_read_only_ms < BOUND_MS
        assert live_looks == []  # fenced on the prepared answer
        # the server shows read_only before the guard's statement returns and is counted
        deadline = time.monotonic() + 10
        while fencer.watches[key].fenced == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert fencer.watches[key].fenced == 1
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
