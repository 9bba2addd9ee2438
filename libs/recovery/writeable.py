"""RecoverNonWriteableMaster: a master found read-only is made writable, as an audited recovery.

orchestrator (go/inst/analysis_dao.go, go/logic/topology_recovery.go): with `RecoverNonWriteableMaster`
on, a master whose last check is valid, that is read-only and has at least one valid replicating replica
gets the primary analysis `NoWriteableMasterStructureWarning` ("Master with replicas is read_only",
after the semi-sync codes, before MasterSingleReplicaNotReplicating); with the key off it is only a
structure warning. `checkAndRecoverNonWriteableMaster` does nothing unless the key is on, registers the
recovery (anti-flapping applies), runs PreFailoverProcesses (a failure aborts), `SetReadOnly(false)`,
and resolves the recovery with the master as its successor; PostFailoverProcesses follow on success,
PostUnsuccessfulFailoverProcesses when `SetReadOnly` failed. Cluster filters do not apply to it.

Baton runs it as `RecoveryKind.NON_WRITEABLE_MASTER` through the pipeline (gates, registration, record,
events, resumption; `Collaborators.kinds`), with these steps:
`recheck` (fresh probe and analysis: still NoWriteableMaster? — and never a failed master the leader
keeps read-only, `baton_fences`: making it writable would be the split brain the fence prevents) →
`pre-failover-hooks` → `set-writable:<master>` (read_only=0, and super_read_only=0 on MySQL, through the
fenced execute) → `post-hooks` (PostFailoverProcesses). The configuration key is checked by the policy
gate (`policy.py`), also for a forced `recover`, as orchestrator does.
"""

from __future__ import annotations

import asyncio

from libs.errors import LeadershipLost
from libs.hooks import HookKind
from libs.mysql import ConnectionPool, Credentials
from libs.mysql.fenced import FencedSession
from libs.mysql.replication import set_read_only
from libs.recovery.audit import Outcome, RecoveryRecord, StepOutcome
from libs.recovery.executor import StepResult
from libs.recovery.fence import Fence
from libs.recovery.fence_watch import FenceStore
from libs.recovery.pipeline import RECHECK, RecoveryAborted, RecoveryPipeline
from libs.topology.codes import Analysis
from libs.topology.recheck import Recheck, recheck_verdict

SET_WRITABLE = "set-writable"


class NonWriteableMaster:
    """`KindSteps` of RecoveryKind.NON_WRITEABLE_MASTER (see the module docstring)."""

    def __init__(
        self,
        pool: ConnectionPool,
        creds: Credentials,
        statement_timeout_s: float,
        *,
        fences: FenceStore | None = None,
    ) -> None:
        self.pool, self.creds, self.statement_timeout_s, self.fences = (
            pool,
            creds,
            statement_timeout_s,
            fences,
        )

    async def run(self, pipeline: RecoveryPipeline, record: RecoveryRecord, fence: Fence) -> None:
        await pipeline._step(record, fence, RECHECK, lambda: self._recheck(pipeline, record))
        await pipeline._pre_hooks(record, fence)
        try:
            await pipeline._step(
                record,
                fence,
                f"{SET_WRITABLE}:{record.failed}",
                lambda: self._set_writable(pipeline, record, fence),
                save_begin=True,
            )
        except (LeadershipLost, asyncio.CancelledError):
            raise
        except Exception:
            await pipeline._run_hooks(record, HookKind.POST_UNSUCCESSFUL_FAILOVER)
            raise
        pipeline._refresh(record)
        await pipeline._post_hooks(record, fence)  # PostFailoverProcesses

    def summary(self, record: RecoveryRecord) -> str:
        f = record.finding
        counts = f" ({f.replicating_replicas}/{f.replica_count} replicas replicating)" if f else ""
        return f"made read-only master {record.failed} of {record.alias} writable{counts}"

    async def _recheck(self, pipeline: RecoveryPipeline, record: RecoveryRecord) -> StepResult:
        c = pipeline.c
        view = pipeline.fresh_view(record, await c.probe(pipeline.recheck_keys(record)))
        verdict = recheck_verdict(
            c.analyze(view, c.clock()), record.failed, {Analysis.NO_WRITEABLE_MASTER}, forced=record.forced
        )
        if verdict.outcome is Recheck.ALREADY_FIXED:
            raise RecoveryAborted(Outcome.ALREADY_FIXED, verdict.text)
        still = verdict.finding
        assert still is not None
        if self.fences is not None:
            watch = await self.fences.get(record.failed)
            if watch is not None and watch.active:
                raise RecoveryAborted(
                    Outcome.ABORTED,
                    f"{record.failed} is a failed master kept read-only since recovery {watch.uid} "
                    f"({watch.started_at.isoformat()}): not made writable; end its fence watch first "
                    "(ack-recoveries naming that recovery or this instance)",
                )
        record.finding = still
        record.code = still.code.value
        record.participating = sorted({record.failed, *still.replicas})
        return StepResult(StepOutcome.DONE, detail=f"still {still.code.value}: {still.reason}")

    async def _set_writable(
        self, pipeline: RecoveryPipeline, record: RecoveryRecord, fence: Fence
    ) -> StepResult:
        key = record.failed
        session = FencedSession(self.pool, key, self.creds, fence, self.statement_timeout_s)
        await set_read_only(session, False)  # MySQL: super_read_only=0 first
        record.successor = key  # orchestrator resolves it with the master as SuccessorKey
        record.promoted_at = pipeline.c.clock()
        mysql = not (await session.dialect()).is_mariadb
        return StepResult(StepOutcome.DONE, detail="read_only=0" + (", super_read_only=0" if mysql else ""))
