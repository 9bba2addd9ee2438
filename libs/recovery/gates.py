"""Gates: each answers "why not recover this now?" with a reason, or None to let it through.

The pipeline asks every gate in order before registering a recovery; the first reason refuses it, and
the refusal is recorded (a closed `skipped` record, published) with that reason. Issue 6 adds its gates
here without touching the pipeline; the ones that read the operator's state in KV (global switch,
cluster filters, ignored hosts, downtime, anti-flapping blocks) are built in `policy.py`. A manual
(forced) recovery passes those, as orchestrator's forced recoveries do, but never the leader and
one-recovery-per-cluster gates.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from libs.recovery.audit import INTERMEDIATE_MASTER_CODES as _IM_NAMES
from libs.recovery.audit import OPERATION_COMMAND, Outcome, RecoveryKind, RecoveryRecord
from libs.recovery.audit import SEMI_SYNC_CODES as _SEMI_SYNC_NAMES
from libs.recovery.fence import Fence
from libs.topology.codes import Analysis
from libs.topology.deferral import stale_detection
from libs.topology.detection import Detection

# Codes the master failover handles (orchestrator's checkAndRecoverDeadMaster).
MASTER_FAILOVER_CODES = frozenset({Analysis.DEAD_MASTER, Analysis.DEAD_MASTER_AND_SOME_REPLICAS})
# Codes the intermediate-master recovery handles (orchestrator's checkAndRecoverDeadIntermediateMaster).
INTERMEDIATE_MASTER_CODES = frozenset(Analysis(name) for name in _IM_NAMES)
# RecoverNonWriteableMaster: a read-only master made writable (libs/recovery/writeable.py).
NON_WRITEABLE_MASTER_CODES = frozenset({Analysis.NO_WRITEABLE_MASTER})
# A dead co-master (orchestrator's checkAndRecoverDeadCoMaster, libs/topology/comaster.py).
CO_MASTER_FAILOVER_CODES = frozenset({Analysis.DEAD_CO_MASTER, Analysis.DEAD_CO_MASTER_AND_SOME_REPLICAS})
# RecoverLockedSemiSyncMaster / EnforceExactSemiSyncReplicas: semi-sync replicas enabled or disabled
# (libs/recovery/semisync.py).
SEMI_SYNC_CODES = frozenset(Analysis(name) for name in _SEMI_SYNC_NAMES)
HANDLED_CODES = (
    MASTER_FAILOVER_CODES
    | INTERMEDIATE_MASTER_CODES
    | NON_WRITEABLE_MASTER_CODES
    | CO_MASTER_FAILOVER_CODES
    | SEMI_SYNC_CODES
)


class Refusal(str):
    """A gate's reason with a short machine-readable `code` (filtered, blocked, downtimed, ...), kept in
    the skipped record's `skip_code`, and `by`: the uid of the recovery behind the refusal (`blocked`:
    the one whose anti-flapping block refused it), kept in `blocked_by`. Plain strings are refusals too
    (code "")."""

    code: str
    by: str

    def __new__(cls, code: str, text: str, by: str = "") -> Refusal:
        refusal = super().__new__(cls, text)
        refusal.code, refusal.by = code, by
        return refusal


# Refusals that may stop applying while the problem lasts: the service retries those detections.
# "operation": a refactoring holds the cluster's lock for a few seconds; the failover waits for it.
RETRYABLE = frozenset({"blocked", "downtimed", "disabled", "operation"})


@dataclass(frozen=True)
class GateContext:
    detection: Detection
    record: RecoveryRecord  # the candidate record (not registered yet)
    current: RecoveryRecord | None  # the cluster's latest stored record, if any
    fence: Fence
    now: datetime

    @property
    def forced(self) -> bool:
        """A manual recovery: the operator's word overrides the switch, filters, downtime and blocks."""
        return self.record.forced


Gate = Callable[[GateContext], Awaitable[str | None]]


async def handled_code(ctx: GateContext) -> str | None:
    """Only codes with a recovery: dead masters, dead co-masters, dead intermediate masters and, with
    RecoverNonWriteableMaster, read-only masters; with RecoverLockedSemiSyncMaster or
    EnforceExactSemiSyncReplicas, semi-sync masters short of (or over) their semi-sync replicas
    (orchestrator's group-replication recovery is not built; UnreachableCoMaster and
    AllCoMasterReplicasNotReplicating have none in orchestrator either)."""
    f = ctx.detection.finding
    if f.code not in HANDLED_CODES:
        return Refusal("unhandled", f"no automated recovery for {f.code.value}")
    if ctx.forced:
        return None if f.actionable else Refusal("unhandled", f"{f.code.value} is not actionable")
    if not f.triggers_recovery:
        why = (
            "downtimed"
            if f.downtimed
            else "its replicas are downtimed"
            if f.replicas_downtimed
            else "skippable"
        )
        return Refusal("downtimed", f"{f.code.value} on {f.instance} is not actionable: {why}")
    return None


async def leader(ctx: GateContext) -> str | None:
    if not ctx.fence.held:
        return Refusal("not-leader", f"not the recovery leader (epoch {ctx.fence.epoch} is over)")
    return None


async def one_per_cluster(ctx: GateContext) -> str | None:
    """At most one recovery per cluster; a detection of an incident already handled is not re-run.

    An open record is refused whoever holds it: a record of an older leader is resumed by the new one
    at election (`RecoveryPipeline.resume_open`), not raced. That resumption is how the old leader's
    record of the same incident never blocks the failover.
    """
    current = ctx.current
    if current is None:
        return None
    if current.active and current.kind is RecoveryKind.OPERATION:
        return Refusal(
            "operation",
            f"{current.command.removeprefix(OPERATION_COMMAND)} on {current.failed} (operation "
            f"{current.uid}) holds the lock of {current.alias}; retried when it ends",
        )
    if current.active:
        return Refusal(
            "busy", f"recovery {current.uid} of {current.alias} is already running (epoch {current.epoch})"
        )
    if current.incident == ctx.detection.incident and current.outcome is not Outcome.ALREADY_FIXED:
        return Refusal(
            "handled",
            f"incident {current.incident} was already handled by recovery {current.uid} ({current.outcome})",
        )
    return None


async def fresh_detection(ctx: GateContext) -> str | None:
    """A detection replayed from long ago (first start of the durable consumer) is not acted upon
    (`libs/topology/deferral.stale_detection`)."""
    return stale_detection(ctx.detection, ctx.now)


DEFAULT_GATES: tuple[Gate, ...] = (handled_code, leader, one_per_cluster)
