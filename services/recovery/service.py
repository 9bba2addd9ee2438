"""The recovery service: competes for the lease; the leader turns detections into recoveries.

Every process: connects, provisions, remembers snapshots (`SnapshotMemory`), campaigns for
`baton_leader/recovery`. The leader, for the length of its term (`LeaderTerm`):
1. sweeps `baton_recoveries` at once and then every `sweep_s`: every open record nobody drives — left
   by an older epoch, or of this term but with no task of its own any more (an admission or a drive
   that ended without closing it, e.g. on bus errors) — is resumed (`RecoveryPipeline.resume`), so no
   cluster stays busy until the next leader change;
2. watches the failed masters of recent successful recoveries, fencing any that comes back writable;
3. consumes `baton.detection.>` (durable consumer, so a new leader continues where the old one
   stopped): an `active`/`changed` detection of an actionable problem is admitted (gates +
   registration, awaited, then acked) and driven in the background; a refusal is a published
   `skipped` record with its reason;
4. keeps the detections refused by a block, the global switch or a downtime (until cleared) and tries
   them again every `retry_s` and after every acknowledgement: orchestrator re-evaluates every second,
   so a recovery refused only for the moment happens once the reason is gone; each remembers its first
   and latest refusal and how many (those refused by a block are `blocked-recoveries`);
5. answers `baton.cmd.recovery.<verb>` (`verbs.py`, `libs/recovery/manual.py`);
6. seeds baton_masters: every poll interval, a cluster with a unique live writable master and no
   record gets one, create-only (`libs/recovery/keeper.py`), so Consul knows every master.
When the term ends (lease lost: cancelled at once; clean stop: running recoveries finish first) the
consumer, subscriptions and the term's tasks stop and the lease is released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import timedelta
from typing import Any

from nats.aio.subscription import Subscription
from opentelemetry.context import Context

from libs.aio import cancel_and_wait
from libs.bus.connection import Bus, connect
from libs.bus.messages import Consumer, consume
from libs.bus.probe_now import probe_now
from libs.bus.provision import provision
from libs.bus.subjects import DETECTIONS_ALL
from libs.config import Settings
from libs.config.derive import topology_credentials
from libs.errors import BatonError, ConfigError, LeadershipLost
from libs.models import utcnow
from libs.models.events import Event
from libs.recovery.audit import Outcome, RecoveryRecord
from libs.recovery.control import Deferred, KVControlState
from libs.recovery.fence import LeaseFence
from libs.recovery.fence_watch import KVFenceStore, named_masters
from libs.recovery.gates import RETRYABLE, Gate, GateContext
from libs.recovery.leadership import LEASE_TTL_S, Leadership
from libs.recovery.manual import Operations
from libs.recovery.old_master import OldMasterFencer, fencer_pool
from libs.recovery.options import statement_timeout
from libs.recovery.pipeline import RecoveryPaused, RecoveryPipeline, StepHook
from libs.recovery.policy import Policy, policy_gates
from libs.recovery.record_store import RecordStore
from libs.recovery.recovery_events import NatsAckPublisher
from libs.service_main import require_nats
from libs.topology.detection import Detection, DetectionState
from services.recovery import verbs
from services.recovery.snapshot_memory import SnapshotMemory
from services.recovery.wiring import build_collaborators, build_keeper

log = logging.getLogger(__name__)
STOP_GRACE_S = 30.0
SWEEP_S = 3.0  # how often the leader looks for open recoveries nobody drives

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
        sweep_s: float = SWEEP_S,
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
        self.sweep_s = sweep_s
        self.memory = SnapshotMemory()
        self.bus: Bus | None = None
        self.leadership: Leadership | None = None
        self.term: LeaderTerm | None = None  # while leading
        self.finished: list[RecoveryRecord] = []
        self._task: asyncio.Task[None] | None = None

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

    @property
    def running(self) -> dict[str, asyncio.Task[RecoveryRecord]]:
        """uid -> task driving it, in the current term (empty when not leading)."""
        return self.term.running if self.term is not None else {}

    @property
    def deferred(self) -> dict[str, Deferred]:
        """The current term's deferred detections, by `Deferred.key` (empty when not leading)."""
        return self.term.deferred if self.term is not None else {}

    def status(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "leader": self.is_leader,
            "epoch": self.term.fence.epoch if self.term is not None else None,
            "running": sorted(self.running),
            "deferred": sorted(
                f"{d.detection.finding.code.value} on {d.detection.finding.instance} ({d.reason})"
                for d in self.deferred.values()
            ),
        }

    async def _lead(self, fence: LeaseFence) -> None:
        term = self.term = LeaderTerm(self, fence)
        try:
            await term.run()
        finally:
            self.term = None


