"""The per-cluster lock a refactoring shares with recoveries (libs/recovery/refactoring.py): an open
operation makes a failover wait (a retryable gate refusal), releasing puts back the recovery record it
displaced, and an operation a dead leader left open is closed as aborted by the resume path — never
run as a failover, and without an anti-flapping block."""

from __future__ import annotations

import pytest

from libs.errors import LeadershipLost
from libs.recovery.audit import Outcome, RecoveryKind, RecoveryRecord
from libs.recovery.control import MemoryControlState
from libs.recovery.fence import StaticFence
from libs.recovery.gates import RETRYABLE, GateContext, one_per_cluster
from libs.recovery.policy import Policy, block_for
from libs.recovery.record_store import MemoryRecordStore
from libs.recovery.refactoring import AbandonedOperation
from libs.topology.detection import Detection
from tests.unit.candidate.builders import MASTER, NOW, cluster, k, r
from tests.unit.recovery.fakes import detection, rig

ALIAS = str(MASTER)


def operation(epoch: int = 1, **kw: object) -> RecoveryRecord:
    values: dict[str, object] = {
        "incident": "operation:x",
        "code": "Operation",
        "cluster": ALIAS,
        "alias": ALIAS,
        "failed": k(2),
        "command": "operation:relocate",
        "epoch": epoch,
        "epochs": [epoch],
        "started_at": NOW,
        **kw,
    }
    return RecoveryRecord.model_validate(values)


def recovery(**kw: object) -> RecoveryRecord:
    values: dict[str, object] = {
        "incident": "inc-1",
        "code": "DeadMaster",
        "cluster": ALIAS,
        "alias": ALIAS,
        "failed": MASTER,
        "epoch": 1,
        "epochs": [1],
        "started_at": NOW,
        **kw,
    }
    return RecoveryRecord.model_validate(values)


def test_an_operation_is_its_own_kind() -> None:
    assert operation().kind is RecoveryKind.OPERATION
    assert recovery().kind is RecoveryKind.MASTER


async def test_an_open_operation_makes_a_failover_wait_and_retry() -> None:
    det: Detection = detection(cluster(r(1), r(2)))
    candidate = recovery()
    ctx = GateContext(det, candidate, operation(), StaticFence(1), NOW)
    refusal = await one_per_cluster(ctx)
    assert refusal is not None and getattr(refusal, "code", "") == "operation"
    assert "operation" in RETRYABLE
    assert "relocate on" in str(refusal) and "retried when it ends" in str(refusal)
    # an open recovery is still "busy" (not retried: it is the same problem being handled)
    busy = await one_per_cluster(GateContext(det, candidate, recovery(incident="other"), StaticFence(1), NOW))
    assert busy is not None and getattr(busy, "code", "") == "busy"


async def test_release_puts_back_the_displaced_recovery() -> None:
    store = MemoryRecordStore()
    done = recovery()
    await store.register(done)
    done.close(Outcome.SUCCEEDED, "ok", NOW)
    await store.save(done)
    op = operation()
    await store.register(op)  # the lock: the closed recovery is displaced
    assert (await store.current(ALIAS)).uid == op.uid  # type: ignore[union-attr]
    op.close(Outcome.SUCCEEDED, "moved", NOW)
    await store.release(op, done)
    current = await store.current(ALIAS)
    assert current is not None and current.uid == done.uid and current.outcome is Outcome.SUCCEEDED
    with pytest.raises(LeadershipLost):  # not ours any more
        await store.release(op, done)
    # with nothing displaced, the closed operation stays
    other = MemoryRecordStore()
    op2 = operation()
    await other.register(op2)
    op2.close(Outcome.FAILED, "x", NOW)
    await other.release(op2, None)
    assert (await other.current(ALIAS)).uid == op2.uid  # type: ignore[union-attr]


async def test_an_abandoned_operation_is_closed_not_resumed_and_blocks_nothing() -> None:
    control = MemoryControlState()
    t = rig(cluster(r(1), r(2)), control=control, policy=Policy(block_seconds=600))
    t.pipeline.c.kinds = {RecoveryKind.OPERATION: AbandonedOperation()}
    left = operation(epoch=1)
    await t.store.register(left)
    done = await t.pipeline.resume(left, StaticFence(2))
    assert done.outcome is Outcome.ABORTED and "closed, not resumed" in done.reason
    assert not t.executor.ran, "no failover step ran"
    assert not t.hooks.ran, "no hook ran"
    assert await control.blocks(NOW) == []
    assert block_for(done, 600, NOW) is None
    stored = await t.store.current(ALIAS)
    assert stored is not None and not stored.active and stored.epoch == 2
