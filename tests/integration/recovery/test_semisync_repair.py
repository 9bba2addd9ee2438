"""Issue 15 part 1 on real sandboxes: the semi-sync repair.

Prober + analyzer + recovery in-process (`Stack`), one nats-server, real mariadbd (built-in semi-sync).

- Locked master (`RecoverLockedSemiSyncMaster`): replica1 is the only semi-sync replica, the master's
  `rpl_semi_sync_master_timeout` is ten minutes (it never falls back to asynchronous); replica1's IO
  thread is stopped, so the writer's next commit waits for an ack nobody sends. Baton sees the binlog
  coordinates stale (LockedSemiSyncMaster), enables semi-sync on the first valid replicating replica in
  priority order (replica2 or replica3, the lower `host:port`: same rule, same priority), and the
  blocked commit completes — acknowledged, not timed out (`Rpl_semi_sync_master_no_tx` stays 0).
- Exact (`EnforceExactSemiSyncReplicas`): three semi-sync replicas for one ack (MariaDB waits for one)
  is MasterWithTooManySemiSyncReplicas: semi-sync is disabled on all but the first in priority order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from libs.bus.connection import connect
from libs.bus.server import NatsServer
from libs.models import InstanceKey, PromotionRule, utcnow
from libs.mysql import ConnectionPool, ProbeSettings, probe
from libs.recovery.audit import Outcome, RecoveryKind, RecoveryRecord
from libs.recovery.fence import StaticFence
from libs.sandbox import SANDBOX_DB, Sandbox
from libs.sandbox.spec import semisync
from libs.topology.plan import CandidateRules, RegisteredRule
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.recovery.harness import build, probe_all, wait_dead_master
from tests.integration.recovery.stack import Events, Stack, _record
from tests.integration.recovery.writer import Writer, prepare

LOCKED = "LockedSemiSyncMaster"
TOO_MANY = "MasterWithTooManySemiSyncReplicas"


async def _status(sb: Sandbox, name: str, like: str) -> dict[str, str]:
    rows = await sb.sql(name, f"SHOW GLOBAL STATUS LIKE '{like}'")
    return {str(r["Variable_name"]): str(r["Value"]) for r in rows}


async def _replica_enabled(sb: Sandbox, name: str) -> bool:
    return int((await sb.sql(name, "SELECT @@rpl_semi_sync_slave_enabled AS e"))[0]["e"]) == 1


async def _wait_clients(sb: Sandbox, want: int, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while True:
        clients = int(
            (await _status(sb, "master", "Rpl_semi_sync_master_clients"))["Rpl_semi_sync_master_clients"]
        )
        if clients == want:
            return
        assert time.monotonic() < deadline, f"master has {clients} semi-sync clients, want {want}"
        await asyncio.sleep(0.1)


async def _semi_sync_off(sb: Sandbox, name: str) -> None:
    await sb.script(
        name, ["SET GLOBAL rpl_semi_sync_slave_enabled = 0", "STOP SLAVE IO_THREAD", "START SLAVE IO_THREAD"]
    )


def _first(sb: Sandbox, names: list[str]) -> str:
    """orchestrator's order among equals: `host:port`."""
    return min(names, key=lambda n: str(sb.key(n)))


async def _closed(stack: Stack, events: Events, code: str, master: InstanceKey) -> RecoveryRecord:
    done = await events.wait("recovery.completed", within=40, code=code)
    record = RecoveryRecord.model_validate(done.data["record"])
    assert stack.bus is not None
    stored = await _record(stack.bus.js, record.alias, record.uid, within=10)  # the audit record
    assert stored.outcome is record.outcome and stored.failed == master
    return record


@contextlib.asynccontextmanager
async def _baton(sb: Sandbox, nats_url: str, **config: Any) -> AsyncIterator[tuple[Stack, Events]]:
    """Prober + analyzer + recovery on `sb` with `config`, and the recovery events they publish (heard
    from before the stack starts: a repair of a state present from the start may finish at once)."""
    listener = await connect(nats_url, "semisync-test-events")
    events = await Events().start(listener)
    try:
        stack = await Stack(sb, nats_url, retry_s=0.3, **config).start()
        try:
            yield stack, events
        finally:
            await stack.stop()
    finally:
        await events.stop()
        await listener.close()


