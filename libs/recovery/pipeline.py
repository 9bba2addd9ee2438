"""The recovery pipeline: detection in, a resolved recovery record out.

    gates → register → re-check (fresh probe + re-analysis) → plan (choose_candidate)
    → PreFailoverProcesses → execute the plan's steps → publish baton_masters
    → PostMasterFailoverProcesses, PostFailoverProcesses → close

Collaborators are passed in (`Collaborators`), so each step can be tested alone and the service only
wires NATS and MySQL to it. The pipeline is the driver — probe, run a step, save, publish —; what each
step decides is a pure function: fresh views (`libs/topology/fresh.py`), the re-check's keys and
verdict (`recheck.py`), the failover plan with a designated candidate (`failover.py`,
`designation.py`), the takeover plan (`takeover.py`), the hooks run and their context
(`libs/recovery/recovery_hooks.py`), the step lists (`steps.py`).

Every step is recorded (begin/end, timings, errors) in the record, which is
saved to the store after each step: a step recorded as done is never run again, by this leader or the
next (`resume`). The record is closed with the outcome and the reason — except when the leadership is
lost: then the record stays open, and the next leader adopts it, marks the step that was in flight as
interrupted, and carries on from there (re-running only that step, which is idempotent or guarded by a
fresh look at MySQL).

Transient bus errors (`TRANSIENT`: the record store, events or baton_masters did not answer) never close
a recovery: the steps not done yet are tried again with a growing pause (`RetryPolicy`). Before
promotion that lasts at most `budget_s`; then the record is left open (`RecoveryPaused`) and the
leader's periodic sweep resumes it. After promotion (the successor may be writable) it goes on for as
long as the lease holds, so the outcome is saved and the master published; if the lease goes, the
record stays open and the next leader's `resume` publishes (steps done are skipped: never a second
promotion). The final save is retried the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar

import nats.errors

from libs.errors import BatonError, BusError, LeadershipLost, StaleEpoch
from libs.hooks import HookContext, HookKind, HookResult
from libs.models import InstanceKey, InstanceSnapshot, utcnow
from libs.models.operator import RecoveryAcknowledged
from libs.recovery.audit import (
    FORCED_FAILOVERS,
    Outcome,
    RecoveryKind,
    RecoveryRecord,
    StepOutcome,
    new_record,
)
from libs.recovery.control import ControlState
from libs.recovery.executor import Executor, StepResult
from libs.recovery.fence import Fence
from libs.recovery.gates import (
    CO_MASTER_FAILOVER_CODES,
    DEFAULT_GATES,
    INTERMEDIATE_MASTER_CODES,
    MASTER_FAILOVER_CODES,
    Gate,
    GateContext,
)
from libs.recovery.masters import MasterPublisher, master_record
from libs.recovery.policy import Policy, block_for
from libs.recovery.record_store import ClusterBusy, RecordStore
from libs.recovery.recovery_events import AckPublisher, EventSink
from libs.recovery.recovery_hooks import POST_HOOK_KINDS, hook_context, hook_failure, hooks_successful
from libs.recovery.steps import (
    ExecutionOptions,
    StepKind,
    StepSpec,
    drain_steps,
    fallback_candidates,
    lost_steps,
    promotion_steps,
    relocation_steps,
    takeover_steps,
)
from libs.topology.analysis import Finding
from libs.topology.comaster import co_master_plan
from libs.topology.detection import Detection
from libs.topology.failover import lost_while_executing, master_plan, moved_back
from libs.topology.fresh import fresh_views, view_holding
from libs.topology.intermediate import relocation_plan, relocation_summary
from libs.topology.plan import CandidateRules, DrainState, Plan
from libs.topology.recheck import Recheck, RecheckVerdict, recheck_keys, recheck_verdict, unreachable_replicas
from libs.topology.takeover import takeover_plan, takeover_summary
from libs.topology.view import ClusterView, InstanceState

log = logging.getLogger(__name__)


def failover_summary(record: RecoveryRecord) -> str:
    """The plan's sentence, plus the replicas lost while carrying it out (they could not follow their new
    source, or would have lost their relay log): a failover that lost replicas says so."""
    assert record.plan is not None
    text = record.plan.summary()
    during = lost_while_executing(record.plan, record.failed, record.lost)
    if during:
        text += "; lost while executing it: " + "; ".join(str(r) for r in during)
    return text


ProbeFn = Callable[[Sequence[InstanceKey]], Awaitable[Mapping[InstanceKey, InstanceSnapshot]]]
KnownFn = Callable[[], Mapping[InstanceKey, InstanceState]]
AnalyzeFn = Callable[[ClusterView, datetime], list[Finding]]
RulesFn = Callable[[], Awaitable[CandidateRules]]
HookRunner = Callable[[HookKind, HookContext], Awaitable[list[HookResult]]]
StepHook = Callable[[str, RecoveryRecord], Awaitable[None]]
RefreshFn = Callable[[Sequence[InstanceKey]], Awaitable[object]]


class KindSteps(Protocol):
    """The steps of a recovery kind built outside the pipeline (`Collaborators.kinds`), e.g.
    libs/recovery/writeable.py. `run` uses the pipeline's `_step` (done steps are skipped on resume)."""

    async def run(self, pipeline: RecoveryPipeline, record: RecoveryRecord, fence: Fence) -> None: ...

    def summary(self, record: RecoveryRecord) -> str: ...