class LeaderTerm:
    """One leadership term: built when the lease is won, run until it is lost or the service stops.

    It holds everything the term runs — the tasks driving its recoveries (`running`), the sweep of open
    records nobody drives, the retries of deferred detections, the old-master fencing, the seeding of
    baton_masters, the detection consumer and the command subscriptions — and ends them all with the
    term: a lost lease cancels the recoveries at once, a clean stop lets them finish first."""

    def __init__(self, service: RecoveryService, fence: LeaseFence) -> None:
        assert service.bus is not None and service.leadership is not None
        self.service, self.fence = service, fence
        self.bus, self.leadership = service.bus, service.leadership
        js, nc = self.bus.js, self.bus.nc
        settings = service.settings
        self.control = KVControlState(js)
        self.acks = NatsAckPublisher(js, service.node)
        gates = (*policy_gates(service.policy, self.control), fresh_detection, *service.extra_gates)
        self.collab = build_collaborators(
            settings,
            js,
            service.memory,
            gates=gates,
            after_step=service.after_step,
            policy=service.policy,
            control=self.control,
            acknowledged=self.acks,
            refresh=lambda keys: probe_now(nc, keys, reason="recovery done"),
            lease_ttl_s=service.lease_ttl_s,
        )
        self.pipeline = RecoveryPipeline(self.collab, service.node)
        self.store: RecordStore = self.collab.store
        self.fencer = OldMasterFencer(
            fencer_pool(service.statement_timeout_s),
            topology_credentials(settings),
            self.collab.events,
            super_read_only=settings.UseSuperReadOnly,
            statement_timeout_s=service.statement_timeout_s,
            store=KVFenceStore(js),
            records=self.store,
            named_masters=lambda: named_masters(js),
        )
        self.keeper = build_keeper(settings, js, nc, service.node, busy=lambda: bool(self.running))
        self.ops = Operations(
            self.pipeline,
            fence,
            self.control,
            self.acks,
            self._run_record,
            self.retry_deferred,
            deferred=lambda: list(self.deferred.values()),
            masters=self.keeper,
            fences=self.fencer,
        )
        self.running: dict[str, asyncio.Task[RecoveryRecord]] = {}  # uid -> task driving it
        # detections refused for a reason that may pass (blocked, disabled, downtimed), by problem
        # (`Deferred.key`); also kept in baton_blocks so the next leader retries them
        self.deferred: dict[str, Deferred] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.subs: list[Subscription] = []
        self.consumer: Consumer | None = None
        self._retrying = asyncio.Lock()

    async def run(self) -> None:
        service, fence = self.service, self.fence
        try:
            await self.sweep()  # what older epochs left open, before anything new
            for record in await _recent(self.store):
                self.fencer.watch(record)
            for item in await self.control.deferred():  # what earlier leaders were holding back
                self.deferred.setdefault(item.key, item)
            self.consumer = await consume(
                self.bus.js, DETECTIONS_ALL, Event, self._on_detection, durable=DURABLE, queue=DURABLE
            )
            self.subs = await verbs.serve(self.bus.nc, self.ops, service)
            period = max(1.0, float(service.settings.InstancePollSeconds))
            self.tasks = [
                asyncio.create_task(self.fencer.run(fence), name="old master fencing"),
                asyncio.create_task(self._retry_loop(), name="deferred detections"),
                asyncio.create_task(
                    self.keeper.run(fence, service.memory, period_s=period), name="master seeding"
                ),
                asyncio.create_task(self._sweep_loop(), name="open recoveries sweep"),
            ]
            await self.leadership.stopping.wait()
            await self.consumer.stop()  # clean stop: take nothing new, finish what runs
            if self.running:
                await asyncio.wait(list(self.running.values()))
        finally:
            await self._end()

    async def _end(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.consumer is not None:
            await self.consumer.stop()
        for sub in self.subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        for recovery in list(self.running.values()):
            recovery.cancel()  # lease lost: stop at once (a statement in flight may still complete)
        if self.running:
            await asyncio.wait(list(self.running.values()))
        self.deferred.clear()

    # -- recoveries ----------------------------------------------------------------------------------
    def spawn(self, record: RecoveryRecord, work: Any) -> asyncio.Task[RecoveryRecord]:
        """Run `work` (a drive or resume of `record`) as a task of the term."""
        task: asyncio.Task[RecoveryRecord] = asyncio.create_task(work, name=f"recovery {record.uid}")
        self.running[record.uid] = task

        def done(t: asyncio.Task[RecoveryRecord]) -> None:
            if self.running.get(record.uid) is t:
                del self.running[record.uid]
            if t.cancelled():
                return
            exc = t.exception()
            if exc is not None:
                if not isinstance(exc, LeadershipLost | RecoveryPaused):
                    log.warning(
                        "recovery %s: its task ended with %s: %s", record.uid, type(exc).__name__, exc
                    )
                return  # still open (if it is): the sweep resumes it
            result = t.result()
            self.service.finished.append(result)
            self.fencer.watch(result)

        task.add_done_callback(done)
        return task

    async def _run_record(self, record: RecoveryRecord) -> RecoveryRecord:
        """Drive an admitted record to its end (manual operations wait for it)."""
        return await self.spawn(record, self.pipeline.drive(record, self.fence))

    async def sweep(self) -> None:
        """Resume every open record nobody drives: an older epoch's, or this term's whose task is gone."""
        for record in await self.pipeline.orphans(self.fence):
            if record.uid not in self.running:
                log.info("recovery %s of %s (epoch %d) is open and not driven: resuming", record.uid,
                         record.alias, record.epoch)  # fmt: skip
                self.spawn(record, self.pipeline.resume(record, self.fence))

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.service.sweep_s)
            try:
                self.fence.check()
                await self.sweep()
            except LeadershipLost:
                return
            except Exception as exc:  # noqa: BLE001 - the loop must survive a bad moment
                log.warning("sweeping open recoveries failed: %s", exc)

    # -- detections ----------------------------------------------------------------------------------
    async def _forget(self, key: str) -> None:
        if self.deferred.pop(key, None) is not None:
            try:
                await self.control.delete_deferred(key)
            except BatonError as exc:
                log.warning("could not delete deferred detection %s: %s", key, exc)

    async def _admit(self, detection: Detection, quiet_if: str | None = None) -> None:
        key = Deferred(detection=detection, reason="").key
        self.fence.check()  # LeadershipLost: not acked; the next leader gets it again
        record = await self.pipeline.admit(detection, self.fence, quiet_if=quiet_if)
        if record.active:
            self.spawn(record, self.pipeline.drive(record, self.fence))
            await self._forget(key)
            return
        if record.skip_code in RETRYABLE:
            previous = self.deferred.get(key)
            item = self.deferred[key] = Deferred.refused(detection, record, previous)
            if item.news(previous):  # a repeated refusal moves its last time in memory only
                try:
                    await self.control.put_deferred(item)
                except BatonError as exc:
                    log.warning("could not keep deferred detection %s: %s", key, exc)
        else:
            await self._forget(key)
        if quiet_if is None or record.reason != quiet_if:
            self.service.finished.append(record)

    async def _on_detection(self, event: Event, _ctx: Context) -> None:
        if not event.type.startswith("detection."):
            return
        detection = Detection.model_validate(event.data)
        if detection.state is DetectionState.CLEARED:
            await self._forget(Deferred(detection=detection, reason="").key)
            return
        if not detection.finding.actionable:  # skippable ones go through, so the refusal is visible
            return
        await self._admit(detection)

    async def retry_deferred(self) -> None:
        async with self._retrying:
            for item in list(self.deferred.values()):
                await self._admit(item.detection, quiet_if=item.reason)

    async def _retry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.service.retry_s)
            try:
                await self.retry_deferred()
            except LeadershipLost:
                return
            except Exception as exc:  # noqa: BLE001 - the loop must survive a bad moment
                log.warning("retrying deferred detections failed: %s", exc)


async def _recent(store: RecordStore) -> list[RecoveryRecord]:
    """Successful recoveries still worth watching for a returning old master."""
    records = await store.latest_records()
    cutoff = utcnow() - timedelta(hours=24)
    return [r for r in records if r.outcome is Outcome.SUCCEEDED and r.ended_at and r.ended_at > cutoff]


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run one recovery process until `stop` is set (libs.service_main's contract)."""
    require_nats(settings, "recovery")
    service = await RecoveryService(settings).start()
    try:
        await stop.wait()
        log.info("recovery: shutting down")
    finally:
        await service.stop()
