"""Operator commands (`libs/recovery/manual.py`) and the recovery kinds they start, with fakes."""

from __future__ import annotations

from datetime import timedelta

from libs.hooks import HookKind
from libs.models.operator import AckScope, CommandRequest, CommandStatus, GlobalRecoveries
from libs.recovery.audit import Outcome, RecoveryKind, RecoveryRecord
from libs.recovery.control import Deferred, MemoryControlState
from libs.recovery.fence import StaticFence
from libs.recovery.manual import Operations
from libs.recovery.policy import Policy, policy_gates
from libs.recovery.record_store import MemoryRecordStore
from libs.topology.analysis import analyze
from libs.topology.detection import Detection, DetectionState
from libs.topology.view import ClusterView
from tests.unit.candidate.builders import MASTER, NOW, cluster, k, r
from tests.unit.recovery.fakes import FakeHooks, Rig, detection, rig
from tests.unit.topology.chain_builders import IM, alive_master, chain, sibling

DEAD = cluster(r(1), r(2, pos="0-1-90"))
HEALTHY = ClusterView(name=str(MASTER), alias="test", instances=(alive_master(), sibling(1), sibling(2)))


def ops(t: Rig, control: MemoryControlState | None = None) -> Operations:
    fence = StaticFence(5)

    async def run(record: RecoveryRecord) -> RecoveryRecord:
        return await t.pipeline.drive(record, fence)

    state = control or MemoryControlState()
    return Operations(t.pipeline, fence, state, t.events.acknowledged, run)


def req(verb: str, **kw: object) -> CommandRequest:
    return CommandRequest.model_validate({"verb": verb, "requested_by": "alice", **kw})


async def test_recover_refuses_an_instance_that_is_not_broken() -> None:
    t = rig(HEALTHY)
    reply = await ops(t).recover(req("recover", instance=MASTER))
    assert reply.status is CommandStatus.REFUSED and "fresh analysis finds no problem" in reply.message
    assert t.executor.ran == [] and t.events.phases == []


async def test_recover_is_forced_past_switch_filters_and_blocks() -> None:
    control = MemoryControlState()
    control.switch = GlobalRecoveries(enabled=False, changed_at=NOW, by="ops")
    t = rig(DEAD, control=control, policy=Policy(block_seconds=600))  # no filters at all
    reply = await ops(t, control).recover(req("recover", instance=MASTER))
    assert reply.status is CommandStatus.OK, reply.message
    assert reply.successor == k(1) and reply.recovery is not None
    record = RecoveryRecord.model_validate(reply.recovery)
    assert record.forced and record.requested_by == "alice" and record.command == ""
    assert t.masters.written[-1].master == k(1)
    (blocked,) = control.block.values()  # a manual recovery blocks automated ones, as orchestrator's
    assert blocked.uid == record.uid and blocked.successor == k(1)


async def test_recover_with_a_designated_candidate_and_lite_runs_no_hooks() -> None:
    t = rig(DEAD)
    reply = await ops(t).recover(req("recover-lite", instance=MASTER, destination=k(2), skip_hooks=True))
    assert reply.status is CommandStatus.OK and reply.successor == k(2), reply.message
    assert t.hooks.ran == []
    t2 = rig(DEAD)
    bad = await ops(t2).recover(req("recover", instance=MASTER, destination=k(9)))
    assert bad.status is CommandStatus.FAILED and "designated 127.0.0.1:23309 is not a replica" in bad.message


async def test_force_master_failover_on_a_healthy_cluster_sets_the_old_master_read_only_first() -> None:
    t = rig(HEALTHY)
    reply = await ops(t).force_master_failover(
        req("force-master-failover", cluster=str(MASTER), alias="test")
    )
    assert reply.status is CommandStatus.OK, reply.message
    assert t.executor.ran[0] == f"read-only:{MASTER}" and f"promote:{reply.successor}" in t.executor.ran
    record = RecoveryRecord.model_validate(reply.recovery)
    assert record.command == "force-master-failover" and record.kind is RecoveryKind.MASTER
    assert "forced failover" in (record.step("recheck").detail if record.step("recheck") else "")  # type: ignore[union-attr]