RECHECK, PLAN, PRE_HOOKS, PUBLISH, POST_HOOKS = (
    "recheck",
    "plan",
    "pre-failover-hooks",
    "publish-master",
    "post-hooks",
)
RANK = "rank"  # a dead master's candidates ranked again after the drain (`_failover`)
# Kinds that replace a dead master (plan → drain → rank → promotion → publish): a dead co-master is
# failed over like a dead master, under the rule of libs/topology/comaster.py
FAILOVER_KINDS = (RecoveryKind.MASTER, RecoveryKind.CO_MASTER)


class RecoveryAborted(Exception):
    """Stop the pipeline and close the record with this outcome and reason."""

    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome, self.reason = outcome, reason


class RecoveryPaused(BatonError):
    """Transient errors outlasted the retry budget before promotion: the record stays open (not closed,
    no block) and the leader's sweep resumes it."""


TRANSIENT: tuple[type[BaseException], ...] = (BusError, nats.errors.TimeoutError)
"""Errors worth another try: the bus did not answer, or refused for the moment. LeadershipLost and
StaleEpoch are not: someone newer owns the work."""

# Steps after which the successor may be writable (or the replicas moved): from then on the outcome
# must be saved and the master published, whatever it takes.
_PROMOTING = ("promote:", "switch:", "relocate:")
_PROMOTED = ("promote:", "switch:")  # the steps that make the successor writable (`promoted_at`)
_T = TypeVar("_T")
# The re-check waits this long (from when it asked) for the failed master's own probe: a server
# back from a partition answers within it, while its replicas may still report the broken link for a
# second (the chaos tier's takeover-dc-partition promoted a successor 1.5 s after the old master was
# back and writable: its probe had lost the race). A hung server costs no more than this.
FAILED_PROBE_GRACE_S = 0.2


@dataclass(frozen=True)
class RetryPolicy:
    """Pauses between attempts after a transient error: `first_s`, doubling up to `max_delay_s`. Before
    promotion a recovery gives up after `budget_s` of retrying (left open, resumed by the sweep); after
    promotion it never gives up while the lease holds."""

    first_s: float = 0.05
    max_delay_s: float = 2.0
    budget_s: float = 10.0


class _Backoff:
    def __init__(self, policy: RetryPolicy) -> None:
        self.policy, self.started, self.delay = policy, time.monotonic(), policy.first_s

    @property
    def spent(self) -> float:
        return time.monotonic() - self.started

    def next(self) -> float:
        delay, self.delay = self.delay, min(self.delay * 2, self.policy.max_delay_s)
        return delay


@dataclass
class Collaborators:
    probe: ProbeFn
    analyze: AnalyzeFn
    rules: RulesFn
    executor: Executor
    hooks: HookRunner
    events: EventSink
    store: RecordStore
    masters: MasterPublisher
    options: ExecutionOptions = field(default_factory=ExecutionOptions)
    known: KnownFn = dict
    gates: Sequence[Gate] = DEFAULT_GATES
    clock: Callable[[], datetime] = utcnow
    after_step: StepHook | None = None  # test hook: called after each step is saved
    policy: Policy = field(default_factory=Policy)
    control: ControlState | None = None  # where blocks are written (None: no anti-flapping)
    acknowledged: AckPublisher | None = None  # publishes acknowledgements (graceful takeovers ack themselves)
    # fresh snapshots of the instances a recovery changed (probe-now through the probers), so every
    # reader (API, analyzer) sees the new topology at once instead of at the next poll
    refresh: RefreshFn | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)  # riding out transient bus errors
    kinds: Mapping[RecoveryKind, KindSteps] = field(default_factory=dict)  # kinds with steps of their own
    # the failed instance's probe in the re-check, with short timeouts (a hung server would cost the full
    # ones), never waited for once the others' snapshots are in; None: `probe`, awaited with the others
    probe_failed: ProbeFn | None = None
    # told the moment a successor is writable (the old-master fencer begins watching then, not at the
    # close, which may wait on a JetStream still catching up while the old master is back)
    on_promoted: Callable[[RecoveryRecord], None] | None = None


