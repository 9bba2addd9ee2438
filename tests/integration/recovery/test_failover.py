"""Master failover on real MariaDB sandboxes, driven by the pipeline with in-memory NATS stand-ins.

Every test kills or breaks a sandbox, so each starts its own (about 3 s)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from libs.errors import LeadershipLost
from libs.hooks import HookContext, HookKind, HookResult, run_hooks
from libs.models import PromotionRule, utcnow
from libs.recovery.audit import Outcome, StepOutcome
from libs.recovery.fence import StaticFence
from libs.recovery.old_master import OldMasterFencer
from libs.recovery.steps import ExecutionOptions, StepKind, StepSpec
from libs.sandbox import SANDBOX_DB
from libs.sandbox.spec import master_replicas
from libs.topology.plan import CandidateRules, RegisteredRule
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.recovery.harness import (
    build,
    probe_all,
    wait_dead_master,
    wait_replicating_from,
    writable_masters,
    write_rows,
)


async def test_kill_master_promotes_one_and_repoints_the_others(sandbox_factory: SandboxFactory) -> None:
    sb = await sandbox_factory(master_replicas(3))
    h = build(sb)
    master = sb.key("master")
    pos = await write_rows(sb, "master", 100, 3, "before crash")
    for r in ("replica1", "replica2", "replica3"):
        await sb.wait_gtid(r, pos)
    h.known.add(await probe_all(sb, h.pool))
    sb.kill("master")
    detection = await wait_dead_master(h, master)

    record = await h.pipeline.handle(detection, StaticFence(7))

    assert record.outcome is Outcome.SUCCEEDED, (record.reason, record.steps)
    assert record.successor is not None and record.epoch == 7
    new = sb.name_of(record.successor)
    assert new is not None
    assert await writable_masters(sb, sb.names) == [new]
    for other in {"replica1", "replica2", "replica3"} - {new}:
        await wait_replicating_from(sb, other, record.successor)
    rows = await sb.sql(new, f"SELECT note FROM {SANDBOX_DB}.marker WHERE id = 101")
    assert rows == [{"note": "before crash"}]
    assert [r.key for r in record.lost] == [master]
    assert h.masters.written[-1].master == record.successor and h.masters.written[-1].epoch == 7
    names = [s.name for s in record.steps]
    assert names[:2] == ["recheck", "plan"] and names[-2:] == ["publish-master", "post-hooks"]
    assert all(s.outcome in (StepOutcome.DONE,) for s in record.steps), record.steps
    assert h.events.phases[0] == "registered" and h.events.phases[-1] == "completed"
    timings = record.timings()
    assert timings["execution"] is not None and timings["execution"] < 2.0
    stored = await h.store.current(record.alias)
    assert stored is not None and stored.outcome is Outcome.SUCCEEDED
    # A write on the new master reaches every replica.
    pos = await write_rows(sb, new, 200, 1, "after failover")
    for other in {"replica1", "replica2", "replica3"} - {new}:
        await sb.wait_gtid(other, pos, within=10)

    # The old master comes back writable: the leader fences it (read_only), never repoints it.
    fencer = OldMasterFencer(h.pool, sb.topology_creds, h.events)
    fencer.watch(record)
    assert await fencer.check_once(StaticFence(7)) == []  # still down: nothing to do
    await sb.restart("master")
    assert sorted(await writable_masters(sb, sb.names)) == sorted([new, "master"])  # two writers!
    fenced = await fencer.check_once(StaticFence(7))
    assert [r.failed for r in fenced] == [master] and fenced[0].fenced_at is not None
    assert int((await sb.sql("master", "SELECT @@read_only AS r"))[0]["r"]) == 1
    assert await sb.sql("master", "SHOW SLAVE STATUS") == []
    assert await writable_masters(sb, sb.names) == [new]
    assert h.events.phases[-1] == "fenced"
    assert await fencer.check_once(StaticFence(7)) == []  # read-only now: nothing more to do


async def test_most_up_to_date_must_not_replica_serves_a_two_step_promotion(
    sandbox_factory: SandboxFactory,
) -> None:
    sb = await sandbox_factory(master_replicas(3))
    master, ahead = sb.key("master"), sb.key("replica3")
    rules = CandidateRules(
        registered={
            ahead: RegisteredRule(rule=PromotionRule.MUST_NOT, expires_at=utcnow() + timedelta(days=366))
        }
    )
    h = build(sb, rules=rules)
    for r in ("replica1", "replica2"):
        await sb.sql(r, "STOP SLAVE IO_THREAD")
    pos = await write_rows(sb, "master", 300, 5, "only replica3 has these")
    await sb.wait_gtid("replica3", pos)
    h.known.add(await probe_all(sb, h.pool))
    sb.kill("master")
    for r in ("replica1", "replica2"):  # they must see the master gone, as after a crash
        await sb.sql(r, "START SLAVE IO_THREAD")
    detection = await wait_dead_master(h, master)

    record = await h.pipeline.handle(detection, StaticFence(3))

    assert record.outcome is Outcome.SUCCEEDED, (record.reason, record.steps)
    assert record.intermediate == ahead
    assert record.successor in (sb.key("replica1"), sb.key("replica2"))
    new = sb.name_of(record.successor)
    assert new is not None
    assert await writable_masters(sb, sb.names) == [new]
    for other in {"replica1", "replica2", "replica3"} - {new}:
        await wait_replicating_from(sb, other, record.successor)
    rows = await sb.sql(new, f"SELECT COUNT(*) AS n FROM {SANDBOX_DB}.marker WHERE id BETWEEN 300 AND 304")
    assert rows[0]["n"] == 5
    ro = await sb.sql("replica3", "SELECT @@read_only AS r")
    assert int(ro[0]["r"]) == 1  # the intermediate was never made writable
    names = [s.name for s in record.steps]
    assert f"wait-caught-up:{record.successor}" in names and f"repoint:{ahead}" in names
    assert "must_not" in (record.plan.passed_over_reason(ahead) if record.plan else "")


async def test_failing_pre_hook_aborts_and_runs_the_unsuccessful_hooks(
    sandbox_factory: SandboxFactory,
) -> None:
    sb = await sandbox_factory(master_replicas(2))
    ran: list[HookKind] = []

    async def hooks(kind: HookKind, ctx: HookContext) -> list[HookResult]:
        ran.append(kind)
        command = "exit 3" if kind is HookKind.PRE_FAILOVER else "true"
        return await run_hooks(kind, [command], ctx, 5)

    h = build(sb, hooks=hooks)
    master = sb.key("master")
    h.known.add(await probe_all(sb, h.pool))
    sb.kill("master")
    detection = await wait_dead_master(h, master)

    record = await h.pipeline.handle(detection, StaticFence(1))

    assert record.outcome is Outcome.ABORTED
    assert "PreFailoverProcesses hook #1 failed (exit code 3)" in record.reason
    assert ran == [HookKind.PRE_FAILOVER, HookKind.POST_UNSUCCESSFUL_FAILOVER]
    assert [hr.kind for hr in record.hooks] == ran
    assert await writable_masters(sb, sb.names) == []  # nothing was promoted
    assert h.masters.written == []
    assert h.events.phases[-1] == "failed"

    # A leader without its lease sends nothing: the promote step refuses before any statement.
    lost = StaticFence(1)
    lost.lose()
    promote = StepSpec(name="promote:x", kind=StepKind.PROMOTE, targets=(sb.key("replica1"),))
    with pytest.raises(LeadershipLost):
        await h.collab.executor.run(promote, record, lost)
    assert await writable_masters(sb, sb.names) == []
    assert (await sb.sql("replica1", "SHOW SLAVE STATUS"))[0]["Master_Port"] == master.port


async def test_delay_promotion_waits_for_the_relay_log_to_be_applied(sandbox_factory: SandboxFactory) -> None:
    """DelayMasterPromotionIfSQLThreadNotUpToDate: rows only in the candidates' relay logs (SQL threads
    stopped) are applied before the promotion, so they are on the new master."""
    sb = await sandbox_factory(master_replicas(2))
    options = ExecutionOptions(delay_promotion=True, delay_stall_s=5)
    h = build(
        sb, options=options, rules=CandidateRules(delay_master_promotion_if_sql_thread_not_up_to_date=True)
    )
    master = sb.key("master")
    h.known.add(await probe_all(sb, h.pool))
    for r in ("replica1", "replica2"):
        await sb.sql(r, "STOP SLAVE SQL_THREAD")
    await write_rows(sb, "master", 500, 20, "relay log only")
    for r in ("replica1", "replica2"):  # received, not applied
        for _ in range(100):
            st = (await sb.sql(r, "SHOW SLAVE STATUS"))[0]
            if st["Read_Master_Log_Pos"] != st["Exec_Master_Log_Pos"] and int(st["Read_Master_Log_Pos"]) > 0:
                break
    sb.kill("master")
    detection = await wait_dead_master(h, master)

    record = await h.pipeline.handle(detection, StaticFence(2))

    assert record.outcome is Outcome.SUCCEEDED, (record.reason, record.steps)
    assert record.plan is not None and record.plan.wait_for_relay_log_apply
    new = sb.name_of(record.successor)  # type: ignore[arg-type]
    assert new is not None
    rows = await sb.sql(new, f"SELECT COUNT(*) AS n FROM {SANDBOX_DB}.marker WHERE id BETWEEN 500 AND 519")
    assert rows[0]["n"] == 20, [(s.name, s.outcome, s.detail, s.error) for s in record.steps]
    waited = record.step(f"wait-applied:{record.successor}")
    assert waited is not None and waited.outcome is StepOutcome.DONE and "relay log applied" in waited.detail
