"""Failover you can trust, on real MariaDB: nothing received is lost (the drain, relay logs kept, a
delayed or must_not holder as the two-step intermediate), every repoint verified (a replica that cannot
follow is lost, downtimed and reported), and a failing candidate replaced by the next one.

Each test breaks its own sandbox (about 3 s to start)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncmy  # type: ignore[import-untyped]
import pytest

from libs.models import InstanceKey, PromotionRule, utcnow
from libs.recovery.audit import Outcome, RecoveryRecord, StepOutcome
from libs.recovery.downtime import LOST_IN_RECOVERY, Downtime
from libs.recovery.executor import MySQLExecutor
from libs.recovery.fence import StaticFence
from libs.recovery.steps import ExecutionOptions
from libs.sandbox import SANDBOX_DB, Sandbox
from libs.sandbox.spec import delayed, master_replicas
from libs.topology.detection import Detection
from libs.topology.plan import CandidateRules, DrainState, RegisteredRule
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.recovery.harness import (
    Harness,
    build,
    probe_all,
    wait_dead_master,
    wait_replicating_from,
    writable_masters,
    write_rows,
)

N = 50  # transactions only one replica received


async def rows_between(sb: Sandbox, name: str, first: int, count: int) -> int:
    rows = await sb.sql(
        name,
        f"SELECT COUNT(*) AS n FROM {SANDBOX_DB}.marker WHERE id BETWEEN %s AND %s",
        (first, first + count - 1),
    )
    return int(rows[0]["n"])


async def received_only(sb: Sandbox, name: str, position: str, within: float = 10.0) -> None:
    """Wait until `name`'s IO thread has received `position` (its SQL thread may not apply it)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        status = (await sb.sql(name, "SHOW SLAVE STATUS"))[0]
        if status["Gtid_IO_Pos"] == position:
            return
        assert asyncio.get_running_loop().time() < deadline, (name, status["Gtid_IO_Pos"], position)
        await asyncio.sleep(0.02)


async def purge_binary_logs(sb: Sandbox, name: str, within: float = 10.0) -> None:
    """Rotate `name`'s binary log and purge the older ones (MariaDB refuses until its binlog checkpoint
    moved on: a moment after the rotation)."""
    await sb.sql(name, "FLUSH BINARY LOGS")
    current = (await sb.sql(name, "SHOW MASTER STATUS"))[0]["File"]
    deadline = asyncio.get_running_loop().time() + within
    while True:
        await sb.sql(name, f"PURGE BINARY LOGS TO '{current}'")
        if [r["Log_name"] for r in await sb.sql(name, "SHOW BINARY LOGS")] == [current]:
            return
        assert asyncio.get_running_loop().time() < deadline, f"{name} keeps binary logs before {current}"
        await asyncio.sleep(0.05)


async def crash(h: Harness, sb: Sandbox, *, restart_io: tuple[str, ...] = ()) -> Detection:
    """kill -9 of the master (after a last look at everyone); replicas whose IO threads a test stopped get
    them started again, so they see the master gone as after a crash. The detection the analyzer makes."""
    h.known.add(await probe_all(sb, h.pool))
    sb.kill("master")
    for name in restart_io:
        await sb.sql(name, "START SLAVE IO_THREAD")
    return await wait_dead_master(h, sb.key("master"))


def must_not(*keys: InstanceKey) -> CandidateRules:
    until = utcnow() + timedelta(days=366)
    return CandidateRules(registered={k: RegisteredRule(rule=PromotionRule.MUST_NOT, expires_at=until)
                                      for k in keys})  # fmt: skip


def steps_of(record: RecoveryRecord) -> list[tuple[str, str, str, str | None]]:
    return [(s.name, s.outcome.value, s.detail, s.error) for s in record.steps]


