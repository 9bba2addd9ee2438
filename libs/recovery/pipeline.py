"""The recovery pipeline: detection in, a resolved recovery record out.

    gates → register → re-check (fresh probe + re-analysis) → plan (choose_candidate)
    → PreFailoverProcesses → execute the plan's steps → publish baton_masters
    → PostMasterFailoverProcesses, PostFailoverProcesses → close

Collaborators are passed in (`Collaborators`), so each step can be tested alone and the service only
wires NATS and MySQL to it. Every step is recorded (begin/end, timings, errors) in the record, which is
saved to the store after each step: a step recorded as done is never run again, by this leader or the
next (`resume`). The record is closed in `finally` with the outcome and the reason — except when the
leadership is lost: then the record stays open, and the next leader adopts it, marks the step that was
in flight as interrupted, and carries on from there (re-running only that step, which is idempotent or
guarded by a fresh look at MySQL).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from libs.errors import LeadershipLost
from libs.hooks import HookContext, HookKind, HookResult, failed
from libs.models import InstanceKey, InstanceSnapshot, utcnow
from libs.recovery.audit import Outcome, RecoveryRecord, StepOutcome, new_record
from libs.recovery.events import EventSink
from libs.recovery.executor import Executor, StepResult
from libs.recovery.fence import Fence
from libs.recovery.gates import DEFAULT_GATES, MASTER_FAILOVER_CODES, Gate, GateContext
from libs.recovery.masters import MasterPublisher, master_record
from libs.recovery.steps import ExecutionOptions, StepKind, plan_steps
from libs.recovery.store import ClusterBusy, RecordStore
from libs.topology.analysis import Finding
from libs.topology.candidate import choose_candidate
from libs.topology.detection import Detection
from libs.topology.plan import CandidateRules
from libs.topology.view import ClusterView, InstanceState, fold, group_clusters

log = logging.getLogger(__name__)

ProbeFn = Callable[[Sequence[InstanceKey]], Awaitable[Mapping[InstanceKey, InstanceSnapshot]]]
KnownFn = Callable[[], Mapping[InstanceKey, InstanceState]]
AnalyzeFn = Callable[[ClusterView, datetime], list[Finding]]
RulesFn = Callable[[], Awaitable[CandidateRules]]
HookRunner = Callable[[HookKind, HookContext], Awaitable[list[HookResult]]]
StepHook = Callable[[str, RecoveryRecord], Awaitable[None]]

RECHECK, PLAN, PRE_HOOKS, PUBLISH, POST_HOOKS = (
    "recheck",
    "plan",
    "pre-failover-hooks",
    "publish-master",
    "post-hooks",
)


class RecoveryAborted(Exception):
    """Stop the pipeline and close the record with this outcome and reason."""

    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome, self.reason = outcome, reason


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


class RecoveryPipeline:
    def __init__(self, collab: Collaborators, node: str) -> None:
        self.c, self.node = collab, node

    # -- entry points --------------------------------------------------------------------------------
    async def handle(self, detection: Detection, fence: Fence, *, command: str = "") -> RecoveryRecord:
        """Gate, register and run a recovery for `detection`. Returns the record (closed, unless the
        leadership was lost mid-way: then LeadershipLost propagates and the record stays open)."""
        record = await self.admit(detection, fence, command=command)
        if not record.active:
            return record
        return await self.drive(record, fence)

    async def admit(self, detection: Detection, fence: Fence, *, command: str = "") -> RecoveryRecord:
        """Gates, then registration: returns the open, registered record, or a closed `skipped` one
        (published with its reason). Fast (a KV read and a KV write): the service awaits it before
        acknowledging the detection, and runs `drive` in the background."""
        c = self.c
        record = new_record(detection, epoch=fence.epoch, node=self.node, now=c.clock(), command=command)
        current = await c.store.current(record.alias)
        reason = await self._gates(GateContext(detection, record, current, fence, c.clock()))
        if reason is None:
            try:
                fence.check()
                await c.store.register(record)
            except ClusterBusy as exc:
                reason = str(exc)
        if reason is not None:
            record.close(Outcome.SKIPPED, reason, c.clock())
            log.info("recovery of %s on %s skipped: %s", record.code, record.failed, reason)
            await c.events(record, "skipped")
            return record
        await c.events(record, "registered")
        return record

    async def resume(self, record: RecoveryRecord, fence: Fence) -> RecoveryRecord:
        """Adopt an open record left by an older epoch and finish it."""
        interrupted = record.take_over(fence.epoch, self.node, self.c.clock())
        fence.check()
        await self.c.store.adopt(record)
        log.info("recovery %s resumed under epoch %d (interrupted: %s)", record.uid, fence.epoch, interrupted)
        await self.c.events(record, "resumed")
        return await self.drive(record, fence)

    async def resume_open(self, fence: Fence) -> list[RecoveryRecord]:
        """What a new leader does first: finish every recovery older epochs left open."""
        records = [r for r in await self.c.store.open_records() if r.epoch < fence.epoch]
        return list(await asyncio.gather(*(self.resume(r, fence) for r in records)))

    async def _gates(self, ctx: GateContext) -> str | None:
        for gate in self.c.gates:
            reason = await gate(ctx)
            if reason is not None:
                return reason
        return None

    # -- the resumable part --------------------------------------------------------------------------
    async def drive(self, record: RecoveryRecord, fence: Fence) -> RecoveryRecord:
        c = self.c
        try:
            view = await self._recheck(record, fence)
            await self._plan(record, fence, view)
            await self._pre_hooks(record, fence)
            await self._execute(record, fence)
            await self._publish(record, fence)
            await self._post_hooks(record, fence)
            assert record.plan is not None
            self._close(record, Outcome.SUCCEEDED, record.plan.summary())
        except (LeadershipLost, asyncio.CancelledError):
            log.warning("recovery %s: leadership lost; the next leader resumes it", record.uid)
            raise
        except RecoveryAborted as stop:
            self._close(record, stop.outcome, stop.reason)
        except Exception as exc:
            log.exception("recovery %s failed", record.uid)
            self._close(record, Outcome.FAILED, f"{type(exc).__name__}: {exc}")
        if record.outcome in (Outcome.FAILED, Outcome.ABORTED) and record.plan is not None:
            await self._run_hooks(record, HookKind.POST_UNSUCCESSFUL_FAILOVER)
        await self._save(record, fence, final=True)
        phase = "completed" if record.outcome in (Outcome.SUCCEEDED, Outcome.ALREADY_FIXED) else "failed"
        await c.events(record, phase)
        log.info("recovery %s of %s: %s: %s", record.uid, record.alias, record.outcome, record.reason)
        return record

    def _close(self, record: RecoveryRecord, outcome: Outcome, reason: str) -> None:
        if record.active:
            record.close(outcome, reason, self.c.clock())

    async def _save(self, record: RecoveryRecord, fence: Fence, *, final: bool = False) -> None:
        if not final:
            fence.check()
        try:
            await self.c.store.save(record)
        except LeadershipLost:
            if not final:
                raise
            log.warning("recovery %s: closed record not saved: another leader owns it", record.uid)

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
        await self._save(record, fence)
        await self.c.events(record, "step", step)
        if self.c.after_step is not None:
            await self.c.after_step(name, record)
        return result

    # -- steps -----------------------------------------------------------------------------------------
    def _view(self, record: RecoveryRecord, fresh: Mapping[InstanceKey, InstanceSnapshot]) -> ClusterView:
        known = self.c.known()
        states: dict[InstanceKey, InstanceState] = {}
        for key in {*fresh, record.failed}:
            state = known.get(key)
            if key in fresh:
                state = fold(state, fresh[key])
            if state is not None:
                states[key] = state
        for view in group_clusters(states.values()):
            if view.get(record.failed) is not None:
                return view
        raise RecoveryAborted(Outcome.FAILED, f"{record.failed} is in no cluster view")

    def _recheck_keys(self, record: RecoveryRecord) -> list[InstanceKey]:
        keys = {record.failed}
        if record.finding is not None:
            keys.update(record.finding.replicas)
        keys.update(k for k, s in self.c.known().items() if s.master_key == record.failed)
        return sorted(keys)

    async def _recheck(self, record: RecoveryRecord, fence: Fence) -> ClusterView | None:
        """Re-probe the failed master and its replicas, re-analyse: is it still broken? Returns the
        fresh view (None when the re-check was done by an earlier leader)."""
        view: list[ClusterView] = []

        async def body() -> StepResult:
            fresh = await self.c.probe(self._recheck_keys(record))
            current = self._view(record, fresh)
            view.append(current)
            findings = self.c.analyze(current, self.c.clock())
            mine = [f for f in findings if f.instance == record.failed]
            still = next((f for f in mine if f.code in MASTER_FAILOVER_CODES and f.triggers_recovery), None)
            if still is None:
                now_says = ", ".join(f.code.value for f in mine) or "no problem"
                raise RecoveryAborted(
                    Outcome.ALREADY_FIXED,
                    f"already fixed: fresh analysis of {record.failed} finds {now_says}",
                )
            record.finding = still
            record.code = still.code.value
            return StepResult(StepOutcome.DONE, detail=f"still {still.code.value}: {still.reason}")

        await self._step(record, fence, RECHECK, body)
        return view[0] if view else None

    async def _plan(self, record: RecoveryRecord, fence: Fence, fresh: ClusterView | None) -> None:
        async def body() -> StepResult:
            view = fresh
            if view is None:  # resumed after the re-check: look again (read-only)
                view = self._view(record, await self.c.probe(self._recheck_keys(record)))
            rules = await self.c.rules()
            plan = choose_candidate(view, record.failed, rules, self.c.clock())
            record.set_plan(plan)
            if not plan.ok:
                raise RecoveryAborted(Outcome.ABORTED, plan.summary())
            return StepResult(StepOutcome.DONE, detail=plan.summary())

        if await self._step(record, fence, PLAN, body) is not None:
            await self.c.events(record, "planned")

    def hook_context(self, record: RecoveryRecord, *, successful: bool = False) -> HookContext:
        f = record.finding
        successor = record.successor if successful else None
        return HookContext(
            failure_type=record.code,
            instance_type="master",
            is_master=True,
            failure_description=f.reason if f else "",
            command=record.command,
            failed_host=record.failed.host,
            failed_port=record.failed.port,
            failure_cluster=record.cluster,
            failure_cluster_alias=record.alias,
            count_replicas=f.replica_count if f else 0,
            is_downtimed=f.downtimed if f else False,
            auto_master_recovery=not record.command,
            orchestrator_host=self.node,
            recovery_uid=record.uid,
            successor_host=successor.host if successor else None,
            successor_port=successor.port if successor else None,
            lost_replicas=tuple(str(k) for k in record.lost_replicas),
            replica_hosts=tuple(str(k) for k in (f.replicas if f else ())),
        )

    async def _run_hooks(self, record: RecoveryRecord, kind: HookKind) -> list[HookResult]:
        successful = record.outcome is Outcome.SUCCEEDED or (record.active and record.promoted_at is not None)
        results = await self.c.hooks(kind, self.hook_context(record, successful=successful))
        record.hooks.extend(results)
        return results

    async def _pre_hooks(self, record: RecoveryRecord, fence: Fence) -> None:
        async def body() -> StepResult:
            results = await self._run_hooks(record, HookKind.PRE_FAILOVER)
            if failed(results):
                bad = next(r for r in results if not r.ok)
                why = bad.error or f"exit code {bad.exit_code}"
                raise RecoveryAborted(
                    Outcome.ABORTED,
                    f"PreFailoverProcesses hook #{bad.index} failed ({why}): recovery not attempted",
                )
            return StepResult(StepOutcome.DONE, detail=f"{len(results)} hook(s) ok")

        await self._step(record, fence, PRE_HOOKS, body)

    async def _execute(self, record: RecoveryRecord, fence: Fence) -> None:
        assert record.plan is not None
        for spec in plan_steps(record.plan, self.c.options):

            async def body(spec=spec) -> StepResult:  # type: ignore[no-untyped-def]
                return await self.c.executor.run(spec, record, fence)

            result = await self._step(record, fence, spec.name, body, save_begin=spec.mutating)
            if result is None:
                continue
            if result.outcome is StepOutcome.FAILED and not spec.best_effort:
                raise RecoveryAborted(Outcome.FAILED, f"step {spec.name} failed: {result.error}")
            if spec.kind is StepKind.PROMOTE:
                step = record.step(spec.name)
                record.promoted_at = step.ended_at if step else self.c.clock()
                await self._save(record, fence)

    async def _publish(self, record: RecoveryRecord, fence: Fence) -> None:
        assert record.successor is not None

        async def body() -> StepResult:
            assert record.successor is not None
            fence.check()
            value = master_record(record.cluster, record.alias, record.successor, fence.epoch, record.uid)
            await self.c.masters(value)
            record.published_at = self.c.clock()
            return StepResult(
                StepOutcome.DONE, detail=f"{record.alias} -> {record.successor} (epoch {fence.epoch})"
            )

        await self._step(record, fence, PUBLISH, body)

    async def _post_hooks(self, record: RecoveryRecord, fence: Fence) -> None:
        async def body() -> StepResult:
            results = await self._run_hooks(record, HookKind.POST_MASTER_FAILOVER)
            results += await self._run_hooks(record, HookKind.POST_FAILOVER)
            bad = [r for r in results if not r.ok]
            return StepResult(
                StepOutcome.DONE,
                detail=f"{len(results)} hook(s), {len(bad)} failed (post hooks never fail a recovery)",
                errors={f"{r.kind}#{r.index}": r.error or f"exit code {r.exit_code}" for r in bad},
            )

        await self._step(record, fence, POST_HOOKS, body)
