"""The recovery service: competes for the lease; the leader turns detections into recoveries.

Every process: connects, provisions, remembers snapshots (`SnapshotMemory`), campaigns for
`baton_leader/recovery`. The leader, for the length of its term:
1. resumes (or closes) every recovery older epochs left open in `baton_recoveries`;
2. watches the failed masters of recent successful recoveries, fencing any that comes back writable;
3. consumes `baton.detection.>` (durable consumer, so a new leader continues where the old one
   stopped): an `active`/`changed` detection whose finding triggers a recovery is admitted (gates +
   registration, awaited, then acked) and driven in the background;
4. answers `baton.cmd.recovery.<verb>`.
When the term ends (lease lost: cancelled at once; clean stop: running recoveries finish first) the
consumer and subscriptions stop and the lease is released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import timedelta
from typing import Any

from opentelemetry.context import Context

from libs.bus.connection import Bus, connect
from libs.bus.messages import consume
from libs.bus.provision import provision
from libs.bus.subjects import DETECTIONS_ALL
from libs.config import Settings
from libs.config.derive import topology_credentials
from libs.errors import ConfigError
from libs.models import utcnow
from libs.models.events import Event
from libs.mysql import ConnectionPool
from libs.recovery.audit import Outcome, RecoveryRecord
from libs.recovery.fence import Fence, LeaseFence
from libs.recovery.gates import DEFAULT_GATES, Gate, GateContext
from libs.recovery.leadership import Leadership
from libs.recovery.old_master import OldMasterFencer
from libs.recovery.pipeline import RecoveryPipeline, StepHook
from libs.recovery.store import RecordStore, ensure_bucket
from libs.runner import require_nats
from libs.topology.detection import Detection, DetectionState
from services.recovery import commands
from services.recovery.fleet import SnapshotMemory
from services.recovery.wiring import build_collaborators, current_master

log = logging.getLogger(__name__)

DURABLE = "baton-recovery"
MAX_DETECTION_AGE = timedelta(hours=1)  # FailureDetectionPeriodBlockMinutes' default


async def fresh_detection(ctx: GateContext) -> str | None:
    """A detection replayed from long ago (first start of the durable consumer) is not acted upon."""
    age = ctx.now - ctx.detection.detected_at
    if age > MAX_DETECTION_AGE:
        return f"detection is {age.total_seconds():.0f}s old (limit {MAX_DETECTION_AGE.total_seconds():.0f}s)"
    return None


class RecoveryService:
    def __init__(
        self,
        settings: Settings,
        *,
        node: str | None = None,
        lease_ttl_s: int = 3,
        extra_gates: tuple[Gate, ...] = (),
        after_step: StepHook | None = None,
    ) -> None:
        if not settings.BatonNatsURLs:
            raise ConfigError("BatonNatsURLs is empty: the recovery service needs a NATS server")
        self.settings = settings
        self.node = node or f"{settings.BatonNodeName}-{uuid.uuid4().hex[:6]}"
        self.lease_ttl_s = lease_ttl_s
        self.gates = (*DEFAULT_GATES, fresh_detection, *extra_gates)
        self.after_step = after_step
        self.memory = SnapshotMemory()
        self.bus: Bus | None = None
        self.leadership: Leadership | None = None
        self.running: dict[str, asyncio.Task[RecoveryRecord]] = {}  # uid -> drive task
        self.finished: list[RecoveryRecord] = []
        self._task: asyncio.Task[None] | None = None
        self._fence: Fence | None = None

    async def start(self) -> RecoveryService:
        bus = self.bus = await connect(self.settings.BatonNatsURLs, f"baton-recovery {self.node}")
        await provision(bus.js, self.settings.BatonStreamReplicas)
        await ensure_bucket(bus.js, self.settings.BatonStreamReplicas)
        await self.memory.start(bus.js)
        self.leadership = Leadership(bus.js, self.node, ttl_s=self.lease_ttl_s)
        self._task = asyncio.create_task(self.leadership.run(self._lead), name="recovery leadership")
        return self

    async def stop(self) -> None:
        if self.leadership is not None:
            self.leadership.stop()
        if self._task is not None:
            await asyncio.wait({self._task})
        await self.memory.stop()
        if self.bus is not None:
            await self.bus.close()

    @property
    def is_leader(self) -> bool:
        return self.leadership is not None and self.leadership.is_leader

    def status(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "leader": self.is_leader,
            "epoch": self._fence.epoch if self._fence else None,
            "running": sorted(self.running),
        }

    # -- one leadership term -------------------------------------------------------------------------
    async def _lead(self, fence: LeaseFence) -> None:
        assert self.bus is not None and self.leadership is not None
        js, nc = self.bus.js, self.bus.nc
        self._fence = fence
        collab = build_collaborators(
            self.settings, js, self.memory, gates=self.gates, after_step=self.after_step
        )
        pipeline = RecoveryPipeline(collab, self.node)
        fencer = OldMasterFencer(
            ConnectionPool(connect_timeout=1.0, read_timeout=2.0),
            topology_credentials(self.settings),
            collab.events,
            super_read_only=self.settings.UseSuperReadOnly,
            current_master=lambda alias: current_master(js, alias),
        )
        store = collab.store
        for record in await store.open_records():
            if record.epoch < fence.epoch:
                self._spawn(record, pipeline.resume(record, fence), fencer)
        for record in await _recent(store):
            fencer.watch(record)

        async def on_detection(event: Event, _ctx: Context) -> None:
            if not event.type.startswith("detection."):
                return
            detection = Detection.model_validate(event.data)
            if detection.state is DetectionState.CLEARED or not detection.finding.triggers_recovery:
                return
            fence.check()  # LeadershipLost: not acked; the next leader gets it again
            record = await pipeline.admit(detection, fence)
            if record.active:
                self._spawn(record, pipeline.drive(record, fence), fencer)
            else:
                self.finished.append(record)

        consumer = await consume(js, DETECTIONS_ALL, Event, on_detection, durable=DURABLE, queue=DURABLE)
        subs = await commands.serve(nc, self)
        fencing = asyncio.create_task(fencer.run(fence), name="old master fencing")
        try:
            await self.leadership.stopping.wait()
            await consumer.stop()  # clean stop: take nothing new, finish what runs
            if self.running:
                await asyncio.wait(list(self.running.values()))
        finally:
            fencing.cancel()
            await consumer.stop()
            for sub in subs:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
            for task in list(self.running.values()):
                task.cancel()  # lease lost: stop at once (a statement in flight may still complete)
            if self.running:
                await asyncio.wait(list(self.running.values()))
            self._fence = None

    def _spawn(self, record: RecoveryRecord, work: Any, fencer: OldMasterFencer) -> None:
        task: asyncio.Task[RecoveryRecord] = asyncio.create_task(work, name=f"recovery {record.uid}")
        self.running[record.uid] = task

        def done(t: asyncio.Task[RecoveryRecord]) -> None:
            self.running.pop(record.uid, None)
            if t.cancelled() or t.exception() is not None:
                return
            result = t.result()
            self.finished.append(result)
            fencer.watch(result)

        task.add_done_callback(done)


async def _recent(store: RecordStore) -> list[RecoveryRecord]:
    """Successful recoveries still worth watching for a returning old master."""
    records = await store.latest_records()
    cutoff = utcnow() - timedelta(hours=24)
    return [r for r in records if r.outcome is Outcome.SUCCEEDED and r.ended_at and r.ended_at > cutoff]


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run one recovery process until `stop` is set (libs.runner's contract)."""
    require_nats(settings, "recovery")
    service = await RecoveryService(settings).start()
    try:
        await stop.wait()
        log.info("recovery: shutting down")
    finally:
        await service.stop()