@pytest.mark.timeout(120)
async def test_locked_semi_sync_master_is_repaired_and_blocked_commits_complete(
    sandbox_factory: SandboxFactory, nats_server: NatsServer
) -> None:
    sb = await sandbox_factory(semisync(3))
    master = sb.key("master")
    await prepare(sb, "master")
    for name in ("replica2", "replica3"):
        await _semi_sync_off(sb, name)
    await _wait_clients(sb, 1)
    await sb.sql("master", "SET GLOBAL rpl_semi_sync_master_timeout = 600000")  # never fall back to async
    config: dict[str, Any] = {"RecoverLockedSemiSyncMaster": True, "ReasonableLockedSemiSyncMasterSeconds": 1}
    async with _baton(sb, nats_server.url, **config) as (stack, events):
        writer = Writer([master]).start()
        try:
            await _locked_and_repaired(sb, stack, events, writer)
        finally:
            writer.stop.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(writer.finish(), 10)  # a commit still blocked is cancelled


async def _locked_and_repaired(sb: Sandbox, stack: Stack, events: Events, writer: Writer) -> None:
    master = sb.key("master")
    await writer.wait_acked(5, within=20)
    await sb.sql("replica1", "STOP SLAVE IO_THREAD")  # the only semi-sync replica stops acknowledging
    locked_at = time.monotonic()
    await _wait_clients(sb, 0)
    record = await _closed(stack, events, LOCKED, master)
    assert record.outcome is Outcome.SUCCEEDED, record.reason
    assert record.kind is RecoveryKind.SEMI_SYNC and record.successor == master
    chosen = _first(sb, ["replica2", "replica3"])
    other = "replica3" if chosen == "replica2" else "replica2"
    assert [s.name for s in record.steps] == [
        "recheck",
        f"semi-sync:{master}",
        f"verify:{master}",
        "post-hooks",
    ]
    act = record.step(f"semi-sync:{master}")
    assert act is not None and f"enable {sb.key(chosen)}" in act.detail
    assert "MariaDB has no rpl_semi_sync_master_wait_for_slave_count" in act.detail
    assert str(sb.key("replica1")) in act.detail  # excluded: not replicating
    assert await _replica_enabled(sb, chosen) and not await _replica_enabled(sb, other)
    # The writer's commit was received by the new semi-sync replica while it was still asynchronous,
    # and MariaDB (GTID replication) acknowledges nothing when it reconnects: the blocked commit is
    # released by the next acknowledged one (acks are cumulative). Another client's commit — the
    # application's other traffic — goes through at once, acknowledged, and releases the writer.
    await asyncio.wait_for(
        sb.sql("master", f"INSERT INTO {SANDBOX_DB}.counter (id, at) VALUES (1000000, NOW(6))"), 20
    )
    await writer.wait_acked(5, within=20)
    status = await _status(sb, "master", "Rpl_semi_sync_master_%")
    assert status["Rpl_semi_sync_master_status"] == "ON", status
    assert status["Rpl_semi_sync_master_no_tx"] == "0", status  # nothing committed without an ack
    assert writer.max_gap_s < 60 and time.monotonic() - locked_at < 60
    orc = record.to_orchestrator()
    assert orc["AnalysisEntry"]["Analysis"] == LOCKED and orc["IsSuccessful"]
    await asyncio.sleep(1.5)  # fixed stays fixed: no second recovery
    assert len(events.matching("recovery.registered", code=LOCKED)) == 1


@pytest.mark.timeout(120)
async def test_exact_semi_sync_replicas_disables_the_extra_ones(
    sandbox_factory: SandboxFactory, nats_server: NatsServer
) -> None:
    sb = await sandbox_factory(semisync(3))
    master = sb.key("master")
    replicas = ["replica1", "replica2", "replica3"]
    async with _baton(sb, nats_server.url, EnforceExactSemiSyncReplicas=True) as (stack, events):
        record = await _closed(stack, events, TOO_MANY, master)
        assert record.outcome is Outcome.SUCCEEDED, record.reason
        assert record.kind is RecoveryKind.SEMI_SYNC
        keep = _first(sb, replicas)
        for name in replicas:
            assert await _replica_enabled(sb, name) is (name == keep), name
        await _wait_clients(sb, 1)
        act = record.step(f"semi-sync:{master}")
        assert act is not None and "(exact)" in act.detail
    # DetectSemiSyncEnforcedQuery: the probe reads each instance's semi-sync priority (a number)
    pool = ConnectionPool()
    try:
        for sql, want in (
            ("SELECT 7", 7),
            ("SELECT 'x'", None),
            ("SELECT -3", 0),
            ("SELECT nope FROM nowhere", None),
        ):
            snap = await probe(
                sb.key("replica2"),
                sb.topology_creds,
                ProbeSettings(detect_semi_sync_enforced_query=sql),
                pool=pool,
            )
            assert snap.reachable and snap.semi_sync_priority == want, (sql, snap.semi_sync_priority)
    finally:
        pool.close()


