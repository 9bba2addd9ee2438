"""Graceful takeover target checks (`takeover_plan`) and the step lists of the new recovery kinds."""

from __future__ import annotations

from datetime import timedelta

import pytest

from libs.models import PromotionRule
from libs.recovery.steps import ExecutionOptions, StepKind, plan_steps, relocation_steps, takeover_steps
from libs.topology.plan import CandidateRules
from libs.topology.takeover import takeover_plan
from libs.topology.view import ClusterView, InstanceState
from tests.unit.candidate.builders import MASTER, NOW, k, master
from tests.unit.topology.chain_builders import alive_master, sibling

RULES = CandidateRules(stale_after=timedelta(seconds=15))


def view(*replicas: InstanceState, top: InstanceState | None = None) -> ClusterView:
    return ClusterView(name=str(MASTER), alias="test", instances=(top or alive_master(), *replicas))


def _lagging(state: InstanceState, lag: int) -> InstanceState:
    snap = state.last_probe
    assert snap.replication is not None
    snap = snap.model_copy(
        update={"replication": snap.replication.model_copy(update={"seconds_behind_master": lag})}
    )
    return state.model_copy(update={"last_probe": snap, "last_seen": snap})


CASES = [
    # name, view, designated, auto, expected target (None: refused), text
    ("the only replica", view(sibling(1)), None, False, k(1), ""),
    ("designated", view(sibling(1), sibling(2)), k(2), False, k(2), ""),
    ("several, no target", view(sibling(1), sibling(2)), None, False, None, "designate the target"),
    ("several, auto", view(sibling(1), sibling(2, pos="0-1-90")), None, True, k(1), ""),
    ("auto honours prefer", view(sibling(1), sibling(2, rule=PromotionRule.PREFER)), None, True, k(2), ""),
    ("not a direct replica", view(sibling(1)), k(7), False, None, "must be directly replicating from"),
    ("no replicas", view(), None, True, None, "doesn't seem to have replicas"),
    ("dead master", view(sibling(1), top=master()), None, True, None, "not reachable"),
    ("must_not target", view(sibling(1, rule=PromotionRule.MUST_NOT)), k(1), False, None, "must_not"),
    ("no log_slave_updates", view(sibling(1, lsu=False)), None, False, None, "log_slave_updates"),
    ("lagging target", view(_lagging(sibling(1), 99)), None, False, None, "lags 99 s"),
]


@pytest.mark.parametrize(
    ("name", "v", "designated", "auto", "target", "text"), CASES, ids=[c[0] for c in CASES]
)
def test_takeover_plan(name, v, designated, auto, target, text) -> None:  # type: ignore[no-untyped-def]
    plan = takeover_plan(v, designated, auto=auto, rules=RULES, now=NOW, max_lag_s=20)
    if target is None:
        assert not plan.ok and text in plan.reason, plan.reason
        return
    assert plan.ok and plan.successor == target, plan.reason
    assert plan.failed_master == MASTER and target not in plan.replicas_to_repoint
    assert set(plan.replicas_to_repoint) == {s.key for s in v.replicas_of(MASTER)} - {target}


def test_a_replica_that_cannot_follow_the_target_stays_under_the_old_master() -> None:
    v = view(sibling(1), sibling(2, version="10.6"))  # 10.6 cannot follow a 10.11 target
    plan = takeover_plan(v, k(1), auto=False, rules=RULES, now=NOW, max_lag_s=20)
    assert plan.ok and plan.replicas_to_repoint == ()
    assert "stays under" in (plan.passed_over_reason(k(2)) or "")


def test_step_lists() -> None:
    v = view(sibling(1), sibling(2))
    plan = takeover_plan(v, k(1), auto=False, rules=RULES, now=NOW, max_lag_s=20)
    steps = takeover_steps(plan, start_old_master=True)
    assert [s.kind for s in steps] == [
        StepKind.WAIT_CAUGHT_UP,
        StepKind.SWITCH,
        StepKind.REPOINT,
        StepKind.DEMOTE,
    ]
    assert steps[1].source == MASTER and steps[1].targets == (k(1),) and steps[1].mutating
    assert steps[-1].targets == (MASTER,) and steps[-1].start_replication and steps[-1].best_effort
    assert not takeover_steps(plan, start_old_master=False)[-1].start_replication
    # force-master-failover: the old master first
    forced = plan_steps(
        plan.model_copy(update={"replicas_to_repoint": (k(2),)}), ExecutionOptions(), fence_failed=True
    )
    assert (
        forced[0].kind is StepKind.SET_READ_ONLY and forced[0].targets == (MASTER,) and forced[0].best_effort
    )
    relocation = relocation_steps(plan)
    assert [(s.kind, s.source, s.targets) for s in relocation] == [(StepKind.RELOCATE, k(1), (k(2),))]