@pytest.mark.parametrize("how", ["delayed", "both-threads-stopped"])
async def test_transactions_only_one_replica_received_reach_the_new_master(
    sandbox_factory: SandboxFactory, how: str
) -> None:
    """One replica holds N transactions in its relay log, unapplied, that no other replica received:
    `delayed` (MASTER_DELAY=3600: it is never the final master, so it serves as the two-step
    intermediate, its delay lifted without losing the relay log) or `both-threads-stopped` (SQL thread
    stopped before the writes, IO thread after them: MariaDB would discard the relay log on a plain
    START SLAVE SQL_THREAD). After kill -9 of the master, all N rows are on the new master."""
    if how == "delayed":
        sb = await sandbox_factory(delayed(2, 3600))
        holder, others = "delayed", ("replica1", "replica2")
    else:
        sb = await sandbox_factory(master_replicas(3))
        holder, others = "replica3", ("replica1", "replica2")
        await sb.sql(holder, "STOP SLAVE SQL_THREAD")
    h = build(sb)
    for r in others:
        await sb.sql(r, "STOP SLAVE IO_THREAD")
    pos = await write_rows(sb, "master", 1000, N, "only the holder received these")
    await received_only(sb, holder, pos)
    if how == "both-threads-stopped":
        await sb.sql(holder, "STOP SLAVE IO_THREAD")
    assert await rows_between(sb, others[0], 1000, N) == 0
    detection = await crash(h, sb, restart_io=others)

    record = await h.pipeline.handle(detection, StaticFence(5))

    assert record.outcome is Outcome.SUCCEEDED, (record.reason, steps_of(record))
    assert record.successor is not None and record.plan is not None
    new = sb.name_of(record.successor)
    assert new is not None and await writable_masters(sb, sb.names) == [new]
    assert await rows_between(sb, new, 1000, N) == N, steps_of(record)
    assert record.lost_replicas == [], record.lost
    assert record.plan.drain is DrainState.DONE
    if how == "delayed":
        assert record.intermediate == sb.key(holder) and new in others
        assert [r.key for r in record.plan.undrained] == [sb.key(holder)]
        waited = record.step(f"wait-applied:{sb.key(holder)}")
        assert waited is not None and "SQL_Delay of 3600 s lifted" in waited.detail, steps_of(record)
        assert "relay log applied" in waited.detail
    else:
        assert record.successor == sb.key(holder)
        stop_io = record.step("stop-io")
        assert stop_io is not None and "both threads were stopped" in stop_io.detail, steps_of(record)
    for other in set(sb.names) - {"master", new}:
        await wait_replicating_from(sb, other, record.successor)
    pos = await write_rows(sb, new, 2000, 1, "after failover")
    for other in set(sb.names) - {"master", new}:
        await sb.wait_gtid(other, pos, within=10)


async def test_a_replica_that_cannot_drain_in_time_is_ranked_by_what_it_received(
    sandbox_factory: SandboxFactory,
) -> None:
    """replica3 alone received N transactions, and its SQL thread cannot commit them (a session holds
    FLUSH TABLES WITH READ LOCK) for longer than the drain's bound: it is still ranked by what it
    received — chosen, and listed as undrained in the plan, the summary and the drain step's errors.
    Once the lock is gone its wait-applied step applies them: all N rows on it."""
    sb = await sandbox_factory(master_replicas(3))
    h = build(sb, options=ExecutionOptions(apply_timeout_s=1, follow_timeout_s=5))
    holder = sb.key("replica3")
    for r in ("replica1", "replica2"):
        await sb.sql(r, "STOP SLAVE IO_THREAD")
    lock = await asyncmy.connect(
        host=holder.host, port=holder.port, user=sb.topology_creds.user,
        password=sb.topology_creds.password.get_secret_value(), autocommit=True,
    )  # fmt: skip
    try:
        async with lock.cursor() as cur:
            await cur.execute("FLUSH TABLES WITH READ LOCK")
        pos = await write_rows(sb, "master", 1000, N, "received, not committed in time")
        await received_only(sb, "replica3", pos)

        async def unlock(name: str, record: RecoveryRecord) -> None:
            if name == "rank":
                lock.close()

        h.collab.after_step = unlock
        detection = await crash(h, sb, restart_io=("replica1", "replica2"))
        record = await h.pipeline.handle(detection, StaticFence(7))
    finally:
        lock.close()

    assert record.outcome is Outcome.SUCCEEDED, (record.reason, steps_of(record))
    assert record.successor == holder and record.plan is not None
    assert [r.key for r in record.plan.undrained] == [holder]
    assert "could not apply its relay log in time" in record.plan.undrained[0].reason
    assert f"relay log not applied in time on {holder}" in record.reason
    drain = record.step("drain")
    assert drain is not None and "relay log not applied within 1s" in drain.errors[str(holder)]
    assert await rows_between(sb, "replica3", 1000, N) == N, steps_of(record)
    assert record.lost_replicas == []


