"""Golden table: a dead co-master's plan (`libs/topology/comaster.co_master_plan`).

The ring: the dead co-master M = 127.0.0.1:23306 (`MASTER`) last seen replicating from the other
co-master OTHER = k(2), which replicates from M; k(3) is M's replica, k(21) OTHER's replica (not a replica of
M: it stays where it is). Each row: the ring's variation, CoMasterRecoveryMustPromoteOtherCoMaster, the
operator's designation, and the plan's one-line summary (the audit headline) plus its successor and
intermediate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from libs.models import InstanceKey, IOThreadState, PromotionRule, ReplicationStatus
from libs.topology.analysis import analyze
from libs.topology.codes import Analysis
from libs.topology.comaster import co_master_plan, must_promote_other, other_co_master
from libs.topology.plan import CandidateRules, RegisteredRule
from libs.topology.view import ClusterView, InstanceState
from tests.unit.candidate.builders import MASTER, NOW, k, master, r

M, OTHER, R3, R4, R21 = MASTER, k(2), k(3), k(4), k(21)


def _replicating(state: InstanceState, source: InstanceKey) -> InstanceState:
    snap = state.last_probe
    assert snap.replication is not None
    rep = snap.replication.model_copy(update={"master": source, "io_state": IOThreadState.YES})
    snap = snap.model_copy(update={"replication": rep})
    return state.model_copy(update={"last_probe": snap, "last_seen": snap})


def ring(
    *,
    dead_writable: bool = True,
    other: dict[str, Any] | None = None,
    replicas: dict[int, dict[str, Any]] | None = None,
    partner: InstanceKey = OTHER,
    dead: dict[str, Any] | None = None,
) -> ClusterView:
    """M (dead) <-> OTHER, M's replicas (default k(3)), and OTHER's replica k(21). `dead`: more fields
    of M's last snapshot."""
    failed = master()
    assert failed.last_seen is not None
    back = ReplicationStatus(
        master=partner, master_server_id=102, io_state=IOThreadState.YES, sql_running=True
    )
    update = {"replication": back, "read_only": not dead_writable, **(dead or {})}
    failed = failed.model_copy(update={"last_seen": failed.last_seen.model_copy(update=update)})
    opts = {"read_only": dead_writable, **(other or {})}
    states = [failed, r(2, **opts)]
    states += [r(n, **kw) for n, kw in (replicas if replicas is not None else {3: {}}).items()]
    states.append(_replicating(r(21), OTHER))
    return ClusterView(name=str(MASTER), alias="ring", instances=tuple(states))


def must_not(key: InstanceKey) -> CandidateRules:
    until = NOW + timedelta(days=1)
    return CandidateRules(registered={key: RegisteredRule(rule=PromotionRule.MUST_NOT, expires_at=until)})


@dataclass(frozen=True)
class Case:
    name: str
    view: ClusterView
    summary: str
    successor: InstanceKey | None = None
    intermediate: InstanceKey | None = None
    must: bool = True  # CoMasterRecoveryMustPromoteOtherCoMaster
    designated: InstanceKey | None = None
    rules: CandidateRules = field(default_factory=CandidateRules)


MUST_WHY = (
    "mustPromoteOtherCoMaster is true (either CoMasterRecoveryMustPromoteOtherCoMaster is true, or "
    "co-master is writeable), therefore failing"
)
HEAD = f"promote {OTHER} to replace failed master {M} of {M}"

