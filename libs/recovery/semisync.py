"""The semi-sync repair: LockedSemiSyncMaster (and MasterWithTooManySemiSyncReplicas) as an audited recovery.

orchestrator (go/logic/topology_recovery.go `checkAndRecoverLockedSemiSyncMaster`,
`checkAndRecoverMasterWithTooManySemiSyncReplicas`, `recoverSemiSyncReplicas`): with
`EnforceExactSemiSyncReplicas` the replicas are made to match the wait count exactly (enabled and
disabled); else with `RecoverLockedSemiSyncMaster` semi-sync is enabled on enough replicas; with
neither key nothing is done. The recovery is registered (anti-flapping applies), runs no Pre hooks,
enables first and disables second (never fewer semi-sync replicas than before on the way), each
replica's change being `SET GLOBAL rpl_semi_sync_slave_enabled` plus an IO thread restart, and is
resolved with the master as its successor (so PostFailoverProcesses run). Which replicas: the pure
decision in `libs/topology/semisync.py`.

Baton runs it as `RecoveryKind.SEMI_SYNC` through the pipeline (gates — the keys checked by
`policy.py` —, registration, record, events, per-cluster lock, resumption; `Collaborators.kinds`):
`recheck` (fresh probe of the master and its replicas, fresh analysis: still a semi-sync code on the
master? — the plan, in the step's detail) → `semi-sync:<master>` (the plan's actions, each statement
through the fenced execute) → `verify:<master>` (fresh probes until the master has its clients and
nothing is left to do, at most `verify_s`; else the recovery fails) → `post-hooks`
(PostFailoverProcesses; PostUnsuccessfulFailoverProcesses when the actions failed). **Change:**
orchestrator does not look again after acting.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from libs.errors import LeadershipLost
from libs.hooks import HookKind
from libs.models import InstanceKey
from libs.mysql import ConnectionPool, Credentials
from libs.mysql.fenced import FencedSession
from libs.mysql.replication import set_semi_sync
from libs.recovery.audit import Outcome, RecoveryRecord, StepOutcome
from libs.recovery.executor import StepResult
from libs.recovery.fence import Fence
from libs.recovery.pipeline import RECHECK, TRANSIENT, RecoveryAborted, RecoveryPipeline
from libs.topology.semisync import (
    SemiSyncPlan,
    semi_sync_recheck,
    semi_sync_verified,
    semi_sync_view_plan,
)

ACT = "semi-sync"
VERIFY = "verify"


class SemiSyncRepair:
    """`KindSteps` of RecoveryKind.SEMI_SYNC (module docstring); `exact`: EnforceExactSemiSyncReplicas."""

    def __init__(
        self,
        pool: ConnectionPool,
        creds: Credentials,
        statement_timeout_s: float,
        *,
        exact: bool,
        stale_after: timedelta,
        verify_s: float = 10.0,
        poll_s: float = 0.2,
    ) -> None:
        self.pool, self.creds, self.statement_timeout_s = pool, creds, statement_timeout_s
        self.exact, self.stale_after, self.verify_s, self.poll_s = exact, stale_after, verify_s, poll_s
        self._plans: dict[str, SemiSyncPlan] = {}  # per recovery uid; a resumed one plans again

    async def run(self, pipeline: RecoveryPipeline, record: RecoveryRecord, fence: Fence) -> None:
        try:
            await pipeline._step(record, fence, RECHECK, lambda: self._recheck(pipeline, record))
            try:
                await pipeline._step(
                    record,
                    fence,
                    f"{ACT}:{record.failed}",
                    lambda: self._act(pipeline, record, fence),
                    save_begin=True,
                )
                await pipeline._step(
                    record, fence, f"{VERIFY}:{record.failed}", lambda: self._verify(pipeline, record)
                )
            except (LeadershipLost, asyncio.CancelledError):
                raise
            except TRANSIENT:
                raise  # the bus did not answer: the pipeline tries again, this is no failure
            except Exception:
                await pipeline._run_hooks(record, HookKind.POST_UNSUCCESSFUL_FAILOVER)
                raise
        finally:
            self._plans.pop(record.uid, None)
        pipeline._refresh(record)
        await pipeline._post_hooks(record, fence)  # PostFailoverProcesses

    def summary(self, record: RecoveryRecord) -> str:
        step = record.step(f"{ACT}:{record.failed}")
        return step.detail if step is not None and step.detail else f"semi-sync repaired on {record.failed}"

    async def _plan(
        self, pipeline: RecoveryPipeline, record: RecoveryRecord, *, again: bool = False
    ) -> SemiSyncPlan:
        """A fresh look at the master and its replicas, and the plan on it. Not `again`: the re-check
        (already fixed when no semi-sync code is left on the master)."""
        c = pipeline.c
        view = pipeline.fresh_view(record, await c.probe(pipeline.recheck_keys(record)))
        now = c.clock()
        if not again and semi_sync_recheck(c.analyze(view, now), record.failed) is None:
            raise RecoveryAborted(
                Outcome.ALREADY_FIXED,
                f"already fixed: fresh analysis of {record.failed} finds no semi-sync problem",
            )
        return semi_sync_view_plan(view, record.failed, now, self.stale_after, exact=self.exact)

    async def _recheck(self, pipeline: RecoveryPipeline, record: RecoveryRecord) -> StepResult:
        plan = await self._plan(pipeline, record)
        self._plans[record.uid] = plan
        record.successor = record.failed  # orchestrator resolves it with the master as SuccessorKey
        record.participating = sorted({record.failed, *plan.enable, *plan.disable})
        if not plan.ok:
            raise RecoveryAborted(Outcome.FAILED, plan.summary())
        return StepResult(StepOutcome.DONE, detail=plan.summary())

    async def _act(self, pipeline: RecoveryPipeline, record: RecoveryRecord, fence: Fence) -> StepResult:
        plan = self._plans.get(record.uid)
        if plan is None:  # resumed by another leader: look again
            plan = await self._plan(pipeline, record, again=True)
            if not plan.ok:
                raise RecoveryAborted(Outcome.FAILED, plan.summary())
        done: list[str] = []
        # enable first, then disable (orchestrator: never a locked master on the way)
        for key, on in [(k, True) for k in plan.enable] + [(k, False) for k in plan.disable]:
            try:
                detail = await set_semi_sync(self._session(key, fence), master=False, on=on)
            except (LeadershipLost, asyncio.CancelledError):
                raise
            except Exception as exc:  # named in the failure, with what was done before it
                verb = "enable" if on else "disable"
                raise RecoveryAborted(
                    Outcome.FAILED,
                    f"cannot {verb} semi-sync on replica {key}: {exc}"
                    + (f" (done: {'; '.join(done)})" if done else ""),
                ) from exc
            done.append(f"{key}: {detail}")
        return StepResult(StepOutcome.DONE, detail=plan.summary() + " — " + "; ".join(done))

    async def _verify(self, pipeline: RecoveryPipeline, record: RecoveryRecord) -> StepResult:
        deadline = time.monotonic() + self.verify_s
        while True:
            after = await self._plan(pipeline, record, again=True)
            why = semi_sync_verified(after)
            if why is None:
                return StepResult(
                    StepOutcome.DONE,
                    detail=f"{after.clients} semi-sync client(s), waits for {after.wait_count}",
                )
            if time.monotonic() >= deadline:
                raise RecoveryAborted(Outcome.FAILED, f"not repaired after {self.verify_s:.0f}s: {why}")
            await asyncio.sleep(self.poll_s)

    def _session(self, key: InstanceKey, fence: Fence) -> FencedSession:
        return FencedSession(self.pool, key, self.creds, fence, self.statement_timeout_s)
