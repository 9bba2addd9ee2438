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
from datetime import datetime, timedelta

from libs.errors import LeadershipLost
from libs.hooks import HookContext, HookKind, HookResult, failed
from libs.models import InstanceKey, InstanceSnapshot, PromotionRule, utcnow
from libs.models.commands import RecoveryAcknowledged
from libs.recovery.audit import (
    FORCE_MASTER_FAILOVER,
    Outcome,
    RecoveryKind,
    RecoveryRecord,
    StepOutcome,
    new_record,
)
from libs.recovery.control import ControlState
from libs.recovery.events import AckPublisher, EventSink
from libs.recovery.executor import Executor, StepResult
from libs.recovery.fence import Fence
from libs.recovery.gates import (
    DEFAULT_GATES,
    INTERMEDIATE_MASTER_CODES,
    MASTER_FAILOVER_CODES,
    Gate,
    GateContext,
)
from libs.recovery.masters import MasterPublisher, master_record
from libs.recovery.policy import Policy, block_for
from libs.recovery.steps import ExecutionOptions, StepKind, plan_steps, relocation_steps, takeover_steps
from libs.recovery.store import ClusterBusy, RecordStore
from libs.recovery.takeover import takeover_plan, takeover_summary
from libs.topology.analysis import Finding
from libs.topology.candidate import choose_candidate
from libs.topology.detection import Detection
from libs.topology.intermediate import relocation_plan, relocation_summary
from libs.topology.plan import CandidateRules, Plan, RegisteredRule
from libs.topology.view import ClusterView, InstanceState, fold, group_clusters

log = logging.getLogger(__name__)

DESIGNATED_RULE_TTL = timedelta(days=366)  # at least a calendar year, whatever the date


def designated_rule_expiry(now: datetime) -> datetime:
    """When the rules a designated candidate registers for its plan expire. Plain timedelta arithmetic:
    `now.replace(year=now.year + 1)` raised on 29 February."""
    return now + DESIGNATED_RULE_TTL


ProbeFn = Callable[[Sequence[InstanceKey]], Awaitable[Mapping[InstanceKey, InstanceSnapshot]]]
KnownFn = Callable[[], Mapping[InstanceKey, InstanceState]]
AnalyzeFn = Callable[[ClusterView, datetime], list[Finding]]
RulesFn = Callable[[], Awaitable[CandidateRules]]
HookRunner = Callable[[HookKind, HookContext], Awaitable[list[HookResult]]]
StepHook = Callable[[str, RecoveryRecord], Awaitable[None]]
RefreshFn = Callable[[Sequence[InstanceKey]], Awaitable[object]]

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
    policy: Policy = field(default_factory=Policy)
    control: ControlState | None = None  # where blocks are written (None: no anti-flapping)
    acknowledged: AckPublisher | None = None  # publishes acknowledgements (graceful takeovers ack themselves)
    # fresh snapshots of the instances a recovery changed (probe-now through the probers), so every
    # reader (API, analyzer) sees the new topology at once instead of at the next poll
    refresh: RefreshFn | None = None


