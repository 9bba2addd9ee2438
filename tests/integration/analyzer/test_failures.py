"""Failures other than a crash: a hung master, a master only Baton cannot reach, a dead intermediate
master, and a replica whose SQL thread stopped."""

from __future__ import annotations

import asyncio
import signal
import time

from libs.bus.connection import Bus
from libs.models import InstanceKey, utcnow
from libs.sandbox import Sandbox
from libs.sandbox.sandbox import TOPOLOGY_PASSWORD, TOPOLOGY_USER
from libs.sandbox.spec import chain, master_replicas
from libs.topology.codes import Analysis
from libs.topology.detection import Detection, DetectionState
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.analyzer.conftest import Env
from tests.integration.analyzer.harness import stored_detections, wait_for

A = Analysis
ACTIVE = DetectionState.ACTIVE
CLEARED = DetectionState.CLEARED


async def stored(bus: Bus, code: Analysis, state: DetectionState, instance: InstanceKey) -> list[Detection]:
    return [
        d
        for d in await stored_detections(bus)
        if d.finding.code is code and d.state is state and d.finding.instance == instance
    ]


async def test_hung_master_is_dead_once_its_replicas_time_out(
    env: Env, sandbox_factory: SandboxFactory
) -> None:
    sb = await sandbox_factory(master_replicas(2), slave_net_timeout=3)
    await env.probe(sb)
    await env.analyzer()
    await asyncio.sleep(2)
    master = sb.key("master")
    stopped_at = utcnow()
    started = time.monotonic()
    sb.kill("master", signal.SIGSTOP)
    try:

        async def dead() -> list[Detection]:
            return await stored(env.bus, A.DEAD_MASTER, ACTIVE, master)

        (detection,) = await wait_for(dead, 15, "DeadMaster of the hung master")
        elapsed = time.monotonic() - started
        # Not before the replicas gave up on it (slave_net_timeout 3 s: IO "Connecting" after ~2-3 s).
        assert detection.finding.connected_replicas == 0
        assert detection.first_evidence_at >= stopped_at
        assert elapsed < 3 + 3.5, f"DeadMaster {elapsed:.1f}s after SIGSTOP"
    finally:
        sb.kill("master", signal.SIGCONT)


async def test_master_unreachable_only_for_baton_is_never_dead(
    env: Env, sandbox_factory: SandboxFactory
) -> None:
    sb = await sandbox_factory(master_replicas(2))
    await env.probe(sb)
    await env.analyzer()
    master = sb.key("master")
    lock = [
        "SET SESSION sql_log_bin = 0",
        f"ALTER USER '{TOPOLOGY_USER}'@'%' ACCOUNT LOCK",
        f"KILL CONNECTION USER '{TOPOLOGY_USER}'",
    ]
    await sb.script("master", lock)
    try:

        async def unreachable() -> list[Detection]:
            return await stored(env.bus, A.UNREACHABLE_MASTER, ACTIVE, master)

        (detection,) = await wait_for(unreachable, 8, "UnreachableMaster")
        assert detection.finding.connected_replicas == 2
        assert not detection.finding.triggers_recovery
        # Replication keeps flowing while Baton is locked out, and over several poll intervals no
        # DeadMaster (or any other master failure) is ever published.
        for i in range(4):
            await sb.sql("master", f"INSERT INTO baton_sandbox.marker VALUES ({1000 + i}, 'during lockout')")
            await asyncio.sleep(1)
        pos = (await sb.sql("master", "SELECT @@gtid_binlog_pos AS p"))[0]["p"]
        await sb.wait_gtid("replica1", pos, within=5)
        codes = {d.finding.code for d in await stored_detections(env.bus) if d.finding.instance == master}
        assert codes == {A.UNREACHABLE_MASTER}, codes
    finally:
        await sb.script(
            "master",
            [
                "SET SESSION sql_log_bin = 0",
                f"ALTER USER '{TOPOLOGY_USER}'@'%' ACCOUNT UNLOCK",
                (f"ALTER USER '{TOPOLOGY_USER}'@'%%' IDENTIFIED BY %s", (TOPOLOGY_PASSWORD,)),
            ],
        )

    async def cleared() -> list[Detection]:
        return await stored(env.bus, A.UNREACHABLE_MASTER, CLEARED, master)

    await wait_for(cleared, 8, "UnreachableMaster cleared once Baton gets in again")


async def test_dead_intermediate_master(env: Env, sandbox_factory: SandboxFactory) -> None:
    sb: Sandbox = await sandbox_factory(chain())
    await env.probe(sb)
    await env.analyzer()
    await asyncio.sleep(2)
    assert await stored_detections(env.bus) == []
    intermediate = sb.key("intermediate")
    sb.kill("intermediate")

    async def dim() -> list[Detection]:
        return await stored(env.bus, A.DEAD_INTERMEDIATE_MASTER, ACTIVE, intermediate)

    (detection,) = await wait_for(dim, 6, "DeadIntermediateMaster")
    assert detection.finding.master == sb.key("master")
    assert set(detection.finding.replicas) == {sb.key("replica1"), sb.key("replica2")}
    assert detection.facts is not None and detection.facts.depth == 1
    # The master itself is fine: no master-level failure was published.
    assert not [d for d in await stored_detections(env.bus) if d.finding.instance == sb.key("master")]


async def test_stopped_sql_thread_of_the_single_replica(env: Env, sandbox_factory: SandboxFactory) -> None:
    sb = await sandbox_factory(master_replicas(1))
    await env.probe(sb)
    await env.analyzer()
    await asyncio.sleep(2)
    master = sb.key("master")
    await sb.sql("replica1", "STOP SLAVE SQL_THREAD")

    async def single() -> list[Detection]:
        return await stored(env.bus, A.MASTER_SINGLE_REPLICA_NOT_REPLICATING, ACTIVE, master)

    (detection,) = await wait_for(single, 5, "MasterSingleReplicaNotReplicating")
    assert detection.finding.replicas == (sb.key("replica1"),)
    assert detection.finding.reachable
    await sb.sql("replica1", "START SLAVE SQL_THREAD")

    async def cleared() -> list[Detection]:
        return await stored(env.bus, A.MASTER_SINGLE_REPLICA_NOT_REPLICATING, CLEARED, master)

    (clear,) = await wait_for(cleared, 5, "MasterSingleReplicaNotReplicating cleared")
    assert clear.incident == detection.incident