async def test_the_only_holder_is_must_not_and_serves_as_intermediate(
    sandbox_factory: SandboxFactory,
) -> None:
    """The only replica holding N received (unapplied) transactions is registered must_not: it serves
    the successor as the two-step intermediate; every row is on the new master, nobody is lost."""
    sb = await sandbox_factory(master_replicas(3))
    holder = sb.key("replica3")
    h = build(sb, rules=must_not(holder))
    await sb.sql("replica3", "STOP SLAVE SQL_THREAD")
    for r in ("replica1", "replica2"):
        await sb.sql(r, "STOP SLAVE IO_THREAD")
    pos = await write_rows(sb, "master", 1000, N, "relay log of a must_not replica only")
    await received_only(sb, "replica3", pos)
    detection = await crash(h, sb, restart_io=("replica1", "replica2"))

    record = await h.pipeline.handle(detection, StaticFence(2))

    assert record.outcome is Outcome.SUCCEEDED, (record.reason, steps_of(record))
    assert record.intermediate == holder and record.successor in (sb.key("replica1"), sb.key("replica2"))
    new = sb.name_of(record.successor)  # type: ignore[arg-type]
    assert new is not None and await writable_masters(sb, sb.names) == [new]
    assert await rows_between(sb, new, 1000, N) == N
    assert int((await sb.sql("replica3", "SELECT @@read_only AS r"))[0]["r"]) == 1  # never writable
    audit = record.to_orchestrator()
    assert audit["LostReplicas"] == [] and audit["IsSuccessful"] is True
    assert record.lost_replicas == []
    for other in {"replica1", "replica2", "replica3"} - {new}:
        await wait_replicating_from(sb, other, record.successor)  # type: ignore[arg-type]
    repointed = record.step(f"repoint:{record.successor}")
    assert repointed is not None and "streaming from" in repointed.detail  # verified, not assumed


async def test_a_replica_that_cannot_follow_is_lost_downtimed_and_reported(
    sandbox_factory: SandboxFactory,
) -> None:
    """replica1 is behind, and every other replica has purged the binary logs it needs: its repoint
    fails (1236) and the verification catches it. It is lost, downtimed (lost-in-recovery) and detached,
    and the recovery says so: LostReplicas names it, the summary too."""
    sb = await sandbox_factory(master_replicas(3))
    downtimes: list[Downtime] = []

    async def write_downtime(downtime: Downtime) -> None:
        downtimes.append(downtime)

    options = ExecutionOptions(lost_downtime_minutes=30, follow_timeout_s=5)
    h = build(sb, options=options)
    h.collab.executor = MySQLExecutor(
        h.pool, sb.topology_creds, sb.repl_creds, options, downtime=write_downtime
    )
    master, behind = sb.key("master"), sb.key("replica1")
    await sb.sql("replica1", "STOP SLAVE IO_THREAD")
    pos = await write_rows(sb, "master", 1000, 5, "replica1 never gets these")
    for r in ("replica2", "replica3"):
        await sb.wait_gtid(r, pos)
        await purge_binary_logs(sb, r)
    detection = await crash(h, sb, restart_io=("replica1",))

    record = await h.pipeline.handle(detection, StaticFence(3))

    assert record.outcome is Outcome.SUCCEEDED, (record.reason, steps_of(record))
    assert record.successor in (sb.key("replica2"), sb.key("replica3"))
    assert record.lost_replicas == [behind], record.lost
    why = next(r.reason for r in record.lost if r.key == behind)
    assert "1236" in why and f"could not be repointed under {record.successor}" in why, why
    assert f"lost while executing it: {behind}" in record.reason, record.reason
    audit = record.to_orchestrator()
    assert audit["LostReplicas"] == [{"Hostname": behind.host, "Port": behind.port}]
    assert {d.instance for d in downtimes} == {str(master), str(behind)}
    assert all(d.reason == LOST_IN_RECOVERY and d.recovery_uid == record.uid for d in downtimes)
    detached = record.step("detach-lost")
    assert detached is not None and detached.outcome is StepOutcome.DONE
    status = (await sb.sql("replica1", "SHOW SLAVE STATUS"))[0]
    assert status["Slave_IO_Running"] == "No" and status["Slave_SQL_Running"] == "No"
    other = ({"replica2", "replica3"} - {sb.name_of(record.successor)}).pop()  # type: ignore[arg-type]
    await wait_replicating_from(sb, other, record.successor)  # type: ignore[arg-type]