class RecoveryPipeline:
    def __init__(self, collab: Collaborators, node: str) -> None:
        self.c, self.node = collab, node
        self._refreshing: set[asyncio.Task[None]] = set()

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
        current = await c.store.current(record.alias)
        reason = await self._gates(GateContext(detection, record, current, fence, c.clock()))
        if reason is None:
            try:
                fence.check()
                await c.store.register(record)
            except ClusterBusy as exc:
                reason = str(exc)
                record.skip_code = "busy"
        if reason is not None:
            record.skip_code = getattr(reason, "code", "") or record.skip_code
            record.blocked_by = getattr(reason, "by", "")
            record.close(Outcome.SKIPPED, str(reason), c.clock())
            if reason != quiet_if:
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
            if record.kind is RecoveryKind.GRACEFUL_TAKEOVER:
                await self._takeover(record, fence)
            else:
                view = await self._recheck(record, fence)
                await self._plan(record, fence, view)
                await self._pre_hooks(record, fence)
                await self._execute(record, fence)
                if record.kind is RecoveryKind.MASTER:
                    await self._publish(record, fence)
                else:
                    self._refresh(record)
                await self._post_hooks(record, fence)
            self._close(record, Outcome.SUCCEEDED, self._summary(record))
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
        acknowledged = None
        if record.kind is RecoveryKind.GRACEFUL_TAKEOVER and record.outcome is Outcome.SUCCEEDED:
            by = record.requested_by or self.node
            if record.acknowledge(by, "graceful master takeover acknowledges itself", c.clock()):
                acknowledged = RecoveryAcknowledged(
                    uid=record.uid, by=by, comment=record.acknowledged_comment, at=c.clock()
                )
        await self._save(record, fence, final=True)
        await self._block(record)
        phase = "completed" if record.outcome in (Outcome.SUCCEEDED, Outcome.ALREADY_FIXED) else "failed"
        await c.events(record, phase)
        if acknowledged is not None and c.acknowledged is not None:
            await c.acknowledged(record.cluster, str(record.failed), acknowledged, record.epoch)
        log.info("recovery %s of %s: %s: %s", record.uid, record.alias, record.outcome, record.reason)
        return record

    def _summary(self, record: RecoveryRecord) -> str:
        assert record.plan is not None
        if record.kind is RecoveryKind.INTERMEDIATE_MASTER:
            return relocation_summary(record.plan)
        if record.kind is RecoveryKind.GRACEFUL_TAKEOVER:
            return takeover_summary(
                record.plan, record.write_outage_ms, started=record.command.endswith("-auto")
            )
        return record.plan.summary()

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
        if result.outage_ms is not None:
            record.write_outage_ms = result.outage_ms
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
        """The failed instance and its replicas; for an intermediate master also its master and
        siblings (where its replicas may go)."""
        known = self.c.known()
        keys = {record.failed}
        if record.finding is not None:
            keys.update(record.finding.replicas)
        keys.update(k for k, s in known.items() if s.master_key == record.failed)
        if record.kind is not RecoveryKind.MASTER:
            state = known.get(record.failed)
            master = (record.finding.master if record.finding else None) or (
                state.master_key if state else None
            )
            if master is not None:
                keys.add(master)
                keys.update(k for k, s in known.items() if s.master_key == master)
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
            if record.command == FORCE_MASTER_FAILOVER:
                says = ", ".join(f.code.value for f in mine) or "no problem"
                return StepResult(StepOutcome.DONE, detail=f"forced failover (fresh analysis: {says})")
            codes = MASTER_FAILOVER_CODES if record.kind is RecoveryKind.MASTER else INTERMEDIATE_MASTER_CODES
            still = next(
                (
                    f
                    for f in mine
                    if f.code in codes and (f.actionable if record.forced else f.triggers_recovery)
                ),
                None,
            )
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
            return StepResult(StepOutcome.DONE, detail=text)

        if await self._step(record, fence, PLAN, body) is not None:
            await self.c.events(record, "planned")

    @staticmethod
    def _master_plan(record: RecoveryRecord, view: ClusterView, rules: CandidateRules, now: datetime) -> Plan:
        """choose_candidate; with a designated candidate (recover with a destination) every other
        replica is registered must_not for this choice (it may still serve as a two-step intermediate)
        and the designated one must, so the operator's choice wins or the plan says why it cannot."""
        wanted = record.designated
        if wanted is None:
            return choose_candidate(view, record.failed, rules, now)
        replicas = {s.key for s in view.replicas_of(record.failed)}
        if wanted not in replicas:
            return Plan(
                failed_master=record.failed,
                cluster=view.name,
                ok=False,
                reason=f"designated {wanted} is not a replica of {record.failed}",
            )
        until = designated_rule_expiry(now)
        registered = dict(rules.registered)
        registered.update(
            {k: RegisteredRule(rule=PromotionRule.MUST_NOT, expires_at=until) for k in replicas}
        )
        registered[wanted] = RegisteredRule(rule=PromotionRule.MUST, expires_at=until)
        plan = choose_candidate(view, record.failed, rules.model_copy(update={"registered": registered}), now)
        if plan.ok and plan.successor == wanted:
            return plan
        why = plan.passed_over_reason(wanted) or plan.reason
        return Plan(
            failed_master=record.failed,
            cluster=view.name,
            ok=False,
            reason=f"designated {wanted} cannot be promoted: {why}",
            passed_over=plan.passed_over,
        )

    def hook_context(self, record: RecoveryRecord, *, successful: bool = False) -> HookContext:
        f = record.finding
        successor = record.successor if successful else None
        im = record.kind is RecoveryKind.INTERMEDIATE_MASTER
        return HookContext(
            failure_type=record.code,
            instance_type="intermediate-master" if im else "master",
            is_master=not im,
            failure_description=f.reason if f else "",
            command=record.command.removesuffix("-auto"),  # orchestrator has one hint for both
            failed_host=record.failed.host,
            failed_port=record.failed.port,
            failure_cluster=record.cluster,
            failure_cluster_alias=record.alias,
            count_replicas=f.replica_count if f else 0,
            is_downtimed=f.downtimed if f else False,
            auto_master_recovery=self.c.policy.auto_master(record.cluster, record.alias),
            auto_intermediate_master_recovery=self.c.policy.auto_intermediate(record.cluster, record.alias),
            orchestrator_host=self.node,
            recovery_uid=record.uid,
            successor_host=successor.host if successor else None,
            successor_port=successor.port if successor else None,
            lost_replicas=tuple(str(k) for k in record.lost_replicas),
            replica_hosts=tuple(str(k) for k in (f.replicas if f else ())),
        )

    async def _run_hooks(self, record: RecoveryRecord, kind: HookKind) -> list[HookResult]:
        if record.skip_hooks:  # recover-lite
            return []
        relocated = record.kind is RecoveryKind.INTERMEDIATE_MASTER and record.done(
            f"relocate:{record.successor}"
        )
        successful = record.outcome is Outcome.SUCCEEDED or (
            record.active and (record.promoted_at is not None or relocated)
        )
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
        if record.kind is RecoveryKind.INTERMEDIATE_MASTER:
            specs = relocation_steps(record.plan)
        elif record.kind is RecoveryKind.GRACEFUL_TAKEOVER:
            specs = takeover_steps(record.plan, start_old_master=record.command.endswith("-auto"))
        else:
            specs = plan_steps(
                record.plan, self.c.options, fence_failed=record.command == FORCE_MASTER_FAILOVER
            )
        for spec in specs:

            async def body(spec=spec) -> StepResult:  # type: ignore[no-untyped-def]
                return await self.c.executor.run(spec, record, fence)

            result = await self._step(record, fence, spec.name, body, save_begin=spec.mutating)
            if result is None:
                continue
            if result.outcome is StepOutcome.FAILED and not spec.best_effort:
                raise RecoveryAborted(Outcome.FAILED, f"step {spec.name} failed: {result.error}")
            if spec.kind in (StepKind.PROMOTE, StepKind.SWITCH):
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
        kinds = {
            RecoveryKind.MASTER: (HookKind.POST_MASTER_FAILOVER, HookKind.POST_FAILOVER),
            RecoveryKind.INTERMEDIATE_MASTER: (
                HookKind.POST_INTERMEDIATE_MASTER_FAILOVER,
                HookKind.POST_FAILOVER,
            ),
            RecoveryKind.GRACEFUL_TAKEOVER: (
                HookKind.POST_MASTER_FAILOVER,
                HookKind.POST_FAILOVER,
                HookKind.POST_GRACEFUL_TAKEOVER,
            ),
        }[record.kind]

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
            view = self._view(record, await self.c.probe(keys))
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
            if failed(results):
                bad = next(r for r in results if not r.ok)
                why = bad.error or f"exit code {bad.exit_code}"
                raise RecoveryAborted(
                    Outcome.ABORTED,
                    f"PreGracefulTakeoverProcesses hook #{bad.index} failed ({why}): not attempted",
                )
            return StepResult(StepOutcome.DONE, detail=f"{len(results)} hook(s) ok")

        await self._step(record, fence, "pre-graceful-takeover-hooks", hooks_body)
        await self._execute(record, fence)
        await self._publish(record, fence)
        await self._post_hooks(record, fence)

    def _cluster_keys(self, record: RecoveryRecord) -> list[InstanceKey]:
        """Every known instance of the record's cluster (a takeover looks at all of them)."""
        views = group_clusters(self.c.known().values())
        for view in views:
            if view.get(record.failed) is not None:
                return [s.key for s in view.instances]
        return [record.failed]
