"""One leadership term of the recovery service: what the leader runs while it holds the lease.

Built by the service's wiring when the lease is won (`services/recovery/service.py` builds the parts:
the pipeline and its collaborators, the control state, the old-master fencer, the master keeper) and
run until the lease is lost or the service stops. For its length it:
1. sweeps `baton_recoveries` at once and then every `sweep_s`: every open record nobody drives — left
   by an older epoch, or of this term but with no task of its own any more (an admission or a drive
   that ended without closing it, e.g. on bus errors) — is resumed (`RecoveryPipeline.resume`), so no
   cluster stays busy until the next leader change;
2. watches the failed masters of recent successful recoveries (`recent_successes`), fencing any that
   comes back writable;
3. consumes `baton.detection.>` (durable consumer, so a new leader continues where the old one
   stopped): what to do with each detection is `libs/topology/deferral.detection_action`; an admitted
   one (gates + registration, awaited, then acked) is driven in the background; a refusal is a
   published `skipped` record with its reason;
4. keeps the detections refused for a reason that may pass (`deferral.admission_action`: a block, the
   global switch, a downtime, until cleared) and tries them again every `retry_s` and after every
   acknowledgement: orchestrator re-evaluates every second, so a recovery refused only for the moment
   happens once the reason is gone; each remembers its first and latest refusal and how many (those
   refused by a block are `blocked-recoveries`);
5. answers `baton.cmd.recovery.<verb>` (`commands`, with `libs/recovery/manual.py`'s `Operations`);
6. seeds baton_masters every `seed_period_s` (`keeper.py`; the wiring gives the keeper a `busy` that
   holds it back while a recovery of the term runs).
When the term ends (lease lost: cancelled at once; clean stop: running recoveries get up to
`STOP_GRACE_S` to finish, then are cancelled, their records left open for the next leader's sweep) the
consumer, subscriptions and the term's tasks stop, and the stop waits for those tasks to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from opentelemetry.context import Context

from libs.bus.messages import Consumer, consume
from libs.bus.provision import transient_chain
from libs.bus.subjects import DETECTIONS_ALL
from libs.errors import BatonError, BusError, LeadershipLost
from libs.models import utcnow
from libs.models.events import Event
from libs.recovery.audit import Outcome, RecoveryRecord
from libs.recovery.control import ControlState, Deferred
from libs.recovery.fence import Fence
from libs.recovery.gates import RETRYABLE
from libs.recovery.keeper import Known, MasterKeeper
from libs.recovery.manual import Operations
from libs.recovery.old_master import OldMasterFencer
from libs.recovery.pipeline import RecoveryPaused, RecoveryPipeline
from libs.recovery.recovery_events import AckPublisher
from libs.recovery.tasks import log_crash
from libs.topology.deferral import (
    AdmissionAction,
    DetectionAction,
    admission_action,
    detection_action,
    refusal_reported,
)
from libs.topology.detection import Detection

log = logging.getLogger(__name__)

DURABLE = "baton-recovery"  # the detection consumer (durable, queue group): a new leader carries on
WATCH_OLD_MASTERS = timedelta(hours=24)  # how long a failed-over master is watched for its return

Commands = Callable[[Operations], Awaitable[list[Subscription]]]


def recent_successes(
    records: Iterable[RecoveryRecord], now: datetime, window: timedelta = WATCH_OLD_MASTERS
) -> list[RecoveryRecord]:
    """Successful recoveries ended within `window` of `now`: their old masters are still worth watching
    for a return."""
    cutoff = now - window
    return [r for r in records if r.outcome is Outcome.SUCCEEDED and r.ended_at and r.ended_at > cutoff]


# A detection delivered to a leader that died before acknowledging it (admission acks once the record
# is registered) is delivered again after this long, to whoever leads by then: twice the lease TTL, so
# the next leader is usually in office. JetStream's default, 30 s, held a master failover back by 30 s
# when the leader was killed just after the master (the chaos tier's leader-sigkill scenario).
DETECTION_ACK_WAIT_S = 6.0
# A clean stop lets running recoveries finish, for this long at most: a stop must end (SIGTERM of
# `baton up`, a deploy), and a recovery cut short stays open for the next leader's sweep to resume.
STOP_GRACE_S = 20.0
# a new term's start-up reads and subscriptions: retried while the failure is transient (a JetStream
# without its meta or stream leader for seconds after a NATS node died), not the end of the term
START_BUDGET_S = 30.0
READ_ATTEMPT_S = 1.0  # a start-up read's first attempt (`patiently`); doubled on each retry
_T = TypeVar("_T")


async def patiently(
    step: Callable[[], Awaitable[_T]],
    budget_s: float = START_BUDGET_S,
    *,
    first_attempt_s: float | None = None,
) -> _T:
    """`step()`, again after a bounded back-off (0.2 s doubling to 2 s) while it fails transiently (a
    timeout, no responders, JetStream unavailable: `libs.bus.provision.transient_chain`) and `budget_s`
    lasts. Each start-up step is idempotent (reads; a durable consumer found again; open records resumed
    once, by uid), so a step is retried alone: a term does not die of its first timeout, which would cost
    the lease and a re-election. LeadershipLost and any other failure pass through.

    `first_attempt_s` (steps that can be abandoned: reads, and the detections subscription, whose
    JetStream requests — stream lookup, consumer info/create — all come before its local subscription,
    made without waiting on the server): the first attempt is given that long, each next one twice as
    long (up to the bus's own 5 s request timeout). A request to a stream that has no
    leader yet (a NATS node just died) is never answered; without this bound it waits the whole 5 s
    although the new leader is elected a second later."""
    deadline = time.monotonic() + budget_s
    delay, attempt_s = 0.2, first_attempt_s
    while True:
        try:
            if attempt_s is None:
                return await step()
            return await asyncio.wait_for(step(), attempt_s)
        except TimeoutError as exc:
            if attempt_s is None or time.monotonic() + delay > deadline:
                raise BusError(f"starting the term: no answer within {attempt_s}s") from exc
            log.warning("recovery: starting the term: no answer within %gs; retrying", attempt_s)
            attempt_s = min(attempt_s * 2, 5.0)
        except BatonError as exc:
            if isinstance(exc, LeadershipLost) or not transient_chain(exc):
                raise
            if time.monotonic() + delay > deadline:
                raise
            log.warning("recovery: starting the term: %s; retrying in %.1fs", exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


class LeaderTerm:
    """One leadership term (see the module docstring). It holds everything the term runs — the tasks
    driving its recoveries (`running`), the sweep, the retries of deferred detections (`deferred`), the
    old-master fencing, the seeding, the detection consumer and the command subscriptions — and ends
    them all with the term."""

    def __init__(
        self,
        fence: Fence,
        *,
        js: JetStreamContext,
        stopping: asyncio.Event,
        pipeline: RecoveryPipeline,
        control: ControlState,
        acks: AckPublisher,
        fencer: OldMasterFencer,
        keeper: MasterKeeper,
        known: Known,
        commands: Commands,
        finished: list[RecoveryRecord],
        seed_period_s: float,
        retry_s: float,
        sweep_s: float,
        on_closed: Callable[[RecoveryRecord], None] | None = None,
    ) -> None:
        self.fence, self.js, self.stopping = fence, js, stopping
        self.pipeline, self.control, self.fencer, self.keeper = pipeline, control, fencer, keeper
        pipeline.c.on_promoted = fencer.watch_promoted
        self.store = pipeline.c.store
        self.known, self.commands, self.finished = known, commands, finished
        self.on_closed = on_closed  # called with every record a task of the term closed (metrics)
        self.seed_period_s, self.retry_s, self.sweep_s = seed_period_s, retry_s, sweep_s
        self.ops = Operations(
            pipeline,
            fence,
            control,
            acks,
            self._run_record,
            self.retry_deferred,
            deferred=lambda: list(self.deferred.values()),
            masters=keeper,
            fences=fencer,
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
        fence = self.fence
        try:
            await patiently(self.sweep, first_attempt_s=READ_ATTEMPT_S)  # older epochs' open records first
            latest = await patiently(self.store.latest_records, first_attempt_s=READ_ATTEMPT_S)
            for record in recent_successes(latest, utcnow()):
                self.fencer.watch(record)
            deferred = await patiently(self.control.deferred, first_attempt_s=READ_ATTEMPT_S)
            for item in deferred:  # what earlier leaders were holding back
                self.deferred.setdefault(item.key, item)
            self.consumer = await patiently(
                lambda: consume(
                    self.js,
                    DETECTIONS_ALL,
                    Event,
                    self._on_detection,
                    durable=DURABLE,
                    queue=DURABLE,
                    ack_wait_s=DETECTION_ACK_WAIT_S,
                ),
                first_attempt_s=READ_ATTEMPT_S,
            )
            self.subs = await self.commands(self.ops)  # core NATS subscriptions: no JetStream request
            self.tasks = [
                asyncio.create_task(self.fencer.run(fence), name="old master fencing"),
                asyncio.create_task(self._retry_loop(), name="deferred detections"),
                asyncio.create_task(
                    self.keeper.run(fence, self.known, period_s=self.seed_period_s), name="master seeding"
                ),
                asyncio.create_task(self._sweep_loop(), name="open recoveries sweep"),
            ]
            for task in self.tasks:  # a helper that dies says so at once, with its traceback
                task.add_done_callback(log_crash(log, f"recovery: {task.get_name()}", (LeadershipLost,)))
            await self.stopping.wait()
            await self.consumer.stop()  # clean stop: take nothing new, finish what runs
            await self.finish_running()
        finally:
            await self._end()

    async def finish_running(self, grace_s: float = STOP_GRACE_S) -> set[asyncio.Task[RecoveryRecord]]:
        """A clean stop's wait: up to `grace_s` for the running recoveries to end; returns those still
        running (`_end` cancels them, their records stay open for the next leader's sweep)."""
        if not self.running:
            return set()
        _, late = await asyncio.wait(list(self.running.values()), timeout=grace_s)
        if late:
            log.warning(
                "recovery: stopping with %d recovery(ies) still running after %gs: cancelled, "
                "left open for the next leader",
                len(late),
                grace_s,
            )
        return late

    async def _end(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.tasks:  # their own cleanup (the fencer's guards) is done before the term ends, bounded
            await asyncio.wait(self.tasks, timeout=5.0)
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
    def spawn(
        self, record: RecoveryRecord, work: Coroutine[Any, Any, RecoveryRecord]
    ) -> asyncio.Task[RecoveryRecord]:
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
                    log.error(
                        "recovery %s: its task ended with %s: %s",
                        record.uid,
                        type(exc).__name__,
                        exc,
                        exc_info=exc,
                    )
                return  # still open (if it is): the sweep resumes it
            result = t.result()
            self.finished.append(result)
            if self.on_closed is not None:
                self.on_closed(result)
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
            await asyncio.sleep(self.sweep_s)
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
        action = admission_action(record.active, record.skip_code, RETRYABLE)
        if action is AdmissionAction.DRIVE:
            self.spawn(record, self.pipeline.drive(record, self.fence))
            await self._forget(key)
            return
        if action is AdmissionAction.DEFER:
            previous = self.deferred.get(key)
            item = self.deferred[key] = Deferred.refused(detection, record, previous)
            if item.news(previous):  # a repeated refusal moves its last time in memory only
                try:
                    await self.control.put_deferred(item)
                except BatonError as exc:
                    log.warning("could not keep deferred detection %s: %s", key, exc)
        else:
            await self._forget(key)
        if refusal_reported(record.reason, quiet_if):
            self.finished.append(record)

    async def _on_detection(self, event: Event, _ctx: Context) -> None:
        if not event.type.startswith("detection."):
            return
        detection = Detection.model_validate(event.data)
        action = detection_action(detection)
        if action is DetectionAction.FORGET:
            await self._forget(Deferred(detection=detection, reason="").key)
        elif action is DetectionAction.ADMIT:  # skippable ones go through, so the refusal is visible
            await self._admit(detection)

    async def retry_deferred(self) -> None:
        async with self._retrying:
            for item in list(self.deferred.values()):
                await self._admit(item.detection, quiet_if=item.reason)

    async def _retry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.retry_s)
            try:
                await self.retry_deferred()
            except LeadershipLost:
                return
            except Exception as exc:  # noqa: BLE001 - the loop must survive a bad moment
                log.warning("retrying deferred detections failed: %s", exc)