async def test_graceful_takeover_reports_the_outage_acknowledges_itself_and_leaves_no_block() -> None:
    control = MemoryControlState()
    t = rig(HEALTHY, control=control, policy=Policy(block_seconds=600), hooks=FakeHooks())
    o = ops(t, control)
    refused = await o.graceful_takeover(req("graceful-master-takeover", cluster=str(MASTER)), auto=False)
    assert refused.status is CommandStatus.REFUSED and "designate the target" in refused.message
    reply = await o.graceful_takeover(
        req("graceful-master-takeover-auto", cluster=str(MASTER), destination=k(2)), auto=True
    )
    assert reply.status is CommandStatus.OK, reply.message
    assert reply.successor == k(2) and reply.write_outage_ms == 12.5
    assert t.executor.ran == [
        f"wait-caught-up:{k(2)}",
        f"switch:{k(2)}",
        f"repoint:{k(2)}",
        f"demote:{MASTER}",
    ]
    assert t.hooks.ran == [
        HookKind.PRE_GRACEFUL_TAKEOVER,
        HookKind.POST_MASTER_FAILOVER,
        HookKind.POST_FAILOVER,
        HookKind.POST_GRACEFUL_TAKEOVER,
    ]
    record = RecoveryRecord.model_validate(reply.recovery)
    assert record.kind is RecoveryKind.GRACEFUL_TAKEOVER and record.acknowledged
    assert record.lost == [] and record.write_outage_ms == 12.5 and "write outage 12.5 ms" in record.reason
    assert control.block == {}  # no block left behind
    assert [e.data["uid"] for e in t.events.acks] == [record.uid]
    assert t.masters.written[-1].master == k(2)


async def test_intermediate_master_recovery_relocates_and_runs_its_hooks() -> None:
    control = MemoryControlState()
    view = chain(sibling(2))
    t = rig(view, control=control, policy=Policy(intermediate_filters=("*",), block_seconds=60))
    im = next(f for f in analyze(view, NOW) if f.instance == IM)
    det = Detection(incident="inc-im", state=DetectionState.ACTIVE, finding=im, first_evidence_at=NOW,
                    evidence_at=NOW, detected_at=NOW)  # fmt: skip
    record = await t.pipeline.handle(det, StaticFence(2))
    assert record.outcome is Outcome.SUCCEEDED, record.reason
    assert record.kind is RecoveryKind.INTERMEDIATE_MASTER and record.successor == k(2)
    assert t.executor.ran == [f"relocate:{k(2)}"]
    assert t.hooks.ran == [
        HookKind.PRE_FAILOVER,
        HookKind.POST_INTERMEDIATE_MASTER_FAILOVER,
        HookKind.POST_FAILOVER,
    ]
    assert t.masters.written == []  # the master did not change
    assert record.to_orchestrator()["Type"] == "IntermediateMasterRecovery"
    (blocked,) = control.block.values()
    assert blocked.scope == "instance" and blocked.instance == IM


