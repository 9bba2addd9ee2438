"""Where the replicas of a dead intermediate master go: a pure choice over a frozen `ClusterView`.

orchestrator's intermediate-master recovery, with GTID only: the replicas of the dead intermediate
master I are relocated, each by GTID auto-positioning, under one new source:
1. a *sibling* of I (another replica of I's master M) that can serve them: reachable and fresh,
   replicating, binary logs with log_slave_updates (its binlogs hold what it replicated), not delayed,
   not banned (`must_not`, PromotionIgnoreHostnameFilters), and followable by the replicas (versions,
   formats, server ids: `can_replicate_from`); the one in I's data center first, then the best
   promotion rule, then the most up to date;
2. else M itself.
A sibling slightly behind a replica is fine (it replicates from the same master and catches up; the
executor waits for it before repointing); a source whose data has *diverged* from a replica's (errant
transactions) would lose that replica. The choice minimises lost replicas first. Replicas that are
unreachable now are lost (they cannot be repointed).

The result is a `Plan` (as for a master failover) whose `successor` is the new source: orchestrator's
`SuccessorKey` of an intermediate-master recovery is likewise the instance the replicas moved under.
"""

from __future__ import annotations

import re
from datetime import datetime

from libs.models import InstanceKey, PromotionRule
from libs.topology.candidate import (
    RULE_RANK,
    can_replicate_from,
    compare_progress,
    effective_rule,
    progress_rank,
)
from libs.topology.plan import CandidateRules, Plan, ReplicaReason
from libs.topology.view import ClusterView, InstanceState


def why_not_source(
    state: InstanceState, *, is_master: bool, rules: CandidateRules, now: datetime
) -> str | None:
    """Why `state` cannot take the dead intermediate master's replicas, or None."""
    key, info = state.key, state.info
    if not state.is_valid(now, rules.stale_after):
        probe = state.last_probe
        if not probe.reachable:
            return f"{key} is unreachable: {probe.error or 'no answer'}"
        return f"{key} was last probed {(now - probe.probed_at).total_seconds():.0f} s ago"
    if not info.log_bin:
        return f"{key} has no binary logs"
    if is_master:
        return None
    if not info.log_slave_updates:
        return f"{key} has log_slave_updates off: its binary logs lack the replicated transactions"
    replication = info.replication
    if replication is None or not (replication.io_running and replication.sql_running):
        return f"{key} is not replicating"
    if replication.sql_delay > 0:
        return f"{key} is delayed by {replication.sql_delay} s"
    if effective_rule(state, rules, now) is PromotionRule.MUST_NOT:
        return f"{key} has promotion rule must_not"
    names = {key.host, info.hostname or "", info.report_host or ""} - {""}
    for pattern in rules.promotion_ignore_hostname_filters:
        if any(re.search(pattern, name) for name in names):
            return f"{key} matches PromotionIgnoreHostnameFilters {pattern!r}"
    return None


def _lost_under(replica: InstanceState, source: InstanceState, verify_filters: bool = False) -> str | None:
    why = can_replicate_from(replica.info, source.info, verify_filters=verify_filters)
    if why is not None:
        return why
    if compare_progress(source.info, replica.info) is None:
        return f"{replica.key} has transactions {source.key} never had (diverged)"
    return None


def relocation_plan(view: ClusterView, failed: InstanceKey, rules: CandidateRules, now: datetime) -> Plan:
    """Plan the relocation of `failed`'s replicas (see the module doc). Not ok when no source fits."""
    state = view.get(failed)
    master_key = state.master_key if state is not None else None
    master = view.get(master_key) if master_key is not None else None

    def refuse(reason: str, passed: dict[InstanceKey, str] | None = None) -> Plan:
        return Plan(
            failed_master=failed,
            cluster=view.name,
            ok=False,
            reason=reason,
            passed_over=tuple(ReplicaReason(key=k, reason=v) for k, v in sorted((passed or {}).items())),
        )

    if state is None:
        return refuse(f"{failed} is not in cluster {view.name}")
    if master is None:
        return refuse(f"the master of intermediate master {failed} is unknown")
    replicas = view.replicas_of(failed)
    if not replicas:
        return refuse(f"intermediate master {failed} has no replicas")
    movable = [r for r in replicas if r.is_valid(now, rules.stale_after)]
    unreachable = [
        ReplicaReason(key=r.key, reason=f"{r.key} is unreachable; it cannot be relocated now")
        for r in replicas
        if r not in movable
    ]
    if not movable:
        return refuse(f"no reachable replicas of {failed} to relocate")
    siblings = [s for s in view.replicas_of(master.key) if s.key != failed]
    blocked = {s.key: why_not_source(s, is_master=False, rules=rules, now=now) for s in siblings}
    blocked[master.key] = why_not_source(master, is_master=True, rules=rules, now=now)
    fit = [s for s in siblings if blocked[s.key] is None]
    position = progress_rank([s.info for s in fit])
    im_dc = state.info.data_center
    options = []
    for source in [*fit, *([master] if blocked[master.key] is None else [])]:
        is_master = source.key == master.key
        verify = rules.verify_replication_filters
        lost = [(r.key, why) for r in movable if (why := _lost_under(r, source, verify)) is not None]
        tier = 2 if is_master else (0 if source.info.data_center == im_dc else 1)
        score = (
            len(lost),
            tier,
            RULE_RANK[effective_rule(source, rules, now)] if not is_master else 0,
            position.get(source.key, 0),
            (source.key.host, source.key.port),
        )
        options.append((score, source, lost))
    if not options:
        return refuse(
            f"neither a sibling of {failed} nor its master {master.key} can take its replicas",
            {k: v for k, v in blocked.items() if v is not None},
        )
    options.sort(key=lambda o: o[0])
    _, best, lost = options[0]
    lost_keys = {k for k, _ in lost}
    passed: list[ReplicaReason] = []
    for score, source, _ in options[1:]:
        passed.append(ReplicaReason(key=source.key, reason=_why_worse(score, options[0][0], source, best)))
    passed += [ReplicaReason(key=k, reason=v) for k, v in blocked.items() if v is not None]
    return Plan(
        failed_master=failed,
        cluster=view.name,
        ok=True,
        successor=best.key,
        replicas_to_repoint=tuple(sorted(r.key for r in movable if r.key not in lost_keys)),
        lost=(*unreachable, *(ReplicaReason(key=k, reason=v) for k, v in lost)),
        passed_over=tuple(sorted(passed, key=lambda r: (r.key.host, r.key.port))),
    )


def _why_worse(
    loser: tuple[object, ...], winner: tuple[object, ...], source: InstanceState, best: InstanceState
) -> str:
    texts = (
        f"relocating under {source.key} would lose more replicas than under {best.key}",
        f"{best.key} is preferred (sibling in the same data center, then other siblings, then the master)",
        f"{best.key} has a better promotion rule",
        f"{source.key} is less up to date than {best.key}",
    )
    for i, text in enumerate(texts):
        if loser[i] != winner[i]:
            return text
    return f"{source.key} is as suitable as {best.key}, which wins the tie by address"


def relocation_summary(plan: Plan) -> str:
    """One sentence for the audit and the log."""
    if not plan.ok or plan.successor is None:
        return f"cannot relocate the replicas of intermediate master {plan.failed_master}: {plan.reason}"
    n = len(plan.replicas_to_repoint)
    text = (
        f"relocate {n} replica{'' if n == 1 else 's'} of dead intermediate master {plan.failed_master} "
        f"under {plan.successor}"
    )
    if plan.lost:
        text += "; lose " + ", ".join(str(r.key) for r in plan.lost)
    return text