class RecoveryPipeline:
    def __init__(self, collab: Collaborators, node: str) -> None:
        self.c, self.node = collab, node
        self._refreshing: set[asyncio.Task[None]] = set()
        # re-check probes of failed instances still running after the decision (`_probe_recheck`)
        self._late: set[asyncio.Task[Mapping[InstanceKey, InstanceSnapshot]]] = set()
        # recoveries a coroutine of this pipeline is admitting or driving: the sweep leaves them alone
        self._claims: set[str] = set()
        # per recovery: the failed master's replicas its plan found unreachable (not drained, not probed
        # again: each would cost a connect timeout); in memory only, a new leader simply tries them all
        self._down: dict[str, dict[InstanceKey, InstanceSnapshot]] = {}

    def claimed(self, uid: str) -> bool:
        return uid in self._claims

    # -- entry points --------------------------------------------------------------------------------
    async def handle(self, detection: Detection, fence: Fence, *, command: str = "") -> RecoveryRecord:
        """Gate, register and run a recovery for `detection`. Returns the record (closed, unless the
        leadership was lost mid-way: then LeadershipLost propagates and the record stays open)."""
        record = await self.admit(detection, fence, command=command)
        if not record.active:
            return record
        return await self.drive(record, fence)

    async def admit(
        self,
        detection: Detection,
        fence: Fence,
        *,
        command: str = "",
        record: RecoveryRecord | None = None,
        quiet_if: str | None = None,
    ) -> RecoveryRecord:
        """Gates, then registration: returns the open, registered record, or a closed `skipped` one
        (published with its reason, unless the reason is `quiet_if`: a retried detection refused again
        for the same reason is not news). Fast (a few KV reads and a KV write): the service awaits it
        before acknowledging the detection, and runs `drive` in the background. Manual recoveries pass
        their own prepared `record` (forced, requested_by, designated, ...)."""
        c = self.c
        if record is None:
            record = new_record(detection, epoch=fence.epoch, node=self.node, now=c.clock(), command=command)
        admitting = record

        async def gates() -> str | None:
            current = await c.store.current(admitting.alias)
            return await self._gates(GateContext(detection, admitting, current, fence, c.clock()))

        reason = await self._retry(record, fence, "admission", gates)
        if reason is None:
            self._claims.add(record.uid)  # until drive() ends, or now if the registration fails
            try:
                fence.check()
                # a registration whose reply was lost is found done by the next attempt (same uid)
                await self._retry(record, fence, "registration", lambda: c.store.register(admitting))
            except ClusterBusy as exc:
                reason = str(exc)
                record.skip_code = "busy"
            except BaseException:
                self._claims.discard(record.uid)  # it may have landed: then the sweep drives it
                raise
            if reason is not None:
                self._claims.discard(record.uid)
        if reason is not None:
            record.skip_code = getattr(reason, "code", "") or record.skip_code
            record.blocked_by = getattr(reason, "by", "")
            record.close(Outcome.SKIPPED, str(reason), c.clock())
            if reason != quiet_if:
                log.info("recovery of %s on %s skipped: %s", record.code, record.failed, reason)
                await c.events(record, "skipped")
            return record
        await self._quietly(record, "registered event", lambda: c.events(admitting, "registered"))
        return record

    async def resume(self, record: RecoveryRecord, fence: Fence) -> RecoveryRecord:
        """Carry on with an open record nobody drives: one an older epoch left (adopted: epoch bumped,
        the step in flight marked interrupted), or one of this term whose task ended without closing
        it (its steps left running marked interrupted). Steps done are skipped, so a record past
        promotion only runs what is left of publish-master and the post hooks — never a second
        promotion."""
        self._claims.add(record.uid)
        try:
            now = self.c.clock()
            if record.epoch < fence.epoch:
                interrupted = record.take_over(fence.epoch, self.node, now)
                write = self.c.store.adopt
            elif record.epoch == fence.epoch:
                interrupted = self._interrupt_own(record, now, "its task ended during this step")
                write = self.c.store.save
            else:
                raise LeadershipLost(f"recovery {record.uid} is held by epoch {record.epoch} > {fence.epoch}")
            if record.promoted_at is None:  # promoted, then stopped before the time was saved
                promoted = next(
                    (
                        s
                        for s in record.steps
                        if s.name.startswith(_PROMOTED) and s.outcome is StepOutcome.DONE
                    ),
                    None,
                )
                record.promoted_at = promoted.ended_at if promoted is not None else None
            fence.check()
            await self._retry(record, fence, "adoption", lambda: write(record))
            log.info(
                "recovery %s resumed under epoch %d (interrupted: %s)", record.uid, fence.epoch, interrupted
            )
            await self._quietly(record, "resumed event", lambda: self.c.events(record, "resumed"))
            return await self._drive(record, fence)
        finally:
            self._claims.discard(record.uid)

    async def orphans(self, fence: Fence) -> list[RecoveryRecord]:
        """Open records nobody drives: left by an older epoch, or of this term and claimed by no
        admission or drive of this pipeline (one that ended without closing its record)."""
        records = await self.c.store.open_records()
        return [r for r in records if r.epoch <= fence.epoch and r.uid not in self._claims]

    async def resume_open(self, fence: Fence) -> list[RecoveryRecord]:
        """Finish every recovery nobody drives (what the leader's sweep does, all at once)."""
        records = await self.orphans(fence)
        return list(await asyncio.gather(*(self.resume(r, fence) for r in records)))

    async def _gates(self, ctx: GateContext) -> str | None:
        for gate in self.c.gates:
            reason = await gate(ctx)
            if reason is not None:
                return reason
        return None

    # -- the resumable part --------------------------------------------------------------------------
    async def drive(self, record: RecoveryRecord, fence: Fence) -> RecoveryRecord:
        """Run the steps not done yet, close the record and save it. Returns the closed record.
        LeadershipLost (the lease or the record went to another leader) and RecoveryPaused (transient
        errors before promotion outlasted the retry budget) leave it open for the leader's sweep."""
        self._claims.add(record.uid)
        try:
            return await self._drive(record, fence)
        finally:
            self._claims.discard(record.uid)

    async def _drive(self, record: RecoveryRecord, fence: Fence) -> RecoveryRecord:
        c = self.c
        try:
            await self._retry(record, fence, "step", lambda: self._steps(record, fence))
            self._close(record, Outcome.SUCCEEDED, self._summary(record))
        except (LeadershipLost, asyncio.CancelledError):
            log.warning("recovery %s: leadership lost; the next leader resumes it", record.uid)
            raise
        except RecoveryPaused as paused:
            log.warning("recovery %s: %s", record.uid, paused)
            raise
        except RecoveryAborted as stop:
            self._close(record, stop.outcome, stop.reason)
        except Exception as exc:
            log.exception("recovery %s failed", record.uid)
            self._close(record, Outcome.FAILED, f"{type(exc).__name__}: {exc}")
        if record.outcome in (Outcome.FAILED, Outcome.ABORTED) and record.plan is not None:
            await self._run_hooks(record, HookKind.POST_UNSUCCESSFUL_FAILOVER)
        acknowledged = None
        if record.kind is RecoveryKind.GRACEFUL_TAKEOVER and record.outcome is Outcome.SUCCEEDED:
            by = record.requested_by or self.node
            if record.acknowledge(by, "graceful master takeover acknowledges itself", c.clock()):
                acknowledged = RecoveryAcknowledged(
                    uid=record.uid, by=by, comment=record.acknowledged_comment, at=c.clock()
                )
        if not await self._save_final(record, fence):
            return record  # another leader owns the record: its outcome, block and events are theirs
        await self._block(record)
        phase = "completed" if record.outcome in (Outcome.SUCCEEDED, Outcome.ALREADY_FIXED) else "failed"
        await self._quietly(record, f"{phase} event", lambda: c.events(record, phase))
        if acknowledged is not None and c.acknowledged is not None:
            publish = c.acknowledged
            ack = acknowledged
            await self._quietly(
                record,
                "acknowledgement",
                lambda: publish(record.cluster, str(record.failed), ack, record.epoch),
            )
        log.info("recovery %s of %s: %s: %s", record.uid, record.alias, record.outcome, record.reason)
        return record

    async def _steps(self, record: RecoveryRecord, fence: Fence) -> None:
        """Every step not done yet, in order (`_step` skips those recorded done)."""
        if (own := self.c.kinds.get(record.kind)) is not None:
            await own.run(self, record, fence)
            return
        if record.kind is RecoveryKind.GRACEFUL_TAKEOVER:
            await self._takeover(record, fence)
            return
        view = await self._recheck(record, fence)
        await self._plan(record, fence, view)
        await self._pre_hooks(record, fence)
        await self._execute(record, fence)
        if record.kind in FAILOVER_KINDS:
            await self._publish(record, fence)
        else:
            self._refresh(record)
        await self._post_hooks(record, fence)

    # -- riding out transient errors ---------------------------------------------------------------
    @staticmethod
    def promoted(record: RecoveryRecord) -> bool:
        """Whether the successor may be writable already (a promote/switch/relocate step ran or was
        under way): from then on the outcome must be saved and the master published."""
        if record.promoted_at is not None:
            return True
        return any(
            s.name.startswith(_PROMOTING) and s.outcome is not StepOutcome.FAILED for s in record.steps
        )

    async def _retry(
        self, record: RecoveryRecord, fence: Fence, what: str, attempt: Callable[[], Awaitable[_T]]
    ) -> _T:
        """`attempt()` until it does not fail with a transient error. Before promotion for at most
        `RetryPolicy.budget_s` from the first failure (counted afresh once a step was done since), then
        RecoveryPaused; after promotion for as long as the lease holds (then LeadershipLost)."""
        backoff, progress = None, -1
        while True:
            try:
                return await attempt()
            except TRANSIENT as exc:
                self._interrupt_own(record, self.c.clock(), f"not run: its start could not be saved ({exc})")
                done = sum(1 for s in record.steps if s.outcome in (StepOutcome.DONE, StepOutcome.SKIPPED))
                if backoff is None or done != progress:
                    backoff, progress = _Backoff(self.c.retry), done
                promoted = self.promoted(record)
                if not promoted and backoff.spent >= self.c.retry.budget_s:
                    raise RecoveryPaused(
                        f"{what} failed: {exc} (retried for {backoff.spent:.1f}s before promotion); "
                        "left open, the leader's sweep resumes it"
                    ) from exc
                delay = backoff.next()
                log.warning(
                    "recovery %s: %s failed (%s); trying again in %.2fs%s",
                    record.uid,
                    what,
                    exc,
                    delay,
                    " (after promotion: until it works or the lease is lost)" if promoted else "",
                )
                await asyncio.sleep(delay)
                fence.check()

    def _interrupt_own(self, record: RecoveryRecord, now: datetime, why: str) -> list[str]:
        """Steps of the record's own epoch left running (a start saved, or not, before the step body
        ran; or a task of this term that ended) end as interrupted, so they run again."""
        names = [s.name for s in record.steps if s.outcome is StepOutcome.RUNNING and s.epoch == record.epoch]
        for name in names:
            record.end_step(name, now, StepOutcome.INTERRUPTED, error=why)
        return names

    async def _quietly(
        self, record: RecoveryRecord, what: str, attempt: Callable[[], Awaitable[object]]
    ) -> None:
        """A publication the recovery does not depend on (an event, an acknowledgement): a few tries,
        then a warning."""
        backoff = _Backoff(self.c.retry)
        for left in range(2, -1, -1):
            try:
                await attempt()
                return
            except TRANSIENT as exc:
                if not left:
                    log.warning("recovery %s: %s not published: %s", record.uid, what, exc)
                    return
                await asyncio.sleep(backoff.next())

    async def _save_final(self, record: RecoveryRecord, fence: Fence) -> bool:
        """Save the closed record, trying again after transient errors for as long as the lease holds
        (an unsaved close would leave the cluster busy). False when another leader owns the record;
        LeadershipLost when the lease went before the save landed (the next leader resumes it)."""
        backoff = _Backoff(self.c.retry)
        while True:
            try:
                await self.c.store.save(record)
                return True
            except LeadershipLost as exc:
                log.warning(
                    "recovery %s: closed record not saved, another leader owns it: %s", record.uid, exc
                )
                return False
            except TRANSIENT as exc:
                if not fence.held:
                    raise LeadershipLost(
                        f"recovery {record.uid}: closed record not saved ({exc}) and the lease is lost"
                    ) from exc
                delay = backoff.next()
                log.warning(
                    "recovery %s: saving the closed record failed (%s); trying again in %.2fs",
                    record.uid,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)

    def _summary(self, record: RecoveryRecord) -> str:
        if (own := self.c.kinds.get(record.kind)) is not None:
            return own.summary(record)
        assert record.plan is not None
        if record.kind is RecoveryKind.INTERMEDIATE_MASTER:
            return relocation_summary(record.plan)
        if record.kind is RecoveryKind.GRACEFUL_TAKEOVER:
            return takeover_summary(
                record.plan, record.write_outage_ms, started=record.command.endswith("-auto")
            )
        return failover_summary(record)

    async def _block(self, record: RecoveryRecord) -> None:
        """Anti-flapping: the block this recovery leaves (policy.block_for). Best effort: a block that
        cannot be written is logged (the recovery itself is done)."""
        control = self.c.control
        block = block_for(record, self.c.policy.block_seconds, self.c.clock())
        if control is None or block is None:
            return
        try:
            await control.put_block(block)
        except Exception as exc:  # noqa: BLE001 - logged; the recovery is what matters
            log.warning("recovery %s: could not write its anti-flapping block: %s", record.uid, exc)

    def _close(self, record: RecoveryRecord, outcome: Outcome, reason: str) -> None:
        if record.active:
            record.close(outcome, reason, self.c.clock())

    async def _save(self, record: RecoveryRecord, fence: Fence) -> None:
        """Save the open record (fence checked first). LeadershipLost when another leader owns it; a
        transient error goes to the caller's retry (`_retry`)."""
        fence.check()
        await self.c.store.save(record)

    async def _step(
        self,
        record: RecoveryRecord,
        fence: Fence,
        name: str,
        body: Callable[[], Awaitable[StepResult]],
        *,
        save_begin: bool = False,
    ) -> StepResult | None:
        """Run one named step unless already done; record and save it; None when skipped as done.
        `save_begin` also saves the start, so a step that changes MySQL and is cut short by a leader's
        death shows as interrupted in the audit."""
        if record.done(name):
            return None
        fence.check()
        record.begin_step(name, self.c.clock())
        if save_begin:
            await self._save(record, fence)
        try:
            result = await body()
        except (LeadershipLost, asyncio.CancelledError):
            raise
        except RecoveryAborted as stop:
            if stop.outcome is Outcome.ALREADY_FIXED:
                record.end_step(name, self.c.clock(), StepOutcome.DONE, detail=stop.reason)
            else:
                record.end_step(name, self.c.clock(), StepOutcome.FAILED, error=stop.reason)
            await self._save(record, fence)
            raise
        except Exception as exc:
            record.end_step(name, self.c.clock(), StepOutcome.FAILED, error=f"{type(exc).__name__}: {exc}")
            await self._save(record, fence)
            raise
        step = record.end_step(
            name,
            self.c.clock(),
            result.outcome,
            detail=result.detail,
            error=result.error,
            errors=result.errors,
        )
        for key, why in result.lost.items():
            record.mark_lost(key, why)
        if result.outage_ms is not None:
            record.write_outage_ms = result.outage_ms
        await self._save(record, fence)
        await self.c.events(record, "step", step)
        if self.c.after_step is not None:
            await self.c.after_step(name, record)
        return result

    # -- steps -----------------------------------------------------------------------------------------
    def fresh_view(
        self, record: RecoveryRecord, fresh: Mapping[InstanceKey, InstanceSnapshot]
    ) -> ClusterView:
        """The failed instance's cluster over the `fresh` snapshots and what is known of the failed
        instance (`libs/topology/fresh.fresh_views`)."""
        view = view_holding(fresh_views(self.c.known(), fresh, only=[record.failed]), record.failed)
        if view is None:
            raise RecoveryAborted(Outcome.FAILED, f"{record.failed} is in no cluster view")
        return view

    def recheck_keys(self, record: RecoveryRecord) -> list[InstanceKey]:
        """The failed instance and its replicas; for an intermediate master also its master and
        siblings (where its replicas may go): `libs/topology/recheck.recheck_keys`."""
        siblings = record.kind not in FAILOVER_KINDS
        return recheck_keys(self.c.known(), record.failed, record.finding, siblings=siblings)

    async def _probe_recheck(self, record: RecoveryRecord) -> dict[InstanceKey, InstanceSnapshot]:
        """Fresh snapshots of `recheck_keys`. With `probe_failed`, the failed instance is probed
        alongside the others (short timeouts) but not waited for once their snapshots are in: a hung
        server answers nothing until its timeouts, and the verdict rests on its replicas' evidence (a
        master that answers again shows there: its replicas receive from it). Its last known state,
        what the detection was decided on, stands in; the late probe ends in the background."""
        keys = self.recheck_keys(record)
        others = [k for k in keys if k != record.failed]
        if self.c.probe_failed is None or not others:
            return dict(await (self.c.probe_failed or self.c.probe)(keys))
        probe_failed = self.c.probe_failed

        async def probe_it() -> Mapping[InstanceKey, InstanceSnapshot]:
            return await probe_failed([record.failed])

        loop = asyncio.get_running_loop()
        asked = loop.time()
        failed = asyncio.create_task(probe_it(), name=f"re-check probe of {record.failed}")
        self._late.add(failed)
        failed.add_done_callback(self._late.discard)
        try:
            fresh = dict(await self.c.probe(others))
            # a server that is back answers within the grace from when it was asked; a hung one costs
            # no more than that (the others' probes ran meanwhile)
            grace = FAILED_PROBE_GRACE_S - (loop.time() - asked)
            if not failed.done() and grace > 0:
                await asyncio.wait({failed}, timeout=grace)
        except BaseException:
            failed.cancel()
            raise
        if failed.done() and not failed.cancelled() and failed.exception() is None:
            fresh.update(failed.result())
        else:
            log.info("recovery %s: re-check decided without %s's late probe", record.uid, record.failed)
        return fresh

    async def _recheck(self, record: RecoveryRecord, fence: Fence) -> ClusterView | None:
        """Re-probe the failed master and its replicas, re-analyse: is it still broken? Returns the
        fresh view (None when the re-check was done by an earlier leader)."""
        view: list[ClusterView] = []

        async def body() -> StepResult:
            current = self.fresh_view(record, await self._probe_recheck(record))
            view.append(current)
            codes = {
                RecoveryKind.MASTER: MASTER_FAILOVER_CODES,
                RecoveryKind.CO_MASTER: CO_MASTER_FAILOVER_CODES,
            }.get(record.kind, INTERMEDIATE_MASTER_CODES)
            verdict = recheck_verdict(
                self.c.analyze(current, self.c.clock()),
                record.failed,
                codes,
                forced=record.forced,
                force_failover=record.command in FORCED_FAILOVERS,
            )
            return self.apply_recheck(record, verdict)

        await self._step(record, fence, RECHECK, body)
        return view[0] if view else None

    @staticmethod
    def apply_recheck(record: RecoveryRecord, verdict: RecheckVerdict) -> StepResult:
        """The re-check step's result: already fixed closes the recovery (RecoveryAborted); proceeding
        carries on with the fresh finding (its code may have changed)."""
        if verdict.outcome is Recheck.ALREADY_FIXED:
            raise RecoveryAborted(Outcome.ALREADY_FIXED, verdict.text)
        if verdict.finding is not None:
            record.finding = verdict.finding
            record.code = verdict.finding.code.value
        return StepResult(StepOutcome.DONE, detail=verdict.text)

    async def _plan(self, record: RecoveryRecord, fence: Fence, fresh: ClusterView | None) -> None:
        async def body() -> StepResult:
            view = fresh
            if view is None:  # resumed after the re-check: look again (read-only)
                view = self.fresh_view(record, await self._probe_recheck(record))
            rules = await self.c.rules()
            now = self.c.clock()
            if record.kind is RecoveryKind.INTERMEDIATE_MASTER:
                plan = relocation_plan(view, record.failed, rules, now)
                text = relocation_summary(plan)
            else:
                plan = self._master_plan(record, view, rules, now)
                text = plan.summary()
            record.set_plan(plan)
            if not plan.ok:
                raise RecoveryAborted(Outcome.ABORTED, text)
            if record.kind in FAILOVER_KINDS:
                self._down[record.uid] = unreachable_replicas(view, record.failed)
            return StepResult(StepOutcome.DONE, detail=text)

        if await self._step(record, fence, PLAN, body) is not None:
            await self.c.events(record, "planned")

    def _master_plan(
        self,
        record: RecoveryRecord,
        view: ClusterView,
        rules: CandidateRules,
        now: datetime,
        *,
        drain: DrainState = DrainState.PENDING,
        previous: Plan | None = None,
        failed: Mapping[InstanceKey, str] | None = None,
    ) -> Plan:
        """`libs/topology/failover.master_plan` for the record (its designated candidate, if any); for a
        dead co-master `libs/topology/comaster.co_master_plan` (CoMasterRecoveryMustPromoteOtherCoMaster)."""
        if record.kind is RecoveryKind.CO_MASTER:
            return co_master_plan(
                view,
                record.failed,
                rules,
                now,
                must_promote_other_co_master=self.c.policy.co_master_must_promote_other,
                designated=record.designated,
                drain=drain,
                previous=previous,
                failed_candidates=failed,
            )
        return master_plan(
            view,
            record.failed,
            rules,
            now,
            designated=record.designated,
            drain=drain,
            previous=previous,
            failed_candidates=failed,
        )

    async def _run_hooks(self, record: RecoveryRecord, kind: HookKind) -> list[HookResult]:
        if record.skip_hooks:  # recover-lite
            return []
        context = hook_context(record, self.c.policy, self.node, successful=hooks_successful(record))
        results = await self.c.hooks(kind, context)
        record.hooks.extend(results)
        return results

    async def _pre_hooks(self, record: RecoveryRecord, fence: Fence) -> None:
        async def body() -> StepResult:
            results = await self._run_hooks(record, HookKind.PRE_FAILOVER)
            if (why := hook_failure(results, "PreFailoverProcesses")) is not None:
                raise RecoveryAborted(Outcome.ABORTED, f"{why}: recovery not attempted")
            return StepResult(StepOutcome.DONE, detail=f"{len(results)} hook(s) ok")

        await self._step(record, fence, PRE_HOOKS, body)

    async def _execute(self, record: RecoveryRecord, fence: Fence) -> None:
        assert record.plan is not None
        if record.kind is RecoveryKind.INTERMEDIATE_MASTER:
            await self._run_specs(record, fence, relocation_steps(record.plan))
        elif record.kind is RecoveryKind.GRACEFUL_TAKEOVER:
            specs = takeover_steps(record.plan, start_old_master=record.command.endswith("-auto"))
            await self._run_specs(record, fence, specs)
        else:
            await self._failover(record, fence)

    async def _run_specs(
        self, record: RecoveryRecord, fence: Fence, specs: Sequence[StepSpec], *, fallback: bool = False
    ) -> tuple[StepSpec, dict[InstanceKey, str]] | None:
        """Run `specs` in order (those recorded done are skipped). With `fallback`, a required step that
        failed on a candidate before the point of no return (`fallback_candidates`) ends the run and is
        returned with the candidates to replace; any other failure of a required step fails the
        recovery."""
        for spec in specs:

            async def body(spec: StepSpec = spec) -> StepResult:
                return await self.c.executor.run(spec, record, fence)

            result = await self._step(record, fence, spec.name, body, save_begin=spec.mutating)
            if result is None:
                continue
            if result.outcome is StepOutcome.FAILED and not spec.best_effort:
                if fallback and record.plan is not None:
                    started = {s.name for s in record.steps}
                    replace = fallback_candidates(
                        record.plan, spec, result.failed, started, reversible=result.reversible
                    )
                    if replace:
                        return spec, replace
                raise RecoveryAborted(Outcome.FAILED, f"step {spec.name} failed: {result.error}")
            if spec.kind in (StepKind.PROMOTE, StepKind.SWITCH):
                step = record.step(spec.name)
                record.promoted_at = step.ended_at if step else self.c.clock()
                if self.c.on_promoted is not None:
                    self.c.on_promoted(record)
                await self._save(record, fence)
        return None

    async def _failover(self, record: RecoveryRecord, fence: Fence) -> None:
        """A dead master's failover (steps.py): drain (IO threads stopped, relay logs applied) → rank
        again on what each replica holds now → promotion, falling back to the next candidate when one
        fails before the point of no return → the lost instances (planned, and those that could not
        follow their new source). Every part is rebuilt from the record, so a resumed recovery skips
        what is done and carries on with the plan in force."""
        assert record.plan is not None
        forced = record.command in FORCED_FAILOVERS
        down = self._down.get(record.uid, {})
        try:
            await self._run_specs(record, fence, drain_steps(record.plan, fence_failed=forced, skip=down))
            await self._rank(record, fence)
            while True:
                assert record.plan is not None
                failure = await self._run_specs(record, fence, promotion_steps(record.plan), fallback=True)
                if failure is None:
                    break
                await self._fallback(record, fence, *failure)
        finally:
            self._down.pop(record.uid, None)
        await self._run_specs(record, fence, lost_steps(record.failed, record.lost_replicas, self.c.options))

    async def _look_again(self, record: RecoveryRecord) -> ClusterView:
        """A fresh probe of the failed master's replicas for ranking (not of the failed master, nor of the
        replicas the plan found unreachable: their last probes stand in, unless something newer is known)."""
        down = self._down.get(record.uid, {})
        keys = [k for k in self.recheck_keys(record) if k != record.failed and k not in down]
        fresh = dict(down)
        fresh.update(await self.c.probe(keys))
        return self.fresh_view(record, fresh)

    async def _rank(self, record: RecoveryRecord, fence: Fence) -> None:
        """After the drain: a fresh look at every replica, and the candidates ranked again on what each
        holds now (`DrainState.DONE`: relay logs still unapplied could not be applied in time, and the
        plan says so in `undrained`)."""

        async def body() -> StepResult:
            assert record.plan is not None
            before = record.plan
            view = await self._look_again(record)
            plan = self._master_plan(
                record, view, await self.c.rules(), self.c.clock(), drain=DrainState.DONE
            )
            record.set_plan(plan)
            if not plan.ok:
                raise RecoveryAborted(Outcome.FAILED, plan.summary())
            same = (plan.successor, plan.intermediate) == (before.successor, before.intermediate)
            return StepResult(StepOutcome.DONE, detail=plan.summary() + ("" if same else " (changed)"))

        if await self._step(record, fence, RANK, body) is not None:
            await self.c.events(record, "planned")

    async def _fallback(
        self, record: RecoveryRecord, fence: Fence, spec: StepSpec, failed: Mapping[InstanceKey, str]
    ) -> None:
        """Candidates of the plan in force failed in `spec` before the point of no return: plan again
        without them (`fallback_plan`, on a fresh look) and carry on with the next one. Step
        `fallback:<candidates>` (each candidate fails once at most: it is never chosen again); the
        attempts and their reasons accumulate in `Plan.tried`. Replicas this recovery already moved under
        an intermediate that did not fail count as replicas of the failed master again (they hold what
        it held). No plan left: the recovery fails with both reasons."""
        name = "fallback:" + ",".join(str(k) for k in sorted(failed))
        why = "; ".join(f"{k} failed in {spec.name}: {v}" for k, v in sorted(failed.items()))

        async def body() -> StepResult:
            previous = record.plan
            assert previous is not None
            moved = self._moved(record, previous, failed)
            view = moved_back(await self._look_again(record), moved, record.failed)
            rules = await self.c.rules()
            now = self.c.clock()
            plan = self._master_plan(
                record, view, rules, now, drain=DrainState.DONE, previous=previous, failed=failed
            )
            during = lost_while_executing(previous, record.failed, record.lost)
            record.set_plan(plan)
            kept = {plan.successor, plan.intermediate, *plan.replicas_to_repoint}
            for lost in during:
                if lost.key not in kept:
                    record.mark_lost(lost.key, lost.reason)
            if not plan.ok:
                raise RecoveryAborted(Outcome.FAILED, f"{why}; no other candidate: {plan.reason}")
            return StepResult(StepOutcome.DONE, detail=f"{why}; next: {plan.summary()}")

        log.warning("recovery %s: %s; falling back", record.uid, why)
        if await self._step(record, fence, name, body) is not None:
            await self.c.events(record, "planned")

    def _moved(
        self, record: RecoveryRecord, plan: Plan, failed: Mapping[InstanceKey, str]
    ) -> dict[InstanceKey, InstanceKey]:
        """Replicas `plan`'s repoint steps (begun in this recovery) moved under a source that did not
        fail: {replica: source}."""
        moved: dict[InstanceKey, InstanceKey] = {}
        for spec in promotion_steps(plan):
            if spec.kind is StepKind.REPOINT and spec.source not in failed and record.step(spec.name):
                assert spec.source is not None
                moved.update({k: spec.source for k in spec.targets if k not in failed})
        return moved

    async def _publish(self, record: RecoveryRecord, fence: Fence) -> None:
        assert record.successor is not None

        async def body() -> StepResult:
            assert record.successor is not None
            fence.check()
            value = master_record(record.cluster, record.alias, record.successor, fence.epoch, record.uid)
            try:
                await self.c.masters(value)  # epoch-fenced and idempotent: a resumed recovery repeats it
            except StaleEpoch as exc:
                raise LeadershipLost(f"a newer leader published the master of {record.alias}: {exc}") from exc
            record.published_at = self.c.clock()
            self._refresh(record)
            return StepResult(
                StepOutcome.DONE, detail=f"{record.alias} -> {record.successor} (epoch {fence.epoch})"
            )

        await self._step(record, fence, PUBLISH, body)

    def _refresh(self, record: RecoveryRecord) -> None:
        """Ask for fresh probes of every instance the recovery touched, in the background: the change
        is visible to the API and the analyzer within milliseconds, whatever the poll interval. Best
        effort (the next poll shows it anyway) and never delays the recovery."""
        refresh = self.c.refresh
        if refresh is None:
            return
        keys = [record.failed, *record.participating]
        if record.successor is not None:
            keys.append(record.successor)
        if record.plan is not None:
            keys.extend(record.plan.replicas_to_repoint)
        wanted = list(dict.fromkeys(keys))

        async def run() -> None:
            try:
                await refresh(wanted)
            except Exception as exc:  # noqa: BLE001 - best effort: the next poll shows the change
                log.info("recovery %s: refresh of %d instances failed: %s", record.uid, len(wanted), exc)

        task = asyncio.create_task(run(), name=f"refresh after {record.uid}")
        self._refreshing.add(task)
        task.add_done_callback(self._refreshing.discard)

    async def _post_hooks(self, record: RecoveryRecord, fence: Fence) -> None:
        kinds = POST_HOOK_KINDS[record.kind]

        async def body() -> StepResult:
            results: list[HookResult] = []
            for kind in kinds:
                results += await self._run_hooks(record, kind)
            bad = [r for r in results if not r.ok]
            return StepResult(
                StepOutcome.DONE,
                detail=f"{len(results)} hook(s), {len(bad)} failed (post hooks never fail a recovery)",
                errors={f"{r.kind}#{r.index}": r.error or f"exit code {r.exit_code}" for r in bad},
            )

        await self._step(record, fence, POST_HOOKS, body)

    # -- graceful takeover -------------------------------------------------------------------------
    async def _takeover(self, record: RecoveryRecord, fence: Fence) -> None:
        """plan (fresh look; the target is fixed by the command) → PreGracefulTakeoverProcesses → the
        takeover steps (catch up, switch, repoint, demote) → publish → post hooks."""

        async def plan_body() -> StepResult:
            keys = sorted({record.failed, *self._cluster_keys(record)})
            view = self.fresh_view(record, await self.c.probe(keys))
            rules = await self.c.rules()
            plan = takeover_plan(
                view,
                record.designated,
                auto=record.designated is None,
                rules=rules,
                now=self.c.clock(),
                max_lag_s=self.c.options.takeover_wait_s,
            )
            record.set_plan(plan)
            record.lost = []  # the old master is handed over, not lost
            if not plan.ok:
                raise RecoveryAborted(Outcome.ABORTED, f"graceful takeover refused: {plan.reason}")
            return StepResult(
                StepOutcome.DONE, detail=f"{plan.successor} takes over from {plan.failed_master}"
            )

        if await self._step(record, fence, PLAN, plan_body) is not None:
            await self.c.events(record, "planned")

        async def hooks_body() -> StepResult:
            results = await self._run_hooks(record, HookKind.PRE_GRACEFUL_TAKEOVER)
            if (why := hook_failure(results, "PreGracefulTakeoverProcesses")) is not None:
                raise RecoveryAborted(Outcome.ABORTED, f"{why}: not attempted")
            return StepResult(StepOutcome.DONE, detail=f"{len(results)} hook(s) ok")

        await self._step(record, fence, "pre-graceful-takeover-hooks", hooks_body)
        await self._execute(record, fence)
        await self._publish(record, fence)
        await self._post_hooks(record, fence)

    def _cluster_keys(self, record: RecoveryRecord) -> list[InstanceKey]:
        """Every known instance of the record's cluster (a takeover looks at all of them)."""
        view = view_holding(fresh_views(self.c.known()), record.failed)
        return [s.key for s in view.instances] if view is not None else [record.failed]
