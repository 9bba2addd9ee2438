"""The graceful takeover's MySQL steps on a real sandbox: the switch rolls back when the target cannot
catch up, measures the write outage when it can; the demoted master replicates (or is only configured to)."""

from __future__ import annotations

from libs.models import utcnow
from libs.recovery.audit import RecoveryRecord, StepOutcome
from libs.recovery.fence import StaticFence
from libs.recovery.steps import ExecutionOptions, StepKind, StepSpec
from libs.sandbox.spec import master_replicas
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.recovery.harness import build, wait_replicating_from, writable_masters, write_rows


async def test_switch_rolls_back_then_succeeds_and_demote(sandbox_factory: SandboxFactory) -> None:
    sb = await sandbox_factory(master_replicas(1))
    master, target = sb.key("master"), sb.key("replica1")
    h = build(sb, options=ExecutionOptions(takeover_wait_s=0.5))
    record = RecoveryRecord(incident="i", code="DeadMaster", cluster=str(master), alias=str(master),
                            failed=master, epoch=1, started_at=utcnow())  # fmt: skip
    fence = StaticFence(1)
    switch = StepSpec(
        name="switch", kind=StepKind.SWITCH, targets=(target,), source=master, required=(target,)
    )

    await sb.sql("replica1", "STOP SLAVE SQL_THREAD")
    await write_rows(sb, "master", 900, 3, "not applied by the target yet")
    failed = await h.collab.executor.run(switch, record, fence)
    assert failed.outcome is StepOutcome.FAILED and "writable again" in (failed.error or ""), failed
    assert await writable_masters(sb, sb.names) == ["master"]  # rolled back

    await sb.sql("replica1", "START SLAVE SQL_THREAD")
    done = await h.collab.executor.run(switch, record, fence)
    assert done.outcome is StepOutcome.DONE and done.outage_ms is not None and done.outage_ms < 500, done
    assert await writable_masters(sb, sb.names) == ["replica1"]
    rows = await sb.sql(
        "replica1", "SELECT COUNT(*) AS n FROM baton_sandbox.marker WHERE id BETWEEN 900 AND 902"
    )
    assert rows[0]["n"] == 3
    again = await h.collab.executor.run(switch, record, fence)  # a resumed leader re-runs it: harmless
    assert again.outcome is StepOutcome.DONE and "already promoted" in again.detail

    demote = StepSpec(name="demote", kind=StepKind.DEMOTE, targets=(master,), source=target,
                      start_replication=False)  # fmt: skip
    configured = await h.collab.executor.run(demote, record, fence)
    assert configured.outcome is StepOutcome.DONE and "once started" in configured.detail, configured
    (status,) = await sb.sql("master", "SHOW SLAVE STATUS")
    assert int(status["Master_Port"]) == target.port and status["Slave_IO_Running"] == "No"
    started = await h.collab.executor.run(
        demote.model_copy(update={"start_replication": True}), record, fence
    )
    assert started.outcome is StepOutcome.DONE, started
    await wait_replicating_from(sb, "master", target)
    pos = await write_rows(sb, "replica1", 910, 2, "written on the new master")
    await sb.wait_gtid("master", pos, within=10)  # resumed right after its own last transaction
