"""A dead master's failover plan, as the recovery asks for it at each point: before the drain, after it
(`rank`), and after a candidate failed (`fallback`). Pure: the pipeline probes, these decide.

- `master_plan`: `choose_candidate` (or `fallback_plan` once candidates failed), with the designated
  candidate's rules when the operator named one (`designation.py`). Before the drain
  (`DrainState.PENDING`) FailMasterPromotionIfSQLThreadNotUpToDate is not applied: the relay logs are
  about to be applied (orchestrator checks it after stopping the replicas nicely too); the ranking
  after the drain applies it.
- `moved_back`: for a fallback, the replicas this recovery already moved under a source that did not
  fail count as replicas of the failed master again.
- `lost_while_executing`: the replicas lost while carrying a plan out (not those it planned to lose).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from libs.models import InstanceKey, InstanceSnapshot
from libs.topology.candidate import choose_candidate, fallback_plan
from libs.topology.designation import designated_refusal, designated_rules, designated_verdict
from libs.topology.plan import CandidateRules, DrainState, Plan, ReplicaReason
from libs.topology.semisync import successor_semi_sync_replicas
from libs.topology.view import ClusterView


def master_plan(
    view: ClusterView,
    failed: InstanceKey,
    rules: CandidateRules,
    now: datetime,
    *,
    designated: InstanceKey | None = None,
    drain: DrainState = DrainState.PENDING,
    previous: Plan | None = None,
    failed_candidates: Mapping[InstanceKey, str] | None = None,
) -> Plan:
    """The plan replacing `failed`: `choose_candidate`, or with `previous` (the plan in force) and
    `failed_candidates` (its candidates that failed, and why) `fallback_plan`. With `designated` the
    operator's replica is promoted or the plan refuses, saying why."""
    if drain is DrainState.PENDING:
        rules = rules.model_copy(update={"fail_master_promotion_if_sql_thread_not_up_to_date": False})

    def choose(chosen_by: CandidateRules) -> Plan:
        if previous is not None:
            return fallback_plan(view, previous, failed_candidates or {}, chosen_by, now, drain=drain)
        return choose_candidate(view, failed, chosen_by, now, drain=drain)

    if designated is None:
        return _semi_sync(choose(rules), view, failed)
    replicas = [s.key for s in view.replicas_of(failed)]
    refused = designated_refusal(failed, view.name, designated, replicas)
    if refused is not None:
        return refused
    plan = choose(designated_rules(rules, replicas, designated, now))
    return _semi_sync(designated_verdict(plan, designated, failed, view.name), view, failed)


def _semi_sync(plan: Plan, view: ClusterView, failed: InstanceKey) -> Plan:
    """`plan.semi_sync_master`: the failed master was last seen with semi-sync on on its master side, so
    the successor gets it (orchestrator switches it on in SetReadOnly(false) when semi-sync is enforced
    there). The replicas keep their own replica-side setting through the repoint (START SLAVE
    reconnects, so it takes effect)."""
    state = view.get(failed)
    if state is None or not plan.ok or not state.info.semi_sync.master_enabled:
        return plan
    enable = successor_semi_sync_replicas(view, failed, plan.successor, plan.replicas_to_repoint)
    return plan.model_copy(update={"semi_sync_master": True, "semi_sync_replicas": enable})


def moved_back(
    view: ClusterView, moved: Mapping[InstanceKey, InstanceKey], failed: InstanceKey
) -> ClusterView:
    """`view` with every replica of `moved` that still replicates from the source it was moved under
    shown as a replica of the failed master again: for a fallback plan they are what they were before the
    move (a source that never takes writes gave them nothing the failed master's replicas lacked)."""

    def back(info: InstanceSnapshot) -> InstanceSnapshot:
        replication = info.replication
        if replication is None or replication.master != moved.get(info.key):
            return info
        return info.model_copy(update={"replication": replication.model_copy(update={"master": failed})})

    states = []
    for state in view.instances:
        if state.key in moved:
            seen = back(state.last_seen) if state.last_seen is not None else None
            state = state.model_copy(update={"last_probe": back(state.last_probe), "last_seen": seen})
        states.append(state)
    return view.model_copy(update={"instances": tuple(states)})


def lost_while_executing(
    plan: Plan, failed: InstanceKey, lost: Iterable[ReplicaReason]
) -> list[ReplicaReason]:
    """Of the instances a recovery lost (`lost`), those `plan` did not plan to lose (nor the failed
    master itself): replicas that could not follow their new source, or would have lost their relay
    log."""
    planned = {r.key for r in plan.lost} | {failed}
    return [r for r in lost if r.key not in planned]