async def test_acks_clear_blocks_by_scope_and_mark_records() -> None:
    control = MemoryControlState()
    store = MemoryRecordStore()
    t = rig(DEAD, control=control, store=store, policy=Policy(master_filters=("*",), block_seconds=600))
    done = await t.pipeline.handle(detection(DEAD), StaticFence(1))
    assert done.outcome is Outcome.SUCCEEDED and len(control.block) == 1
    o = ops(t, control)
    assert (await o.blocked(req("blocked-recoveries"))).blocked == []  # nothing refused yet
    no_comment = await o.ack(req("ack-recoveries", scope=AckScope.CLUSTER, cluster=str(MASTER)))
    assert no_comment.status is CommandStatus.BAD_REQUEST
    other = await o.ack(req("ack-recoveries", scope=AckScope.INSTANCE, instance=k(9), comment="x"))
    assert other.acknowledged == [] and len(control.block) == 1
    # the new master's cluster: the block of the old cluster covers it (its successor), so acking it clears
    reply = await o.ack(
        req("ack-recoveries", scope=AckScope.INSTANCE, instance=k(1), comment="flapping, checked")
    )
    assert reply.status is CommandStatus.OK and reply.acknowledged == [done.uid]
    assert control.block == {}
    stored = await store.current("test")
    assert stored is not None and stored.acknowledged and stored.acknowledged_by == "alice"
    assert stored.acknowledged_comment == "flapping, checked"
    (ack,) = t.events.acks
    assert ack.type == "recovery.acknowledged" and ack.data["comment"] == "flapping, checked"
    again = await o.ack(req("ack-recoveries", scope=AckScope.ALL, comment="again"))
    assert again.acknowledged == []  # nothing left to acknowledge


async def test_a_skip_records_its_code_and_a_repeated_reason_is_quiet() -> None:
    control = MemoryControlState()
    control.switch = GlobalRecoveries(enabled=False, changed_at=NOW - timedelta(minutes=1))
    from libs.recovery.policy import policy_gates

    t = rig(DEAD, control=control)
    t.pipeline.c.gates = policy_gates(Policy(master_filters=("*",)), control)
    det = detection(DEAD)
    first = await t.pipeline.admit(det, StaticFence(1))
    assert first.outcome is Outcome.SKIPPED and first.skip_code == "disabled"
    again = await t.pipeline.admit(det, StaticFence(1), quiet_if=first.reason)
    assert again.skip_code == "disabled" and t.events.phases == ["skipped"]


async def test_blocked_recoveries_list_the_refused_attempts_while_the_block_lasts() -> None:
    """orchestrator's blocked recoveries: the second failure refused by the first recovery's block, with
    that recovery's uid, its refusals counted; the leader's memory (`deferred`) is fresher than KV."""
    control = MemoryControlState()
    policy = Policy(master_filters=("*",), block_seconds=600)
    t = rig(DEAD, control=control, policy=policy)
    t.pipeline.c.gates = policy_gates(policy, control)  # the service's gates, anti-flapping included
    done = await t.pipeline.handle(detection(DEAD), StaticFence(1))
    again = detection(DEAD, "inc-2")
    refused = await t.pipeline.admit(again, StaticFence(1))
    assert refused.skip_code == "blocked" and refused.blocked_by == done.uid
    await control.put_deferred(Deferred.refused(again, refused, None))  # as the service keeps it
    o = ops(t, control)
    (listed,) = (await o.blocked(req("blocked-recoveries", cluster=str(MASTER)))).blocked
    assert (listed.instance, listed.analysis, listed.cluster, listed.alias) == (
        MASTER,
        again.finding.code.value,
        str(MASTER),
        "test",
    )
    assert listed.blocking_uid == done.uid and listed.count == 1 and listed.last_blocked_at == NOW
    assert listed.blocked_until == NOW + timedelta(seconds=600) and done.uid in listed.reason
    assert (await o.blocked(req("blocked-recoveries", cluster="other:1"))).blocked == []
    later = refused.model_copy(update={"ended_at": NOW + timedelta(seconds=2)})
    memory = Deferred.refused(again, later, control.later[Deferred(detection=again, reason="").key])
    o.deferred = lambda: [memory]
    (moved,) = (await o.blocked(req("blocked-recoveries"))).blocked
    assert moved.count == 2 and moved.last_blocked_at == NOW + timedelta(seconds=2)
    assert moved.first_blocked_at == NOW
    await o.ack(req("ack-recoveries", scope=AckScope.ALL, comment="seen"))
    assert (await o.blocked(req("blocked-recoveries"))).blocked == []  # the block is gone
