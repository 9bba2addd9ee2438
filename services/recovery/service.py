"""The recovery service: competes for the lease; the leader turns detections into recoveries.

Every process: connects, provisions, remembers snapshots (`SnapshotMemory`), campaigns for
`baton_leader/recovery`. The leader, for the length of its term:
1. resumes (or closes) every recovery older epochs left open in `baton_recoveries`;
2. watches the failed masters of recent successful recoveries, fencing any that comes back writable;
3. consumes `baton.detection.>` (durable consumer, so a new leader continues where the old one
   stopped): an `active`/`changed` detection of an actionable problem is admitted (gates +
   registration, awaited, then acked) and driven in the background; a refusal is a published
   `skipped` record with its reason;
4. keeps the detections refused by a block, the global switch or a downtime (until cleared) and tries
   them again every `retry_s` and after every acknowledgement: orchestrator re-evaluates every second,
   so a recovery refused only for the moment happens once the reason is gone; each remembers its first
   and latest refusal and how many (those refused by a block are `blocked-recoveries`);
5. answers `baton.cmd.recovery.<verb>` (`commands.py`, `libs/recovery/manual.py`);
6. seeds baton_masters: every poll interval, a cluster with a unique live writable master and no
   record gets one, create-only (`libs/recovery/keeper.py`), so Consul knows every master.
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

from libs.aio import cancel_and_wait
from libs.bus.connection import Bus, connect
from libs.bus.messages import consume
from libs.bus.probe_now import probe_now
from libs.bus.provision import provision
from libs.bus.subjects import DETECTIONS_ALL
from libs.config import Settings
from libs.config.derive import topology_credentials
from libs.errors import BatonError, ConfigError, LeadershipLost
from libs.models import utcnow
from libs.models.events import Event
from libs.mysql.fenced import action_pool
from libs.recovery.audit import Outcome, RecoveryRecord
from libs.recovery.control import Deferred, KVControlState
from libs.recovery.events import NatsAckPublisher
from libs.recovery.fence import Fence, LeaseFence
from libs.recovery.gates import RETRYABLE, Gate, GateContext
from libs.recovery.leadership import LEASE_TTL_S, Leadership
from libs.recovery.manual import Operations
from libs.recovery.old_master import OldMasterFencer
from libs.recovery.options import statement_timeout
from libs.recovery.pipeline import RecoveryPipeline, StepHook
from libs.recovery.policy import Policy, policy_gates
from libs.recovery.store import RecordStore
from libs.runner import require_nats
from libs.topology.detection import Detection, DetectionState
from services.recovery import commands
from services.recovery.fleet import SnapshotMemory
from services.recovery.wiring import build_collaborators, build_keeper, current_master

log = logging.getLogger(__name__)
STOP_GRACE_S = 30.0

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
        lease_ttl_s: int = LEASE_TTL_S,
        extra_gates: tuple[Gate, ...] = (),
        after_step: StepHook | None = None,
        retry_s: float = 2.0,
    ) -> None:
        if not settings.BatonNatsURLs:
            raise ConfigError("BatonNatsURLs is empty: the recovery service needs a NATS server")
        self.settings = settings
        self.node = node or f"{settings.BatonNodeName}-{uuid.uuid4().hex[:6]}"
        self.lease_ttl_s = lease_ttl_s
        self.statement_timeout_s = statement_timeout(settings, lease_ttl_s)  # ConfigError unless < TTL
        self.policy = Policy.from_settings(settings)
        self.extra_gates = extra_gates
        self.after_step = after_step
        self.retry_s = retry_s
        # detections refused for a reason that may pass (blocked, disabled, downtimed), by problem
        # (`Deferred.key`); also kept in baton_blocks so the next leader retries them
        self.deferred: dict[str, Deferred] = {}
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
        await self.memory.start(bus.js)
        self.leadership = Leadership(bus.js, self.node, ttl_s=self.lease_ttl_s)
        self._task = asyncio.create_task(self.leadership.run(self._lead), name="recovery leadership")
        return self

    async def stop(self) -> None:
        if self.leadership is not None:
            self.leadership.stop()
        if self._task is not None:
            # Running recoveries may finish (a failover cut in half is worse than a slow shutdown), but
            # not forever: after the grace period the leadership task is cancelled for sure.
            done, _ = await asyncio.wait({self._task}, timeout=STOP_GRACE_S)
            if not done:
                log.warning("recovery: still busy after %ss, cancelling", STOP_GRACE_S)
                await cancel_and_wait(self._task)
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
            "deferred": sorted(
                f"{d.detection.finding.code.value} on {d.detection.finding.instance} ({d.reason})"
                for d in self.deferred.values()
            ),
        }

    # -- one leadership term -------------------------------------------------------------------------
    async def _lead(self, fence: LeaseFence) -> None:
        assert self.bus is not None and self.leadership is not None
        js, nc = self.bus.js, self.bus.nc
        self._fence = fence
        control = KVControlState(js)
        acks = NatsAckPublisher(js, self.node)
        gates = (*policy_gates(self.policy, control), fresh_detection, *self.extra_gates)
        collab = build_collaborators(
            self.settings,
            js,
            self.memory,
            gates=gates,
            after_step=self.after_step,
            policy=self.policy,
            control=control,
            acknowledged=acks,
            refresh=lambda keys: probe_now(nc, keys, reason="recovery done"),
            lease_ttl_s=self.lease_ttl_s,
        )
        pipeline = RecoveryPipeline(collab, self.node)
        store = collab.store

        async def fenced(record: RecoveryRecord) -> None:
            at = record.fenced_at

            def mark(stored: RecoveryRecord) -> bool:
                stored.fenced_at, stored.errors = at, record.errors
                return True

            await store.annotate(record.alias, record.uid, mark)

        fencer = OldMasterFencer(
            action_pool(connect_timeout=1.0, statement_timeout=self.statement_timeout_s),
            topology_credentials(self.settings),
            collab.events,
            super_read_only=self.settings.UseSuperReadOnly,
            statement_timeout_s=self.statement_timeout_s,
            current_master=lambda alias: current_master(js, alias),
            on_fenced=fenced,
        )
        for record in await store.open_records():
            if record.epoch < fence.epoch:
                self._spawn(record, pipeline.resume(record, fence), fencer)
        for record in await _recent(store):
            fencer.watch(record)

        async def forget(key: str) -> None:
            if self.deferred.pop(key, None) is not None:
                try:
                    await control.delete_deferred(key)
                except BatonError as exc:
                    log.warning("could not delete deferred detection %s: %s", key, exc)

        async def admit(detection: Detection, quiet_if: str | None = None) -> None:
            key = Deferred(detection=detection, reason="").key
            fence.check()  # LeadershipLost: not acked; the next leader gets it again
            record = await pipeline.admit(detection, fence, quiet_if=quiet_if)
            if record.active:
                await forget(key)
                self._spawn(record, pipeline.drive(record, fence), fencer)
                return
            if record.skip_code in RETRYABLE:
                previous = self.deferred.get(key)
                item = self.deferred[key] = Deferred.refused(detection, record, previous)
                if item.news(previous):  # a repeated refusal moves its last time in memory only
                    try:
                        await control.put_deferred(item)
                    except BatonError as exc:
                        log.warning("could not keep deferred detection %s: %s", key, exc)
            else:
                await forget(key)
            if quiet_if is None or record.reason != quiet_if:
                self.finished.append(record)

        async def on_detection(event: Event, _ctx: Context) -> None:
            if not event.type.startswith("detection."):
                return
            detection = Detection.model_validate(event.data)
            f = detection.finding
            if detection.state is DetectionState.CLEARED:
                await forget(Deferred(detection=detection, reason="").key)
                return
            if not f.actionable:  # skippable ones go through, so the refusal (downtimed) is visible
                return
            await admit(detection)

        retrying = asyncio.Lock()

        async def retry_deferred() -> None:
            async with retrying:
                for item in list(self.deferred.values()):
                    await admit(item.detection, quiet_if=item.reason)

        async def retry_loop() -> None:
            while True:
                await asyncio.sleep(self.retry_s)
                try:
                    await retry_deferred()
                except LeadershipLost:
                    return
                except Exception as exc:  # noqa: BLE001 - the loop must survive a bad moment
                    log.warning("retrying deferred detections failed: %s", exc)

        async def run(record: RecoveryRecord) -> RecoveryRecord:
            return await self._spawn(record, pipeline.drive(record, fence), fencer)

        for item in await control.deferred():  # what earlier leaders were holding back
            self.deferred.setdefault(item.key, item)
        keeper = build_keeper(self.settings, js, nc, self.node, busy=lambda: bool(self.running))
        ops = Operations(
            pipeline,
            fence,
            control,
            acks,
            run,
            retry_deferred,
            deferred=lambda: list(self.deferred.values()),
            masters=keeper,
        )
        consumer = await consume(js, DETECTIONS_ALL, Event, on_detection, durable=DURABLE, queue=DURABLE)
        subs = await commands.serve(nc, ops, self)
        fencing = asyncio.create_task(fencer.run(fence), name="old master fencing")
        retries = asyncio.create_task(retry_loop(), name="deferred detections")
        seeding = asyncio.create_task(
            keeper.run(fence, self.memory, period_s=max(1.0, float(self.settings.InstancePollSeconds))),
            name="master seeding",
        )
        try:
            await self.leadership.stopping.wait()
            await consumer.stop()  # clean stop: take nothing new, finish what runs
            if self.running:
                await asyncio.wait(list(self.running.values()))
        finally:
            fencing.cancel()
            retries.cancel()
            seeding.cancel()
            await consumer.stop()
            for sub in subs:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
            for task in list(self.running.values()):
                task.cancel()  # lease lost: stop at once (a statement in flight may still complete)
            if self.running:
                await asyncio.wait(list(self.running.values()))
            self._fence = None
            self.deferred.clear()

    def _spawn(
        self, record: RecoveryRecord, work: Any, fencer: OldMasterFencer
    ) -> asyncio.Task[RecoveryRecord]:
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
        return task


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
