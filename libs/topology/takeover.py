"""Who takes over in a graceful master takeover, and whether it may: a pure check over a fresh view.

orchestrator's rules (reference §1b, manual operations): the cluster has exactly one master, alive;
it has at least one direct replica; the target is the designated one (which must be a direct replica),
else the only replica, else — in the `-auto` form — the replica `choose_candidate` would promote (a
plain takeover with several replicas and no target is refused: the operator must say which). The
target must be promotable (`why_not_promotable`: reachable, binlogs + log_slave_updates, not banned,
not delayed), replicating, and lag at most ReasonableMaintenanceReplicationLagSeconds. The master's
other direct replicas move under the target; one that cannot follow it stays under the old master
(which becomes the target's replica), so nothing is lost.
"""

from __future__ import annotations

from datetime import datetime

from libs.models import InstanceKey
from libs.topology.candidate import can_replicate_from, choose_candidate, why_not_promotable
from libs.topology.plan import CandidateRules, Plan, ReplicaReason
from libs.topology.view import ClusterView


def takeover_plan(
    view: ClusterView,
    designated: InstanceKey | None,
    *,
    auto: bool,
    rules: CandidateRules,
    now: datetime,
    max_lag_s: float,
) -> Plan:
    masters = view.masters
    head = masters[0].key if len(masters) == 1 else None

    def refuse(reason: str) -> Plan:
        return Plan(
            failed_master=head or InstanceKey.parse(view.name), cluster=view.name, ok=False, reason=reason
        )

    if head is None:
        names = ", ".join(str(m.key) for m in masters) or "none"
        return refuse(f"cluster {view.name} has no unique master ({names})")
    master = masters[0]
    if not master.is_valid(now, rules.stale_after):
        return refuse(f"master {head} is not reachable: use recover or force-master-failover")
    replicas = view.replicas_of(head)
    if not replicas:
        return refuse(f"Master {head} doesn't seem to have replicas")  # orchestrator's words
    by_key = {r.key: r for r in replicas}
    if designated is not None:
        if designated not in by_key:
            return refuse(  # orchestrator's words
                f"GracefulMasterTakeover: indicated designated instance {designated} must be directly "
                f"replicating from the master {head}"
            )
        target = designated
    elif len(replicas) == 1:
        target = replicas[0].key
    elif auto:
        chosen = choose_candidate(view, head, rules, now)
        if not chosen.ok or chosen.successor is None:
            return refuse(
                "GracefulMasterTakeover: no target instance indicated, failed to auto-detect candidate "
                f"replica for master {head}. Aborting ({chosen.reason})"
            )
        target = chosen.successor
    else:
        return refuse(  # orchestrator's words, then how to proceed
            f"GracefulMasterTakeover: target instance not indicated, auto=false, and master {head} has "
            f"{len(replicas)} replicas. orchestrator cannot choose where to failover to. Aborting "
            "(designate the target, or use graceful-master-takeover-auto)"
        )
    state = by_key[target]
    why = why_not_promotable(state, master.info, rules, now)
    if why is not None:
        return refuse(f"{target} cannot take over: {why}")
    replication = state.info.replication
    if replication is None or not replication.replicating:
        return refuse(f"{target} is not replicating from {head}")
    lag = replication.seconds_behind_master
    if lag is not None and lag > max_lag_s:
        return refuse(
            f"{target} lags {lag} s, more than ReasonableMaintenanceReplicationLagSeconds={max_lag_s:g}"
        )
    keep: list[InstanceKey] = []
    passed: list[ReplicaReason] = []
    for other in replicas:
        if other.key == target:
            continue
        cannot = can_replicate_from(other.info, state.info)
        if cannot is None and other.is_valid(now, rules.stale_after):
            keep.append(other.key)
            passed.append(ReplicaReason(key=other.key, reason=f"moves under {target}"))
        else:
            reason = cannot or f"{other.key} is not reachable now"
            passed.append(ReplicaReason(key=other.key, reason=f"stays under {head}: {reason}"))
    return Plan(
        failed_master=head,
        cluster=view.name,
        ok=True,
        successor=target,
        replicas_to_repoint=tuple(sorted(keep)),
        passed_over=tuple(passed),
    )


def takeover_summary(plan: Plan, outage_ms: float | None, *, started: bool) -> str:
    outage = f"; write outage {outage_ms:.1f} ms" if outage_ms is not None else ""
    how = "replicates from it" if started else "is configured to replicate from it (not started)"
    return (
        f"graceful takeover: {plan.successor} is the master of {plan.cluster}, {plan.failed_master} {how}"
        f"{outage}"
    )
