"""Gates: each answers "why not recover this now?" with a reason, or None to let it through.

The pipeline asks every gate in order before registering a recovery; the first reason refuses it, and
the refusal is recorded (a closed `skipped` record, published) with that reason. Issue 6 adds its gates
here without touching the pipeline: cluster filters, downtime, anti-flapping blocks and acks, the
global switch — each one more `Gate` in the list the service passes in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from libs.recovery.audit import Outcome, RecoveryRecord
from libs.recovery.fence import Fence
from libs.topology.codes import Analysis
from libs.topology.detection import Detection

# Codes the master failover handles (orchestrator's checkAndRecoverDeadMaster).
MASTER_FAILOVER_CODES = frozenset({Analysis.DEAD_MASTER, Analysis.DEAD_MASTER_AND_SOME_REPLICAS})


@dataclass(frozen=True)
class GateContext:
    detection: Detection
    record: RecoveryRecord  # the candidate record (not registered yet)
    current: RecoveryRecord | None  # the cluster's latest stored record, if any
    fence: Fence
    now: datetime


Gate = Callable[[GateContext], Awaitable[str | None]]


async def handled_code(ctx: GateContext) -> str | None:
    """Only codes with a recovery in this build (intermediate masters etc. come with issue 6)."""
    f = ctx.detection.finding
    if f.code not in MASTER_FAILOVER_CODES:
        return f"no automated recovery for {f.code.value} (yet)"
    if not f.triggers_recovery:
        why = (
            "downtimed"
            if f.downtimed
            else "its replicas are downtimed"
            if f.replicas_downtimed
            else "skippable"
        )
        return f"{f.code.value} on {f.instance} is not actionable: {why}"
    return None


async def leader(ctx: GateContext) -> str | None:
    if not ctx.fence.held:
        return f"not the recovery leader (epoch {ctx.fence.epoch} is over)"
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
    if current.active:
        return f"recovery {current.uid} of {current.alias} is already running (epoch {current.epoch})"
    if current.incident == ctx.detection.incident and current.outcome is not Outcome.ALREADY_FIXED:
        return (
            f"incident {current.incident} was already handled by recovery {current.uid} ({current.outcome})"
        )
    return None


DEFAULT_GATES: tuple[Gate, ...] = (handled_code, leader, one_per_cluster)
