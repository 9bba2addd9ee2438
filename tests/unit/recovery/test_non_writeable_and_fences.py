"""RecoverNonWriteableMaster's gates and blocks, and the fence watches' bookkeeping (no MySQL, no NATS:
the MySQL side of both is tested on real sandboxes in tests/integration/recovery/test_old_master_fencing.py
and test_non_writeable_master.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from libs.models import IOThreadState, utcnow
from libs.mysql import ConnectionPool, Credentials
from libs.recovery.audit import Outcome, RecoveryKind, RecoveryRecord, new_record
from libs.recovery.control import Block, MemoryControlState
from libs.recovery.fence import StaticFence
from libs.recovery.fence_watch import ENDED_TTL_S, FenceWatch, MemoryFenceStore
from libs.recovery.gates import GateContext
from libs.recovery.old_master import OldMasterFencer
from libs.recovery.policy import Policy, block_for, policy_gates
from libs.recovery.record_store import MemoryRecordStore
from libs.recovery.recovery_events import MemoryEventSink
from libs.recovery.writeable import NonWriteableMaster
from libs.topology.analysis import AnalysisParams, analyze
from libs.topology.codes import Analysis
from libs.topology.detection import Detection
from libs.topology.view import ClusterView, InstanceState
from tests.unit.candidate.builders import MASTER, NOW, cluster, k, master, r
from tests.unit.recovery.fakes import detection, rig

DEAD = detection(cluster(r(1), r(2)), "inc-dead")  # DeadMaster of MASTER
READ_ONLY = Detection.model_validate(
    DEAD.model_dump()
    | {
        "incident": "inc-ro",
        "finding": DEAD.finding.model_copy(
            update={"code": Analysis.NO_WRITEABLE_MASTER, "reachable": True, "replicating_replicas": 2}
        ).model_dump(),
    }
)
ON = Policy(recover_non_writeable_master=True)


async def _refusal(policy: Policy, det: Detection, *blocks: Block, forced: bool = False) -> str | None:
    state = MemoryControlState()
    for b in blocks:
        state.block[b.key] = b
    record = new_record(det, epoch=3, node="n", now=NOW)
    record.forced = forced
    ctx = GateContext(det, record, None, StaticFence(3), NOW)
    for gate in policy_gates(policy, state):
        reason = await gate(ctx)
        if reason is not None:
            return f"{getattr(reason, 'code', '')}: {reason}"
    return None


def _closed(det: Detection) -> RecoveryRecord:
    record = new_record(det, epoch=1, node="n", now=NOW)
    record.successor = MASTER if det is READ_ONLY else k(1)
    record.close(Outcome.SUCCEEDED, "x", NOW)
    return record


async def test_the_key_alone_decides_forced_or_not_and_cluster_filters_do_not_apply() -> None:
    assert READ_ONLY.finding.actionable and new_record(READ_ONLY, epoch=1, node="n", now=NOW).kind is (
        RecoveryKind.NON_WRITEABLE_MASTER
    )
    off = await _refusal(Policy(master_filters=("*",)), READ_ONLY)
    assert off is not None and off.startswith("filtered: RecoverNonWriteableMaster is off")
    forced = await _refusal(Policy(master_filters=("*",)), READ_ONLY, forced=True)
    assert forced is not None and forced.startswith("filtered:")
    assert await _refusal(ON, READ_ONLY) is None  # no RecoverMasterClusterFilters needed


async def test_it_blocks_only_itself_and_a_failover_blocks_it() -> None:
    mine = block_for(_closed(READ_ONLY), 600, NOW)
    assert mine is not None and mine.scope == "instance" and mine.instance == MASTER
    assert mine.analysis == Analysis.NO_WRITEABLE_MASTER.value
    again = await _refusal(ON, READ_ONLY.model_copy(update={"incident": "inc-ro-2"}), mine)
    assert again is not None and again.startswith("blocked:")
    assert await _refusal(ON.model_copy(update={"master_filters": ("*",)}), DEAD, mine) is None
    failover = block_for(_closed(DEAD), 600, NOW)
    assert failover is not None and failover.scope == "cluster"
    blocked = await _refusal(ON, READ_ONLY, failover)
    assert blocked is not None and blocked.startswith("blocked:")


def _fencer(store: MemoryFenceStore, events: MemoryEventSink, records: MemoryRecordStore) -> OldMasterFencer:
    creds = Credentials(user="u")
    return OldMasterFencer(ConnectionPool(), creds, events, store=store, records=records)


def _failover(uid: str = "u1", ended_ago: timedelta = timedelta(minutes=1)) -> RecoveryRecord:
    record = new_record(DEAD, epoch=5, node="n", now=utcnow() - ended_ago)
    record.uid = uid
    record.successor = k(1)
    record.close(Outcome.SUCCEEDED, "promoted", utcnow() - ended_ago)
    return record


async def test_watches_persist_and_an_ended_one_never_comes_back() -> None:
    store, events, records = MemoryFenceStore(), MemoryEventSink(), MemoryRecordStore()
    fencer = _fencer(store, events, records)
    fencer.watch(_failover(ended_ago=timedelta(hours=25)))  # too old to begin a watch
    fencer.watch(_failover("u0").model_copy(update={"code": "DeadIntermediateMaster"}))  # not a master
    assert fencer.watches == {}
    failover = _failover()
    fencer.watch(failover)
    fence = StaticFence(7)
    await fencer._save_new(fence)
    assert store.watches[MASTER].active and store.watches[MASTER].uid == "u1"

    # a new leader: loads it from the store, and the same recent record does not start it over
    second = _fencer(store, events, records)
    second.watch(failover)
    await second._load()
    await second._save_new(fence)
    assert list(second.watches) == [MASTER]

    assert await second.end(fence, by="ops", reason="rejoined by hand", uid="other") == []
    assert await second.end(fence, by="ops", reason="rejoined by hand", instance=MASTER) == [MASTER]
    ended = store.watches[MASTER]
    assert not ended.active and ended.ended_by == "ops" and ended.ended_reason == "rejoined by hand"
    assert events.phases[-1] == "fence-ended"
    assert second.watches == {}

    third = _fencer(store, events, records)  # the next leader, within the recent-records window
    third.watch(failover)
    await third._load()
    await third._save_new(fence)
    assert third.watches == {} and not store.watches[MASTER].active
    assert ENDED_TTL_S > 24 * 3600


@pytest.mark.parametrize("newer_stored", [True, False])
async def test_the_newer_failover_of_the_same_server_wins(newer_stored: bool) -> None:
    store, events, records = MemoryFenceStore(), MemoryEventSink(), MemoryRecordStore()
    old, new = _failover("old", timedelta(hours=2)), _failover("new", timedelta(minutes=1))
    stored, mine = (new, old) if newer_stored else (old, new)
    store.watches[MASTER] = FenceWatch(instance=MASTER, recovery=stored, started_at=NOW, epoch=1)
    fencer = _fencer(store, events, records)
    fencer.watch(mine)
    await fencer._load()
    await fencer._save_new(StaticFence(2))
    assert fencer.watches[MASTER].uid == "new" and store.watches[MASTER].uid == "new"


def _read_only_master_view() -> ClusterView:
    """MASTER reachable and read-only, both replicas streaming from it."""
    seen = master().last_seen
    assert seen is not None
    seen = seen.model_copy(update={"probed_at": NOW - timedelta(seconds=1), "read_only": True})

    def streaming(n: int) -> InstanceState:
        snap = r(n).last_probe
        assert snap.replication is not None
        snap = snap.model_copy(
            update={"replication": snap.replication.model_copy(update={"io_state": IOThreadState.YES})}
        )
        return InstanceState(key=snap.key, last_probe=snap, last_seen=snap)

    top = InstanceState(key=MASTER, last_probe=seen, last_seen=seen)
    return cluster(streaming(1), streaming(2), failed=top)


async def test_a_failed_master_kept_read_only_is_never_made_writable() -> None:
    view = _read_only_master_view()
    params = AnalysisParams(recover_non_writeable_master=True, stale_after=timedelta(days=1))
    (finding,) = [f for f in analyze(view, NOW, params) if f.instance == MASTER]
    assert finding.code is Analysis.NO_WRITEABLE_MASTER and finding.triggers_recovery
    det = Detection.model_validate(READ_ONLY.model_dump() | {"finding": finding.model_dump()})
    fences = MemoryFenceStore()
    fences.watches[MASTER] = FenceWatch(instance=MASTER, recovery=_failover(), started_at=NOW, epoch=1)
    t = rig(view)
    t.pipeline.c.analyze = lambda v, now: analyze(v, NOW, params)
    t.pipeline.c.kinds = {
        RecoveryKind.NON_WRITEABLE_MASTER: NonWriteableMaster(
            ConnectionPool(), Credentials(user="u"), 1.0, fences=fences
        )
    }
    record = await t.pipeline.handle(det, StaticFence(1))
    assert record.outcome is Outcome.ABORTED and "kept read-only since recovery u1" in record.reason
    assert [s.name for s in record.steps] == ["recheck"] and t.hooks.ran == []

    fixed = rig(cluster(r(1), r(2)))  # the master answers no more: nothing to make writable
    fixed.pipeline.c.kinds = t.pipeline.c.kinds
    again = await fixed.pipeline.handle(det.model_copy(update={"incident": "inc-ro-3"}), StaticFence(1))
    assert again.outcome is Outcome.ALREADY_FIXED, again.reason


async def test_a_watch_begins_at_the_promotion_and_is_saved_with_the_closed_record() -> None:
    """The fencer watches the failed master from the moment its successor is writable (in memory), not
    only from the close, which may wait on JetStream while the old master is back; the close saves it."""
    store, events, records = MemoryFenceStore(), MemoryEventSink(), MemoryRecordStore()
    fencer = _fencer(store, events, records)
    promoted = new_record(DEAD, epoch=5, node="n", now=utcnow())
    promoted.uid = "u1"
    promoted.successor = k(1)
    fencer.watch_promoted(promoted)
    assert list(fencer.watches) == [MASTER] and fencer.watches[MASTER].uid == "u1"
    await fencer._save_new(StaticFence(7))
    assert store.watches == {}  # not saved before the recovery closed
    closed = promoted.model_copy(deep=True)
    closed.close(Outcome.SUCCEEDED, "promoted", utcnow())
    fencer.watch(closed)
    await fencer._save_new(StaticFence(7))
    assert store.watches[MASTER].uid == "u1" and store.watches[MASTER].recovery.outcome is Outcome.SUCCEEDED
    same = _fencer(MemoryFenceStore(), events, records)
    same.watch_promoted(promoted.model_copy(update={"successor": MASTER}))  # nobody else promoted
    assert same.watches == {}