CASES = [
    Case("writable co-master dies: the other is promoted", ring(), f"{HEAD}; repoint 1 replica", OTHER),
    Case(
        "read-only co-master dies: the writable other is promoted even with the key off",
        ring(dead_writable=False),
        f"{HEAD}; repoint 1 replica",
        OTHER,
        must=False,
    ),
    Case(
        "read-only co-master dies, the writer wrote on: its own writes are not errant, one step",
        ring(
            dead_writable=False,
            dead={"server_id": 2, "gtid_binlog_pos": "0-1-6"},
            other={"server_id": 1, "pos": "0-1-8", "gtid_binlog_pos": "0-1-8"},
            replicas={3: {"pos": "0-1-6"}},
        ),
        f"{HEAD}; repoint 1 replica",
        OTHER,
    ),
    Case(
        "the other co-master is behind: a two-step promotion still ends on it",
        ring(other={"pos": "0-1-90"}, replicas={3: {"pos": "0-1-100"}}),
        f"replace failed master {M} of {M} in two steps: {R3} (most up to date) serves {OTHER} until it "
        f"catches up, then {OTHER} is promoted; repoint 1 replica",
        OTHER,
        R3,
    ),
    Case(
        "key off, other read-only and behind: the most up-to-date replica is promoted",
        ring(other={"pos": "0-1-90"}, replicas={3: {"pos": "0-1-100"}}),
        f"promote {R3} to replace failed master {M} of {M}; repoint 1 replica",
        R3,
        must=False,
    ),
    Case(
        "key off: the operator's designation applies",
        ring(replicas={3: {}, 4: {}}),
        f"promote {R4} to replace failed master {M} of {M}; repoint 2 replicas",
        R4,
        must=False,
        designated=R4,
    ),
    Case(
        "must promote the other: the operator may not name another",
        ring(),
        f"cannot replace failed master {M} of {M}: RecoverDeadCoMaster: designated {R3} is not "
        f"other-co-master {OTHER}; {MUST_WHY}",
        designated=R3,
    ),
    Case(
        "the other co-master cannot be promoted (no binary log): the recovery fails",
        ring(other={"log_bin": False}),
        f"cannot replace failed master {M} of {M}: RecoverDeadCoMaster: could not manage to promote "
        f"other-co-master {OTHER}; designated {OTHER} cannot be promoted: {OTHER} has no binary logs; "
        + MUST_WHY,
    ),
    Case(
        "a must_not rule on the other co-master does not stop it: it is forced as the candidate",
        ring(),
        f"{HEAD}; repoint 1 replica",
        OTHER,
        rules=must_not(OTHER),
    ),
    Case(
        "the other co-master is not in the view",
        ring(partner=k(9)),
        f"cannot replace failed master {M} of {M}: RecoverDeadCoMaster: could not read info for "
        f"co-master {k(9)} of {M}",
    ),
    Case(
        "DeadCoMasterAndSomeReplicas: the unreachable replica is lost",
        ring(replicas={3: {}, 4: {"reachable": False}}),
        f"{HEAD}; repoint 1 replica; lose {R4}",
        OTHER,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden(case: Case) -> None:
    plan = co_master_plan(
        case.view, M, case.rules, NOW, must_promote_other_co_master=case.must, designated=case.designated
    )
    assert plan.summary() == case.summary
    assert (plan.successor, plan.intermediate) == (case.successor, case.intermediate)
    assert plan.ok == (case.successor is not None)
    if plan.ok:  # the other co-master's own replica is never touched; the dead co-master never repointed
        assert R21 not in plan.replicas_to_repoint and M not in plan.replicas_to_repoint
        if plan.successor != OTHER:  # the other co-master leaves the ring: it follows the promoted one
            assert OTHER in plan.replicas_to_repoint


def test_the_ring_is_detected_as_dead_co_master() -> None:
    """The views above are what the analyzer calls DeadCoMaster / DeadCoMasterAndSomeReplicas."""
    codes = {f.instance: f.code for f in analyze(ring(), NOW)}
    assert codes[M] is Analysis.DEAD_CO_MASTER
    codes = {f.instance: f.code for f in analyze(ring(replicas={3: {}, 4: {"reachable": False}}), NOW)}
    assert codes[M] is Analysis.DEAD_CO_MASTER_AND_SOME_REPLICAS


@pytest.mark.parametrize(
    ("configured", "other_writable", "expected"),
    [(True, False, True), (True, True, True), (False, True, True), (False, False, False)],
)
def test_must_promote_other(configured: bool, other_writable: bool, expected: bool) -> None:
    view = ring(dead_writable=not other_writable)
    assert other_co_master(view, M) == OTHER
    assert must_promote_other(view, OTHER, configured) is expected
