"""Issue 11 item 6 on real servers: transient NATS errors during a failover (a fault-injecting wrapper
around the real `KVRecordStore`) are ridden out. Before promotion they are retried, never a FAILED
recovery plus an anti-flapping block (past the retry budget the record is left open and resumed); after
promotion the outcome is saved and the master published whatever it takes, by this leader or the next."""

from __future__ import annotations

import asyncio
import dataclasses

import nats.js.errors
import pytest

from libs.bus.connection import Bus, connect
from libs.bus.provision import MASTERS, RECOVERIES, provision
from libs.bus.server import NatsServer
from libs.bus.subjects import kv_key
from libs.errors import BusError, LeadershipLost
from libs.models import MasterRecord, utcnow
from libs.recovery.audit import Outcome, RecoveryRecord, StepOutcome
from libs.recovery.control import KVControlState
from libs.recovery.fence import StaticFence
from libs.recovery.masters import KVMasterPublisher, MasterPublisher
from libs.recovery.pipeline import RecoveryPaused, RecoveryPipeline, RetryPolicy
from libs.recovery.policy import Policy
from libs.recovery.record_store import KVRecordStore
from libs.recovery.recovery_events import NatsEventSink
from libs.sandbox import Sandbox
from libs.sandbox.spec import master_replicas
from libs.topology.detection import Detection
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.recovery.harness import Harness, build, wait_dead_master, writable_masters
from tests.unit.recovery.flaky import Fault, FlakyStore, not_promoted, promoted

RETRY = RetryPolicy(first_s=0.02, max_delay_s=0.2, budget_s=1.0)


@dataclasses.dataclass
class Rig:
    sb: Sandbox
    bus: Bus
    h: Harness
    store: FlakyStore
    control: KVControlState

    def pipeline(self, node: str = "leader", masters: MasterPublisher | None = None) -> RecoveryPipeline:
        """A pipeline over the real NATS-backed stores (the record store behind the fault injector)."""
        js = self.bus.js
        collab = dataclasses.replace(
            self.h.collab,
            store=self.store,
            masters=masters or KVMasterPublisher(js),
            events=NatsEventSink(js),
            control=self.control,
            policy=Policy(block_seconds=3600),
            retry=RETRY,
        )
        return RecoveryPipeline(collab, node)

    async def dead_master(self) -> Detection:
        master = self.sb.key("master")
        self.sb.kill("master")
        return await wait_dead_master(self.h, master)

    async def stored(self, alias: str) -> RecoveryRecord:
        kv = await self.bus.js.key_value(RECOVERIES)
        entry = await kv.get(kv_key(alias))
        return RecoveryRecord.model_validate_json(entry.value or b"")

    async def published(self, alias: str) -> MasterRecord | None:
        kv = await self.bus.js.key_value(MASTERS)
        try:
            entry = await kv.get(kv_key(alias))
        except nats.js.errors.KeyNotFoundError:
            return None
        return MasterRecord.model_validate_json(entry.value) if entry.value else None

    async def check_recovered(self, rec: RecoveryRecord) -> None:
        """Closed succeeded in KV, one writable master (the successor), published under the record."""
        assert rec.outcome is Outcome.SUCCEEDED, (rec.reason, rec.errors)
        stored = await self.stored(rec.alias)
        assert stored.uid == rec.uid and stored.outcome is Outcome.SUCCEEDED
        assert rec.successor is not None
        assert await writable_masters(self.sb, self.sb.names) == [self.sb.name_of(rec.successor)]
        published = await self.published(rec.alias)
        assert published is not None and published.master == rec.successor
        assert published.recovery_uid == rec.uid and published.epoch in rec.epochs
        done = [s.name for s in rec.steps if s.outcome is StepOutcome.DONE]
        assert len(done) == len(set(done)) and len([n for n in done if n.startswith("promote:")]) == 1


