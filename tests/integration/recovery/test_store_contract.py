"""One contract for the in-memory stand-ins and the NATS-backed stores of libs/recovery.

Every test runs against both implementations (`impl` is parametrized): `MemoryRecordStore` /
`KVRecordStore` (baton_recoveries), `MemoryMasterBook` / `KVMasterPublisher` (baton_masters),
`MemoryControlState` / `KVControlState` (switch, downtime, blocks, deferred detections) and
`MemoryFenceStore` / `KVFenceStore` (baton_fences). The record rules are the ones that keep two leaders
apart: an open record refuses a second registration, a newer epoch adopts, a deposed epoch can neither
save nor adopt, a closed record is never reopened. `leader_a` and `leader_b` are two processes' views
(two store objects over one bucket; one shared object in memory, as the unit tests share it).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest

from libs.bus.connection import connect
from libs.bus.provision import RECOVERIES, SETTINGS, provision
from libs.bus.server import NatsServer
from libs.bus.subjects import kv_key
from libs.errors import LeadershipLost, StaleEpoch
from libs.models import InstanceKey, utcnow
from libs.models.operator import GLOBAL_RECOVERIES_KEY, GlobalRecoveries
from libs.recovery.audit import Outcome, RecoveryRecord
from libs.recovery.control import Block, ControlState, Deferred, KVControlState, MemoryControlState
from libs.recovery.downtime import Downtime, KVDowntimeWriter
from libs.recovery.fence_watch import FenceStore, FenceWatch, KVFenceStore, MemoryFenceStore
from libs.recovery.masters import KVMasterPublisher, MasterBook, MemoryMasterBook, master_record
from libs.recovery.record_store import ClusterBusy, KVRecordStore, MemoryRecordStore, RecordStore
from libs.topology.analysis import Finding
from libs.topology.codes import Analysis
from libs.topology.detection import Detection, DetectionState


@dataclass
class Impl:
    name: str
    leader_a: RecordStore
    leader_b: RecordStore
    masters: MasterBook
    control: ControlState
    fences: FenceStore
    behind: Callable[[RecoveryRecord], Awaitable[None]]  # write a record behind the stores' backs
    set_switch: Callable[[GlobalRecoveries | None], Awaitable[None]]
    put_downtime: Callable[[Downtime], Awaitable[None]]


@pytest.fixture(params=["memory", "nats"])
async def impl(request: pytest.FixtureRequest) -> AsyncIterator[Impl]:
    if request.param == "memory":
        store, control = MemoryRecordStore(), MemoryControlState()

        async def behind(record: RecoveryRecord) -> None:
            store.records[record.alias] = record.model_copy(deep=True)

        async def set_switch(value: GlobalRecoveries | None) -> None:
            control.switch = value

        async def put_downtime(d: Downtime) -> None:
            control.downtime[InstanceKey.parse(d.instance)] = d

        yield Impl("memory", store, store, MemoryMasterBook(), control, MemoryFenceStore(), behind,
                   set_switch, put_downtime)  # fmt: skip
        return
    server: NatsServer = request.getfixturevalue("nats_server_module")
    bus = await connect(server.url, "contract")
    try:
        await provision(bus.js)
        kv = await bus.js.key_value(RECOVERIES)
        settings = await bus.js.key_value(SETTINGS)

        async def kv_behind(record: RecoveryRecord) -> None:
            await kv.put(kv_key(record.alias), record.model_dump_json().encode())

        async def kv_switch(value: GlobalRecoveries | None) -> None:
            if value is None:
                await settings.delete(kv_key(GLOBAL_RECOVERIES_KEY))
            else:
                await settings.put(kv_key(GLOBAL_RECOVERIES_KEY), value.model_dump_json().encode())

        yield Impl("nats", KVRecordStore(bus.js), KVRecordStore(bus.js), KVMasterPublisher(bus.js),
                   KVControlState(bus.js), KVFenceStore(bus.js), kv_behind, kv_switch,
                   KVDowntimeWriter(bus.js))  # fmt: skip
    finally:
        await bus.close()


def cluster_alias() -> str:
    """A cluster of its own per test (the NATS buckets are shared by the module's tests)."""
    return f"db-{uuid.uuid4().hex[:10]}:3306"


def record(alias: str, epoch: int, incident: str = "inc-1") -> RecoveryRecord:
    return RecoveryRecord(
        incident=incident, code="DeadMaster", cluster=alias, alias=alias, failed=InstanceKey.parse(alias),
        epoch=epoch, epochs=[epoch], node=f"leader-{epoch}", started_at=utcnow(),
    )  # fmt: skip


def closed(rec: RecoveryRecord, outcome: Outcome = Outcome.SUCCEEDED) -> RecoveryRecord:
    rec.close(outcome, "done", utcnow())
    return rec


def adopted(rec: RecoveryRecord, epoch: int) -> RecoveryRecord:
    """What a leader of `epoch` does with an open record it read: take it over (a copy)."""
    mine = rec.model_copy(deep=True)
    mine.take_over(epoch, f"leader-{epoch}", utcnow())
    return mine


# -- baton_recoveries ------------------------------------------------------------------------------
async def test_register_creates_and_an_open_record_refuses_a_second_recovery(impl: Impl) -> None:
    alias = cluster_alias()
    first = record(alias, 5)
    await impl.leader_a.register(first)
    stored = await impl.leader_b.current(alias)
    assert stored is not None and stored.uid == first.uid and stored.active
    for store, epoch in ((impl.leader_a, 5), (impl.leader_b, 9)):
        with pytest.raises(ClusterBusy) as busy:
            await store.register(record(alias, epoch, incident="inc-2"))
        assert busy.value.current.uid == first.uid
    await impl.leader_a.register(first)  # the same registration again (a lost reply): nothing to do
    assert (await impl.leader_b.current(alias)).uid == first.uid  # type: ignore[union-attr]


async def test_register_replaces_a_closed_record(impl: Impl) -> None:
    alias = cluster_alias()
    first = record(alias, 5)
    await impl.leader_a.register(first)
    await impl.leader_a.save(closed(first))
    second = record(alias, 9, incident="inc-2")
    await impl.leader_b.register(second)
    stored = await impl.leader_a.current(alias)
    assert stored is not None and stored.uid == second.uid and stored.active


async def test_save_by_the_holding_epoch_and_a_newer_epoch_adopts(impl: Impl) -> None:
    alias = cluster_alias()
    rec = record(alias, 5)
    await impl.leader_a.register(rec)
    rec.reason = "step 1 done"
    await impl.leader_a.save(rec)
    (found,) = [o for o in await impl.leader_b.open_records() if o.alias == alias]
    assert found.reason == "step 1 done" and found.epoch == 5
    mine = adopted(found, 9)
    await impl.leader_b.adopt(mine)
    stored = await impl.leader_a.current(alias)
    assert stored is not None and stored.epoch == 9 and stored.epochs == [5, 9]
    mine.reason = "step 2 done"
    await impl.leader_b.save(mine)
    assert (await impl.leader_a.current(alias)).reason == "step 2 done"  # type: ignore[union-attr]


async def test_a_deposed_epoch_can_neither_save_nor_adopt_nor_close(impl: Impl) -> None:
    alias = cluster_alias()
    old = record(alias, 5)
    await impl.leader_a.register(old)
    await impl.leader_b.adopt(adopted(old, 9))
    old.reason = "the deposed leader carries on"
    with pytest.raises(LeadershipLost):
        await impl.leader_a.save(old)
    with pytest.raises(LeadershipLost):
        await impl.leader_a.save(closed(old.model_copy(deep=True), Outcome.FAILED))
    (found,) = [o for o in await impl.leader_a.open_records() if o.alias == alias]
    assert found.epoch == 9
    with pytest.raises(LeadershipLost):  # a leader between the two (epoch 7) read it before: too late
        await impl.leader_a.adopt(adopted(old, 7))
    stored = await impl.leader_b.current(alias)
    assert stored is not None and stored.epoch == 9 and stored.active and stored.reason == ""


async def test_the_newer_of_two_adopters_wins(impl: Impl) -> None:
    alias = cluster_alias()
    rec = record(alias, 5)
    await impl.leader_a.register(rec)
    (seen_by_7,) = [o for o in await impl.leader_a.open_records() if o.alias == alias]
    (seen_by_9,) = [o for o in await impl.leader_b.open_records() if o.alias == alias]
    await impl.leader_a.adopt(adopted(seen_by_7, 7))  # the older adopter came first
    await impl.leader_b.adopt(adopted(seen_by_9, 9))  # the newer one still takes it over
    with pytest.raises(LeadershipLost):
        await impl.leader_a.save(adopted(seen_by_7, 7))
    assert (await impl.leader_a.current(alias)).epoch == 9  # type: ignore[union-attr]


async def test_a_closed_record_is_never_reopened_and_a_repeated_close_writes_nothing(impl: Impl) -> None:
    alias = cluster_alias()
    rec = record(alias, 5)
    await impl.leader_a.register(rec)
    stale_open = rec.model_copy(deep=True)
    await impl.leader_a.save(closed(rec))
    with pytest.raises(LeadershipLost):
        await impl.leader_a.save(stale_open)  # e.g. a sweep that read it open just before
    with pytest.raises(LeadershipLost):
        await impl.leader_b.adopt(adopted(stale_open, 9))

    def ack(stored: RecoveryRecord) -> bool:
        return stored.acknowledge("op", "seen", utcnow())

    assert await impl.leader_b.annotate(alias, rec.uid, ack) is not None
    await impl.leader_a.save(rec)  # the final save again (its reply was lost): not over the annotation
    stored = await impl.leader_b.current(alias)
    assert stored is not None and stored.outcome is Outcome.SUCCEEDED and stored.acknowledged


async def test_a_record_replaced_by_the_next_recovery_refuses_the_old_one(impl: Impl) -> None:
    alias = cluster_alias()
    first = record(alias, 5)
    await impl.leader_a.register(first)
    done = closed(first.model_copy(deep=True))
    await impl.leader_a.save(done)
    await impl.leader_b.register(record(alias, 9, incident="inc-2"))
    with pytest.raises(LeadershipLost):
        await impl.leader_a.save(done)
    with pytest.raises(LeadershipLost):
        await impl.leader_a.adopt(adopted(first, 11))


async def test_a_write_whose_reply_was_lost_does_not_pass_for_a_newer_leader(impl: Impl) -> None:
    alias = cluster_alias()
    rec = record(alias, 5)
    await impl.leader_a.register(rec)
    rec.reason = "written, reply lost"
    await impl.behind(rec)  # it landed; the store does not know
    rec.reason = "next step"
    await impl.leader_a.save(rec)
    await impl.leader_a.save(closed(rec))
    stored = await impl.leader_b.current(alias)
    assert stored is not None and stored.outcome is Outcome.SUCCEEDED and stored.reason == "done"


async def test_open_and_latest_records_and_annotations(impl: Impl) -> None:
    a, b = cluster_alias(), cluster_alias()
    running, finished = record(a, 5), record(b, 5)
    await impl.leader_a.register(running)
    await impl.leader_a.register(finished)
    await impl.leader_a.save(closed(finished, Outcome.FAILED))
    mine = {a, b}
    assert {r.uid for r in await impl.leader_b.open_records() if r.alias in mine} == {running.uid}
    assert {r.uid for r in await impl.leader_b.latest_records() if r.alias in mine} == {
        running.uid,
        finished.uid,
    }

    def mark(stored: RecoveryRecord) -> bool:
        stored.errors.append("annotated")
        return True

    assert await impl.leader_b.annotate(a, running.uid, mark) is None  # open: its leader's
    assert await impl.leader_b.annotate(b, running.uid, mark) is None  # not that recovery
    assert await impl.leader_b.annotate(b, finished.uid, lambda s: False) is None  # nothing to do
    annotated = await impl.leader_b.annotate(b, finished.uid, mark)
    assert annotated is not None and annotated.errors == ["annotated"]
    assert (await impl.leader_a.current(b)).errors == ["annotated"]  # type: ignore[union-attr]
    assert await impl.leader_a.current(cluster_alias()) is None


# -- baton_masters ---------------------------------------------------------------------------------
async def test_masters_are_never_replaced_by_an_older_epoch(impl: Impl) -> None:
    alias = cluster_alias()
    key = kv_key(alias)
    a, b = InstanceKey.parse(alias), InstanceKey(host="10.0.0.2", port=3306)
    await impl.masters(master_record(alias, alias, a, 5, "uid-5"))
    await impl.masters(master_record(alias, alias, b, 5, "uid-5"))  # same epoch: a resumed publish
    await impl.masters(master_record(alias, alias, b, 9, "uid-9"))
    with pytest.raises(StaleEpoch):
        await impl.masters(master_record(alias, alias, a, 7, "uid-7"))
    now = (await impl.masters.records())[key]
    assert now.master == b and now.epoch == 9 and now.ipv4 == "10.0.0.2"


async def test_masters_create_writes_only_an_empty_key(impl: Impl) -> None:
    alias = cluster_alias()
    key = kv_key(alias)
    first = master_record(alias, alias, InstanceKey.parse(alias), 5, None)
    assert await impl.masters.create(first)
    assert not await impl.masters.create(master_record(alias, alias, InstanceKey.parse(alias), 9, None))
    assert (await impl.masters.records())[key].epoch == 5


# -- operator control state ------------------------------------------------------------------------
def detection(instance: InstanceKey) -> Detection:
    f = Finding(
        code=Analysis.DEAD_MASTER, instance=instance, cluster=str(instance), alias=str(instance),
        reason="dead", is_master=True, reachable=False, priority=1, actionable=True,
    )  # fmt: skip
    now = utcnow()
    return Detection(incident="inc", state=DetectionState.ACTIVE, finding=f, first_evidence_at=now,
                     evidence_at=now, detected_at=now)  # fmt: skip


async def test_blocks_are_listed_while_in_force_and_deleted(impl: Impl) -> None:
    now = utcnow()
    name = cluster_alias()
    inst = InstanceKey.parse(name)

    def block(scope: str, until: timedelta, uid: str) -> Block:
        return Block(scope=scope, cluster=name, alias=name, instance=inst, analysis="DeadMaster",
                     incident="i", uid=uid, blocked_at=now - timedelta(hours=1),
                     blocked_until=now + until)  # fmt: skip

    live, lapsed = (
        block("cluster", timedelta(minutes=5), "live"),
        block("instance", -timedelta(seconds=1), "old"),
    )
    await impl.control.put_block(live)
    await impl.control.put_block(lapsed)
    assert {b.uid for b in await impl.control.blocks(now) if b.cluster == name} == {"live"}
    await impl.control.delete_block(live)
    assert [b for b in await impl.control.blocks(now) if b.cluster == name] == []


async def test_deferred_detections_are_kept_replaced_and_deleted(impl: Impl) -> None:
    inst = InstanceKey.parse(cluster_alias())
    item = Deferred(detection=detection(inst), reason="downtimed", code="downtimed", refusals=1)
    await impl.control.put_deferred(item)
    await impl.control.put_deferred(item.model_copy(update={"refusals": 2}))
    mine = [d for d in await impl.control.deferred() if d.key == item.key]
    assert [d.refusals for d in mine] == [2]
    await impl.control.delete_deferred(item.key)
    await impl.control.delete_deferred(item.key)  # deleting what is gone is fine
    assert [d for d in await impl.control.deferred() if d.key == item.key] == []


async def test_downtimes_in_force_only_and_the_global_switch(impl: Impl) -> None:
    now = utcnow()
    on, over, none = (InstanceKey.parse(cluster_alias()) for _ in range(3))
    for key, start, end in ((on, -60, 300), (over, -7200, -3600)):
        await impl.put_downtime(
            Downtime(
                instance=str(key),
                reason="maintenance",
                owner="op",
                started_at=now + timedelta(seconds=start),
                ends_at=now + timedelta(seconds=end),
            )
        )
    found = await impl.control.downtimes([on, over, none], now)
    assert set(found) == {on} and found[on].reason == "maintenance"
    assert await impl.control.downtimes([], now) == {}

    await impl.set_switch(GlobalRecoveries(enabled=False, by="op"))
    try:
        switch = await impl.control.global_recoveries()
        assert switch is not None and not switch.enabled and switch.by == "op"
    finally:
        await impl.set_switch(None)
    assert await impl.control.global_recoveries() is None


# -- baton_fences ----------------------------------------------------------------------------------
async def test_fence_watches_are_kept_by_server_and_ended_ones_are_still_read(impl: Impl) -> None:
    now = utcnow()
    name = cluster_alias()
    inst = InstanceKey.parse(name)
    rec = closed(record(name, 5))
    watch = FenceWatch(instance=inst, recovery=rec, started_at=now, epoch=5)
    assert await impl.fences.get(inst) is None
    await impl.fences.put(watch)
    got = await impl.fences.get(inst)
    assert got is not None and got.active and got.uid == rec.uid
    ended = watch.model_copy(update={"ended_at": now, "ended_by": "op", "ended_reason": "acknowledged"})
    await impl.fences.put(ended)
    got = await impl.fences.get(inst)
    assert got is not None and not got.active and got.ended_by == "op"
    (listed,) = [w for w in await impl.fences.all(now) if w.instance == inst]
    assert listed.ended_reason == "acknowledged"
