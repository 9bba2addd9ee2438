"""Which hooks a recovery runs and what they are told (orchestrator's Pre/Post*Processes). Pure: the
pipeline runs them (`Collaborators.hooks`) and records the results.

- `POST_HOOK_KINDS`: per recovery kind, the post hooks in orchestrator's order (a graceful takeover runs
  PostMasterFailover, PostFailover and PostGracefulTakeover; RecoverNonWriteableMaster only
  PostFailover).
- `hooks_successful`: whether the hooks may name a successor — the recovery succeeded, or it is still
  running and past the point where the successor took over (promoted, or an intermediate master's
  replicas relocated).
- `hook_context`: the placeholders and ORC_* variables (`libs/hooks`).
- `hook_failure`: a Pre* hook that failed aborts the recovery, with this sentence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from libs.hooks import HookContext, HookKind, HookResult
from libs.recovery.audit import Outcome, RecoveryKind, RecoveryRecord
from libs.recovery.policy import Policy

POST_HOOK_KINDS: Mapping[RecoveryKind, tuple[HookKind, ...]] = {
    RecoveryKind.MASTER: (HookKind.POST_MASTER_FAILOVER, HookKind.POST_FAILOVER),
    RecoveryKind.INTERMEDIATE_MASTER: (HookKind.POST_INTERMEDIATE_MASTER_FAILOVER, HookKind.POST_FAILOVER),
    RecoveryKind.GRACEFUL_TAKEOVER: (
        HookKind.POST_MASTER_FAILOVER,
        HookKind.POST_FAILOVER,
        HookKind.POST_GRACEFUL_TAKEOVER,
    ),
    RecoveryKind.NON_WRITEABLE_MASTER: (HookKind.POST_FAILOVER,),  # orchestrator's
    RecoveryKind.SEMI_SYNC: (HookKind.POST_FAILOVER,),  # resolved with the master as successor
    RecoveryKind.CO_MASTER: (HookKind.POST_MASTER_FAILOVER, HookKind.POST_FAILOVER),
}


def hooks_successful(record: RecoveryRecord) -> bool:
    relocated = record.kind is RecoveryKind.INTERMEDIATE_MASTER and record.done(
        f"relocate:{record.successor}"
    )
    return record.outcome is Outcome.SUCCEEDED or (
        record.active and (record.promoted_at is not None or relocated)
    )


def hook_context(
    record: RecoveryRecord, policy: Policy, node: str, *, successful: bool = False
) -> HookContext:
    f = record.finding
    successor = record.successor if successful else None
    im = record.kind is RecoveryKind.INTERMEDIATE_MASTER
    co = record.kind is RecoveryKind.CO_MASTER  # orchestrator: IsMaster false, IsCoMaster true
    return HookContext(
        failure_type=record.code,
        instance_type="intermediate-master" if im else "co-master" if co else "master",
        is_master=not (im or co),
        is_co_master=co,
        failure_description=f.reason if f else "",
        command=record.command.removesuffix("-auto"),  # orchestrator has one hint for both
        failed_host=record.failed.host,
        failed_port=record.failed.port,
        failure_cluster=record.cluster,
        failure_cluster_alias=record.alias,
        count_replicas=f.replica_count if f else 0,
        is_downtimed=f.downtimed if f else False,
        auto_master_recovery=policy.auto_master(record.cluster, record.alias),
        auto_intermediate_master_recovery=policy.auto_intermediate(record.cluster, record.alias),
        orchestrator_host=node,
        recovery_uid=record.uid,
        successor_host=successor.host if successor else None,
        successor_port=successor.port if successor else None,
        lost_replicas=tuple(str(k) for k in record.lost_replicas),
        replica_hosts=tuple(str(k) for k in (f.replicas if f else ())),
    )


def hook_failure(results: Sequence[HookResult], what: str) -> str | None:
    """`what hook #N failed (why)` for the first failed hook of `results`; None when all went well."""
    bad = next((r for r in results if not r.ok), None)
    if bad is None:
        return None
    return f"{what} hook #{bad.index} failed ({bad.error or f'exit code {bad.exit_code}'})"
