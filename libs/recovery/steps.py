"""The MySQL steps that carry out a `Plan`, decided purely from the plan and the options.

Each step has a stable, unique `name` (it is how a resumed recovery knows what is already done) and is
idempotent or guarded by a fresh look at its targets, so re-running a step whose leader died after the
statement but before recording it is harmless.

A dead master's failover runs in three parts (the pipeline ranks the replicas again between the first
two, and falls back to the next candidate when one fails before the point of no return):
  drain:      [read-only M] → stop-io [every replica] → drain [every replica]
              (IO threads stopped, SQL threads given InstanceBulkOperationsWaitTimeoutSeconds to apply
              what they received; then the pipeline re-probes and ranks with `DrainState.DONE`)
  promotion:  one step (successor S, replicas R):
                wait-applied S → repoint R under S → promote S
              two steps (intermediate I, successor S):
                wait-applied I → repoint S and R under I → wait-caught-up S with I
                → stop-replication S → repoint R and I under S → promote S
              then, with PostponeReplicaRecoveryOnLagMinutes, the replicas delayed more than that
              (`plan.postponed`): repoint-postponed under S (after the promotion, not after the hooks)
  lost:       downtime-lost [M + every replica lost so far] → detach-lost [lost replicas]
              (built once the promotion is over, from the record: replicas that could not follow
              their new source during execution are lost too)
The intermediate is never made writable; it ends as a replica of S (or lost, if it cannot follow S).
The failed master is never repointed: its fencing happens when it comes back (see `old_master.py`);
a forced failover (`fence_failed`) first sets it read-only, in case it is alive.
Dead intermediate master (`relocation_steps`): relocate its replicas under the new source (a sibling or
the master), each after the source has caught up with it.

**Point of no return** (`fallback_candidates`): a candidate (successor or intermediate) that fails may
be replaced by the next one (`fallback_plan`) as long as no replica was moved under it and it was not
made writable; after that the recovery fails as before.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from libs.models import InstanceKey
from libs.topology.plan import Plan


class StepKind(StrEnum):
    STOP_IO = "stop-io"  # STOP SLAVE IO_THREAD: nobody listens to the old master any more
    DRAIN = "drain"  # every replica's SQL thread applies what it received (bounded), before ranking
    WAIT_APPLIED = "wait-applied"  # the data holder applies its relay log (its SQL_Delay lifted)
    REPOINT = "repoint"  # STOP SLAVE; CHANGE MASTER TO source (GTID); START SLAVE, in parallel
    WAIT_CAUGHT_UP = "wait-caught-up"  # the successor has everything the intermediate has
    STOP_REPLICATION = "stop-replication"  # STOP SLAVE (the successor stops following the intermediate)
    PROMOTE = "promote"  # STOP SLAVE; RESET SLAVE ALL; read_only=0 (or detach: MASTER_HOST='//host')
    DOWNTIME_LOST = "downtime-lost"  # baton_downtime, reason lost-in-recovery
    DETACH_LOST = "detach-lost"  # STOP SLAVE on lost replicas, best effort
    SET_READ_ONLY = "read-only"  # force-master-failover: the old master, if reachable, stops taking writes
    RELOCATE = "relocate"  # dead intermediate master: wait for the new source to cover, then repoint
    SWITCH = "switch"  # graceful: old master read_only, target catches up, target promoted (the outage)
    DEMOTE = "demote"  # graceful: the old master replicates from the new one


MUTATING = frozenset(
    {
        StepKind.STOP_IO,
        StepKind.REPOINT,
        StepKind.STOP_REPLICATION,
        StepKind.PROMOTE,
        StepKind.DETACH_LOST,
        StepKind.SET_READ_ONLY,
        StepKind.RELOCATE,
        StepKind.SWITCH,
        StepKind.DEMOTE,
    }
)


class StepSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    kind: StepKind
    targets: tuple[InstanceKey, ...] = ()
    source: InstanceKey | None = None  # REPOINT: new master; WAIT_CAUGHT_UP: whom to catch up with
    best_effort: bool = False  # failures are recorded but do not fail the recovery
    required: tuple[InstanceKey, ...] = ()  # targets whose failure fails the recovery
    start_replication: bool = True  # DEMOTE: START SLAVE after CHANGE MASTER (-auto takeovers)

    @property
    def mutating(self) -> bool:
        return self.kind in MUTATING


class ExecutionOptions(BaseModel):
    """What the executor needs from the configuration (orchestrator's keys, see `options.py`)."""

    model_config = ConfigDict(frozen=True)

    apply_promotion: bool = True  # ApplyMySQLPromotionAfterMasterFailover
    detach_master_host: bool = False  # MasterFailoverDetachReplicaMasterHost: promoted one's MASTER_HOST=//h
    detach_lost: bool = True  # DetachLostReplicasAfterMasterFailover
    lost_downtime_minutes: float = 0  # MasterFailoverLostInstancesDowntimeMinutes (0: none)
    super_read_only: bool = False  # UseSuperReadOnly (MySQL only)
    apply_timeout_s: float = 10.0  # InstanceBulkOperationsWaitTimeoutSeconds: drain, and the data holder
    follow_timeout_s: float = 10.0  # InstanceBulkOperationsWaitTimeoutSeconds: a repointed replica streams
    delay_promotion: bool = False  # DelayMasterPromotionIfSQLThreadNotUpToDate: wait, however long
    delay_stall_s: float = 10.0  # ... but fail when the SQL thread makes no progress this long
    delay_max_s: float = 24 * 3600.0  # orchestrator's overall cap for the delayed promotion
    catch_up_timeout_s: float = 60.0  # two-step: the successor catching up with the intermediate
    repoint_concurrency: int = 5  # MaxConcurrentReplicaOperations
    takeover_wait_s: float = 20.0  # ReasonableMaintenanceReplicationLagSeconds: graceful catch-up limit
    statement_timeout_s: float = 1.5  # each MySQL statement's limit: BatonRecoveryStatementTimeoutSeconds,
    # else half the lease TTL (options.statement_timeout), always below it


def _keys(*groups: tuple[InstanceKey, ...] | list[InstanceKey]) -> tuple[InstanceKey, ...]:
    seen: dict[InstanceKey, None] = {}
    for group in groups:
        for key in group:
            seen.setdefault(key, None)
    return tuple(seen)


def _replicas(plan: Plan) -> tuple[InstanceKey, ...]:
    """Every replica of the failed master the plan knows of (chosen, kept, lost or passed over)."""
    keys = [plan.successor, plan.intermediate, *plan.replicas_to_repoint]
    keys += [r.key for r in (*plan.lost, *plan.passed_over)]
    return tuple(sorted({k for k in keys if k is not None and k != plan.failed_master}))


def drain_steps(
    plan: Plan, *, fence_failed: bool = False, skip: Collection[InstanceKey] = ()
) -> list[StepSpec]:
    """Before the candidates are ranked for good: every replica's IO thread is stopped and its SQL
    thread given its time to apply what it received (best effort: the ranking that follows looks at
    each replica afresh). `skip`: replicas found unreachable (each would only cost a connect timeout).
    `fence_failed` (force-master-failover: the master may well be alive) first sets the failed master
    read-only, best effort. Empty when the plan is not ok."""
    if not plan.ok or plan.successor is None:
        return []
    steps: list[StepSpec] = []
    if fence_failed:
        steps.append(
            StepSpec(
                name=f"read-only:{plan.failed_master}",
                kind=StepKind.SET_READ_ONLY,
                targets=(plan.failed_master,),
                best_effort=True,
            )
        )
    replicas = tuple(k for k in _replicas(plan) if k not in skip)
    steps += [
        StepSpec(name="stop-io", kind=StepKind.STOP_IO, targets=replicas, best_effort=True),
        StepSpec(name="drain", kind=StepKind.DRAIN, targets=replicas, best_effort=True),
    ]
    return steps


def promotion_steps(plan: Plan) -> list[StepSpec]:
    """From the drained replicas to a writable successor (see the module docstring). Empty when the plan
    is not ok."""
    if not plan.ok or plan.successor is None:
        return []
    s, mid = plan.successor, plan.intermediate
    later = tuple(k for k in plan.postponed if k not in (s, mid))
    others = tuple(k for k in plan.replicas_to_repoint if k not in (s, mid, *later))
    steps: list[StepSpec] = []
    if mid is None:
        steps.append(
            StepSpec(name=f"wait-applied:{s}", kind=StepKind.WAIT_APPLIED, targets=(s,), required=(s,))
        )
        if others:
            steps.append(StepSpec(name=f"repoint:{s}", kind=StepKind.REPOINT, targets=others, source=s))
    else:
        follows = mid in plan.replicas_to_repoint
        steps += [
            StepSpec(name=f"wait-applied:{mid}", kind=StepKind.WAIT_APPLIED, targets=(mid,), required=(mid,)),
            StepSpec(
                name=f"repoint:{mid}",
                kind=StepKind.REPOINT,
                targets=_keys([s], others),
                source=mid,
                required=(s,),
            ),
            StepSpec(
                name=f"wait-caught-up:{s}",
                kind=StepKind.WAIT_CAUGHT_UP,
                targets=(s,),
                source=mid,
                required=(s,),
            ),
            StepSpec(
                name=f"stop-replication:{s}", kind=StepKind.STOP_REPLICATION, targets=(s,), required=(s,)
            ),
        ]
        under = _keys(others, [mid] if follows else [])
        if under:
            steps.append(StepSpec(name=f"repoint:{s}", kind=StepKind.REPOINT, targets=under, source=s))
    steps.append(StepSpec(name=f"promote:{s}", kind=StepKind.PROMOTE, targets=(s,), required=(s,)))
    if later:  # PostponeReplicaRecoveryOnLagMinutes: the delayed replicas do not hold the promotion back
        steps.append(StepSpec(name=f"repoint-postponed:{s}", kind=StepKind.REPOINT, targets=later, source=s))
    return steps


def lost_steps(
    failed_master: InstanceKey, lost: Sequence[InstanceKey], options: ExecutionOptions
) -> list[StepSpec]:
    """What happens to the failed master and the replicas lost (in the plan or while executing it): a
    `lost-in-recovery` downtime (MasterFailoverLostInstancesDowntimeMinutes > 0) and, with
    DetachLostReplicasAfterMasterFailover, their replication stopped."""
    lost_all = _keys([failed_master], list(lost))
    steps: list[StepSpec] = []
    if options.lost_downtime_minutes > 0:
        steps.append(
            StepSpec(name="downtime-lost", kind=StepKind.DOWNTIME_LOST, targets=lost_all, best_effort=True)
        )
    detach = tuple(k for k in lost_all if k != failed_master)
    if options.detach_lost and detach:
        steps.append(
            StepSpec(name="detach-lost", kind=StepKind.DETACH_LOST, targets=detach, best_effort=True)
        )
    return steps


def plan_steps(plan: Plan, options: ExecutionOptions, *, fence_failed: bool = False) -> list[StepSpec]:
    """Every step of `plan` as decided, in order: drain, promotion, lost (the pipeline builds the same
    parts one by one, ranking again after the drain and taking the lost replicas from the record).
    Empty when the plan is not ok."""
    if not plan.ok or plan.successor is None:
        return []
    lost = [r.key for r in plan.lost]  # a two-step intermediate that cannot follow is in lost
    return [
        *drain_steps(plan, fence_failed=fence_failed),
        *promotion_steps(plan),
        *lost_steps(plan.failed_master, lost, options),
    ]


def fallback_candidates(
    plan: Plan,
    spec: StepSpec,
    failed: Mapping[InstanceKey, str],
    started: Collection[str],
    *,
    reversible: bool = True,
) -> dict[InstanceKey, str]:
    """The candidates of `plan` that failed in `spec` and may be replaced by the next plan
    (`fallback_plan`), with why; empty when the recovery must fail instead.

    Only the successor and the intermediate are candidates (any other target is lost, not replaced). A
    candidate may be replaced before the point of no return: no replica has been moved under it (no
    `repoint:<candidate>` step in `started`, the names of the steps begun so far) and it was not made
    writable (`reversible`: false when a promotion failed at or after `read_only=0`, or after RESET SLAVE
    ALL: it is no longer a replica to repoint)."""
    candidates = {k for k in (plan.successor, plan.intermediate) if k is not None}
    out = {k: why for k, why in failed.items() if k in candidates}
    if not out or not reversible:
        return {}
    if any(f"repoint:{k}" in started for k in out):
        return {}
    return out


def relocation_steps(plan: Plan) -> list[StepSpec]:
    """A dead intermediate master's replicas move under the plan's new source (its `successor`)."""
    if not plan.ok or plan.successor is None or not plan.replicas_to_repoint:
        return []
    return [
        StepSpec(
            name=f"relocate:{plan.successor}",
            kind=StepKind.RELOCATE,
            targets=plan.replicas_to_repoint,
            source=plan.successor,
        )
    ]


def takeover_steps(plan: Plan, *, start_old_master: bool) -> list[StepSpec]:
    """A graceful takeover of `plan.failed_master` (alive) by `plan.successor`:
    wait-caught-up (before the outage, so the one after read_only is short) → switch (old master
    read_only, successor catches up, successor promoted: the write outage) → repoint the other replicas
    under the successor → demote (the old master replicates from the successor; started in -auto)."""
    if not plan.ok or plan.successor is None:
        return []
    s, old = plan.successor, plan.failed_master
    others = tuple(k for k in plan.replicas_to_repoint if k not in (s, old))
    steps = [
        StepSpec(name=f"wait-caught-up:{s}", kind=StepKind.WAIT_CAUGHT_UP, targets=(s,), source=old,
                 required=(s,)),
        StepSpec(name=f"switch:{s}", kind=StepKind.SWITCH, targets=(s,), source=old, required=(s,)),
    ]  # fmt: skip
    if others:
        steps.append(StepSpec(name=f"repoint:{s}", kind=StepKind.REPOINT, targets=others, source=s))
    steps.append(
        StepSpec(name=f"demote:{old}", kind=StepKind.DEMOTE, targets=(old,), source=s, best_effort=True,
                 start_replication=start_old_master)
    )  # fmt: skip
    return steps