def kill_after(h: Harness, sb: Sandbox, step: str, victim: str) -> list[str]:
    """SIGKILL the instance the record names `victim` (successor/intermediate) once `step` is recorded:
    a candidate dying mid-failover. Returns the names of the killed nodes."""
    killed: list[str] = []

    async def hook(name: str, record: RecoveryRecord) -> None:
        key = getattr(record, victim)
        if name.startswith(step) and not killed and key is not None:
            node = sb.name_of(key)
            assert node is not None
            sb.kill(node)
            killed.append(node)

    h.collab.after_step = hook
    return killed


async def test_a_candidate_that_dies_before_promotion_is_replaced_by_the_next(
    sandbox_factory: SandboxFactory,
) -> None:
    """The chosen successor dies right after the ranking: its wait-applied step fails, the next
    candidate is planned (fallback, audited in Plan.tried) and promoted; the dead one is lost."""
    sb = await sandbox_factory(master_replicas(3))
    h = build(sb, options=ExecutionOptions(follow_timeout_s=5))
    pos = await write_rows(sb, "master", 1000, 3, "everyone has these")
    for r in ("replica1", "replica2", "replica3"):
        await sb.wait_gtid(r, pos)
    killed = kill_after(h, sb, "rank", "successor")
    detection = await crash(h, sb)

    record = await h.pipeline.handle(detection, StaticFence(4))

    assert record.outcome is Outcome.SUCCEEDED, (record.reason, steps_of(record))
    assert len(killed) == 1 and record.plan is not None
    dead = sb.key(killed[0])
    assert record.successor is not None and record.successor != dead
    assert [r.key for r in record.plan.tried] == [dead], record.plan.tried
    fallback = record.step(f"fallback:{dead}")
    assert fallback is not None and fallback.outcome is StepOutcome.DONE
    assert f"{dead} failed in wait-applied:{dead}" in fallback.detail, fallback.detail
    assert dead in record.lost_replicas
    new = sb.name_of(record.successor)
    assert new is not None and await writable_masters(sb, sb.names) == [new]
    assert await rows_between(sb, new, 1000, 3) == 3
    other = ({"replica1", "replica2", "replica3"} - {new, killed[0]}).pop()
    await wait_replicating_from(sb, other, record.successor)
    assert f"after {dead} failed" in record.reason, record.reason


async def test_a_two_step_successor_that_dies_under_the_intermediate_is_replaced(
    sandbox_factory: SandboxFactory,
) -> None:
    """Two-step promotion through a must_not holder of N unique transactions; the successor dies once it
        replicates from the intermediate. The fallback keeps the intermediate (the replicas it already
        serves count as replicas of the failed master again) and promotes the other replica: all N rows on it,
    only the dead one lost."""
    sb = await sandbox_factory(master_replicas(3))
    holder = sb.key("replica3")
    h = build(sb, rules=must_not(holder), options=ExecutionOptions(catch_up_timeout_s=5, follow_timeout_s=5))
    for r in ("replica1", "replica2"):
        await sb.sql(r, "STOP SLAVE IO_THREAD")
    pos = await write_rows(sb, "master", 1000, N, "only replica3 has these")
    await sb.wait_gtid("replica3", pos)
    killed = kill_after(h, sb, f"repoint:{holder}", "successor")
    detection = await crash(h, sb, restart_io=("replica1", "replica2"))

    record = await h.pipeline.handle(detection, StaticFence(6))

    assert record.outcome is Outcome.SUCCEEDED, (record.reason, steps_of(record))
    assert len(killed) == 1 and record.plan is not None
    dead = sb.key(killed[0])
    # the other replica streams from the intermediate already: level with it by the fallback's fresh
    # look, it is promoted in one step (or through the intermediate again, had it not caught up)
    assert record.intermediate in (holder, None) and record.successor not in (None, dead, holder)
    assert record.step(f"fallback:{dead}") is not None and record.done(f"repoint:{holder}")
    assert [r.key for r in record.plan.tried] == [dead]
    new = sb.name_of(record.successor)  # type: ignore[arg-type]
    assert new is not None and await writable_masters(sb, sb.names) == [new]
    assert await rows_between(sb, new, 1000, N) == N, steps_of(record)
    assert record.lost_replicas == [dead], record.lost
    await wait_replicating_from(sb, "replica3", record.successor)  # type: ignore[arg-type]