@pytest.fixture
async def rig(sandbox_factory: SandboxFactory, nats_server: NatsServer) -> Rig:  # type: ignore[misc]
    sb = await sandbox_factory(master_replicas(2))
    bus = await connect(nats_server.url, "transient-test")
    try:
        await provision(bus.js)
        h = build(sb)
        yield Rig(sb, bus, h, FlakyStore(KVRecordStore(bus.js)), KVControlState(bus.js))
    finally:
        await bus.close()


@pytest.mark.timeout(60)
async def test_bus_errors_before_promotion_are_retried_not_failed(rig: Rig) -> None:
    rig.store.inject(Fault("save", times=1, landed=True))  # written, reply lost
    rig.store.inject(Fault("save", times=3, when=not_promoted))
    pipeline = rig.pipeline()
    rec = await pipeline.handle(await rig.dead_master(), StaticFence(5))
    assert rig.store.raised == ["save"] * 4
    await rig.check_recovered(rec)
    assert not [s for s in rec.steps if s.outcome is StepOutcome.FAILED and not s.name.startswith("recheck")]
    blocks = await rig.control.blocks(utcnow())
    assert [b.uid for b in blocks] == [rec.uid]  # the succeeded recovery's own block, nothing FAILED


@pytest.mark.timeout(60)
async def test_bus_errors_outlasting_the_budget_leave_the_record_open_then_it_is_resumed(rig: Rig) -> None:
    rig.store.inject(Fault("save", times=None, when=not_promoted))
    pipeline = rig.pipeline()
    fence = StaticFence(5)
    with pytest.raises(RecoveryPaused):
        await pipeline.handle(await rig.dead_master(), fence)
    alias = str(rig.sb.key("master"))
    left = await rig.stored(alias)
    assert left.active and left.outcome is Outcome.RUNNING
    assert await rig.control.blocks(utcnow()) == []  # no FAILED, no anti-flapping block
    assert await writable_masters(rig.sb, rig.sb.names) == []  # nothing promoted meanwhile

    rig.store.heal()  # the bus is back: the leader's sweep resumes it
    (rec,) = await pipeline.resume_open(fence)
    assert rec.uid == left.uid and rec.epochs == [5]
    await rig.check_recovered(rec)


@pytest.mark.timeout(60)
async def test_saves_failing_after_promotion_still_end_saved_and_published(rig: Rig) -> None:
    rig.store.inject(Fault("save", times=None, when=promoted))
    asyncio.get_running_loop().call_later(3 * RETRY.budget_s, rig.store.heal)  # past the budget
    rec = await rig.pipeline().handle(await rig.dead_master(), StaticFence(5))
    assert len(rig.store.raised) > 5
    await rig.check_recovered(rec)


@pytest.mark.timeout(60)
async def test_lease_lost_while_the_bus_fails_after_promotion_the_next_leader_publishes(rig: Rig) -> None:
    rig.store.inject(Fault("save", times=None, when=promoted))
    old_fence = StaticFence(5)
    asyncio.get_running_loop().call_later(3 * RETRY.budget_s, old_fence.lose)

    async def unreachable(record: MasterRecord) -> None:
        raise BusError("publishing master: timed out waiting for NATS")

    with pytest.raises(LeadershipLost):
        await rig.pipeline("old", masters=unreachable).handle(await rig.dead_master(), old_fence)
    alias = str(rig.sb.key("master"))
    left = await rig.stored(alias)
    assert left.active and any(s.name.startswith("promote:") for s in left.steps)
    assert await rig.published(alias) is None  # the old leader could not get that far

    rig.store.heal()
    new = rig.pipeline("new")
    (rec,) = await new.resume_open(StaticFence(9))
    assert rec.epochs == [5, 9] and rec.node == "new"
    await rig.check_recovered(rec)
    published = await rig.published(alias)
    assert published is not None and published.epoch == 9
    promoted_by = [
        s.epoch for s in rec.steps if s.name.startswith("promote:") and s.outcome is StepOutcome.DONE
    ]
    assert promoted_by == [5]  # the new leader did not promote again
