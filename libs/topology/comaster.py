"""A dead co-master's failover plan (orchestrator's RecoverDeadCoMaster). Pure: the pipeline probes and
acts, this decides.

Two masters replicate from each other (a ring of two, `make-co-master`), one of them writable. When one
dies (DeadCoMaster, DeadCoMasterAndSomeReplicas) its replicas — the other co-master among them, since it
replicates from the dead one — are regrouped as for a dead master (`failover.master_plan`), with one
rule on top, in orchestrator's words:

- the **other co-master** is the dead one's own master (orchestrator's AnalyzedInstanceMasterKey);
- it **must be the promoted one** when CoMasterRecoveryMustPromoteOtherCoMaster is on (the default) or
  when it is writable ("other co-master X is writeable hence has to be promoted"): it is forced as the
  candidate (the operator's designation, if any, must name it), and a plan promoting anyone else fails
  the recovery ("could not manage to promote other-co-master ...; mustPromoteOtherCoMaster is true ...,
  therefore failing");
- otherwise any replica of the dead co-master may be promoted (the operator's designation applies); the
  other co-master is then repointed under it like any replica of the dead one.
- a **writable** other co-master is the live master: the transactions it took after the dead one
  stopped are its own writes, not errant ones (they are not listed as such), and it is never caught up
  through a replica of the dead one (a two-step plan would repoint the writer under that replica): the
  dead one's replicas simply follow it. One that holds something the writer lacks (written on the dead
  co-master behind read_only) cannot follow it and is lost while executing, as any such replica.

What the plan does not say but the steps do (`libs/recovery/steps.py`, as for a dead master): the
promoted server's replication is stopped and reset (`promote`: STOP SLAVE, RESET SLAVE ALL,
read_only=0), so the survivor no longer replicates from the dead co-master — the dead one is out of the
ring. **Change:** orchestrator only sets read_only=0 on the promoted other co-master and leaves its
replication pointing at the dead one (its ApplyMySQLPromotionAfterMasterFailover skips RESET SLAVE ALL
for co-masters); Baton breaks the ring, so the dead co-master never feeds the survivor again when it
comes back. The promoted server's own replicas (the survivor's side of the ring) stay where they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from libs.models import InstanceKey
from libs.topology.failover import master_plan
from libs.topology.plan import CandidateRules, DrainState, Plan
from libs.topology.view import ClusterView

MUST_PROMOTE_WHY = (
    "mustPromoteOtherCoMaster is true (either CoMasterRecoveryMustPromoteOtherCoMaster is true, or "
    "co-master is writeable), therefore failing"
)


def other_co_master(view: ClusterView, failed: InstanceKey) -> InstanceKey | None:
    """The dead co-master's partner: its own master as last seen, when the view holds it."""
    state = view.get(failed)
    if state is None or state.master_key is None:
        return None
    return state.master_key if view.get(state.master_key) is not None else None


def must_promote_other(view: ClusterView, other: InstanceKey, configured: bool) -> bool:
    """CoMasterRecoveryMustPromoteOtherCoMaster, or the other co-master is writable (as last known)."""
    state = view.get(other)
    return configured or (state is not None and state.last_seen is not None and not state.last_seen.read_only)


def _refusal(view: ClusterView, failed: InstanceKey, reason: str, plan: Plan | None = None) -> Plan:
    return Plan(
        failed_master=failed,
        cluster=view.name,
        ok=False,
        reason=reason,
        passed_over=plan.passed_over if plan else (),
        drain=plan.drain if plan else DrainState.PENDING,
        tried=plan.tried if plan else (),
    )


def co_master_plan(
    view: ClusterView,
    failed: InstanceKey,
    rules: CandidateRules,
    now: datetime,
    *,
    must_promote_other_co_master: bool = True,
    designated: InstanceKey | None = None,
    drain: DrainState = DrainState.PENDING,
    previous: Plan | None = None,
    failed_candidates: Mapping[InstanceKey, str] | None = None,
) -> Plan:
    """The plan replacing dead co-master `failed` (see the module docstring).
    `must_promote_other_co_master` is CoMasterRecoveryMustPromoteOtherCoMaster; `designated`, `drain`,
    `previous` and `failed_candidates` are `master_plan`'s."""
    other = other_co_master(view, failed)
    if other is None:
        state = view.get(failed)
        master = state.master_key if state is not None else None
        return _refusal(
            view, failed, f"RecoverDeadCoMaster: could not read info for co-master {master} of {failed}"
        )
    must = must_promote_other(view, other, must_promote_other_co_master)
    if must and designated is not None and designated != other:
        return _refusal(
            view,
            failed,
            f"RecoverDeadCoMaster: designated {designated} is not other-co-master {other}; "
            + MUST_PROMOTE_WHY,
        )
    plan = master_plan(
        view,
        failed,
        rules,
        now,
        designated=other if must else designated,
        drain=drain,
        previous=previous,
        failed_candidates=failed_candidates,
    )
    if must and (not plan.ok or plan.successor != other):
        got = f"was only able to promote {plan.successor}" if plan.ok else plan.reason
        return _refusal(
            view,
            failed,
            f"RecoverDeadCoMaster: could not manage to promote other-co-master {other}; {got}; "
            + MUST_PROMOTE_WHY,
            plan,
        )
    if must_promote_other(view, other, False):
        return _writer_direct(plan, other)
    return plan


def _writer_direct(plan: Plan, writer: InstanceKey) -> Plan:
    """`plan` for a writable other co-master: its own writes are not errant, and it is promoted in one
    step (never repointed under the two-step intermediate, which stays a replica to repoint)."""
    errant = tuple(e for e in plan.errant if e.replica != writer)
    if not plan.ok or plan.successor != writer or plan.intermediate is None:
        return plan.model_copy(update={"errant": errant})
    note = f"; it serves {writer} as the two-step intermediate"
    passed = tuple(r.model_copy(update={"reason": r.reason.replace(note, "")}) for r in plan.passed_over)
    return plan.model_copy(update={"intermediate": None, "passed_over": passed, "errant": errant})