@pytest.mark.timeout(120)
async def test_failover_gives_the_new_master_the_semi_sync_master_side(
    sandbox_factory: SandboxFactory,
) -> None:
    """The replicas have only the replica side of semi-sync on; the master dies; whichever replica is
    promoted gets the master side switched on before it takes writes, and the other replica (its
    replica side kept through the repoint) acknowledges its commits."""
    sb = await sandbox_factory(semisync(2))
    master = sb.key("master")
    for name in ("replica1", "replica2"):
        await sb.sql(name, "SET GLOBAL rpl_semi_sync_master_enabled = 0")
    h = build(sb)
    try:
        h.known.add(await probe_all(sb, h.pool))
        sb.kill("master")
        detection = await wait_dead_master(h, master)
        record = await h.pipeline.handle(detection, StaticFence(1))
        assert record.outcome is Outcome.SUCCEEDED, record.reason
        assert record.plan is not None and record.plan.semi_sync_master
        assert record.successor is not None
        new = sb.name_of(record.successor)
        other = "replica2" if new == "replica1" else "replica1"
        assert new is not None
        promote = record.step(f"promote:{record.successor}")
        assert promote is not None and "rpl_semi_sync_master_enabled=1" in promote.detail
        assert int((await sb.sql(new, "SELECT @@rpl_semi_sync_master_enabled AS e"))[0]["e"]) == 1
        assert await _replica_enabled(sb, other)
        await asyncio.wait_for(_ack_on(sb, new), 30)
    finally:
        h.pool.close()


@pytest.mark.timeout(120)
async def test_failover_from_the_only_semi_sync_replica_enables_another(
    sandbox_factory: SandboxFactory,
) -> None:
    """Only replica1 acknowledges (replica2 is asynchronous) and replica1 is the preferred candidate:
    after the failover the new master would wait for an ack nobody sends, so the repoint switches the
    replica side on on replica2, which then acknowledges the new master's commits."""
    sb = await sandbox_factory(semisync(2))
    for name in ("replica1", "replica2"):
        await sb.sql(name, "SET GLOBAL rpl_semi_sync_master_enabled = 0")
    await sb.sql("replica2", "SET GLOBAL rpl_semi_sync_slave_enabled = 0")
    await sb.sql("replica2", "STOP SLAVE IO_THREAD")
    await sb.sql("replica2", "START SLAVE IO_THREAD")
    preferred = RegisteredRule(rule=PromotionRule.PREFER, expires_at=utcnow() + timedelta(hours=1))
    h = build(sb, rules=CandidateRules(registered={sb.key("replica1"): preferred}))
    try:
        h.known.add(await probe_all(sb, h.pool))
        sb.kill("master")
        detection = await wait_dead_master(h, sb.key("master"))
        record = await h.pipeline.handle(detection, StaticFence(1))
        assert record.outcome is Outcome.SUCCEEDED, record.reason
        assert record.successor == sb.key("replica1")
        assert record.plan is not None and record.plan.semi_sync_replicas == (sb.key("replica2"),)
        repoint = next(s for s in record.steps if s.name.startswith("repoint"))
        assert "rpl_semi_sync_slave_enabled=1" in repoint.detail, repoint.detail
        assert await _replica_enabled(sb, "replica2")
        await asyncio.wait_for(_ack_on(sb, "replica1"), 30)
    finally:
        h.pool.close()


async def _ack_on(sb: Sandbox, name: str) -> None:
    """A commit on `name` acknowledged by a semi-sync replica (its yes_tx grows, status ON)."""
    await sb.sql(name, f"CREATE TABLE IF NOT EXISTS {SANDBOX_DB}.semi (id INT PRIMARY KEY)")
    deadline = time.monotonic() + 20
    while True:
        before = int((await _status(sb, name, "Rpl_semi_sync_master_yes_tx"))["Rpl_semi_sync_master_yes_tx"])
        await sb.sql(name, f"INSERT INTO {SANDBOX_DB}.semi VALUES ({before + 1})")
        status = await _status(sb, name, "Rpl_semi_sync_master_%")
        if (
            int(status["Rpl_semi_sync_master_yes_tx"]) > before
            and status["Rpl_semi_sync_master_status"] == "ON"
        ):
            return
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.2)
