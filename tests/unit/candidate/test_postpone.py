"""PostponeReplicaRecoveryOnLagMinutes (orchestrator: replicas whose SQL_Delay exceeds it are relocated
after the promotion): the plan lists them, the steps move them after `promote`, straight under the
successor."""

from __future__ import annotations

from libs.recovery.steps import StepKind, promotion_steps
from libs.topology.candidate import choose_candidate
from libs.topology.plan import CandidateRules
from tests.unit.candidate.builders import MASTER, NOW, cluster, k, r

POSTPONE_30 = CandidateRules(postpone_replica_recovery_on_lag_minutes=30)


def _order(plan) -> list[tuple[str, tuple[int, ...]]]:  # type: ignore[no-untyped-def]
    return [(s.name.split(":")[0], tuple(t.port - 23300 for t in s.targets)) for s in promotion_steps(plan)]


def test_delayed_replicas_are_repointed_after_the_promotion() -> None:
    view = cluster(r(7, pos="0-1-101"), r(8), r(9, delay=3600))
    plan = choose_candidate(view, MASTER, POSTPONE_30, NOW)
    assert plan.successor == k(7) and plan.postponed == (k(9),)
    assert set(plan.replicas_to_repoint) == {k(8), k(9)}
    assert _order(plan) == [
        ("wait-applied", (7,)),
        ("repoint", (8,)),
        ("promote", (7,)),
        ("repoint-postponed", (9,)),
    ]
    postponed = promotion_steps(plan)[-1]
    assert postponed.kind is StepKind.REPOINT and postponed.source == k(7)


def test_off_or_below_the_limit_nothing_is_postponed() -> None:
    view = cluster(r(7, pos="0-1-101"), r(8), r(9, delay=3600))
    plan = choose_candidate(view, MASTER, CandidateRules(), NOW)
    assert plan.postponed == ()
    assert _order(plan) == [("wait-applied", (7,)), ("repoint", (8, 9)), ("promote", (7,))]
    hour = CandidateRules(postpone_replica_recovery_on_lag_minutes=60)  # 3600 s is not above 60 min
    assert choose_candidate(view, MASTER, hour, NOW).postponed == ()


def test_two_step_plans_postpone_straight_under_the_successor() -> None:
    """The intermediate holds the most but is delayed; another delayed replica waits for the end."""
    view = cluster(r(7, pos="0-1-102", delay=3600, applied=False), r(8, pos="0-1-101"), r(9, delay=7200))
    plan = choose_candidate(view, MASTER, POSTPONE_30, NOW)
    assert plan.intermediate == k(7) and plan.successor == k(8)
    assert plan.postponed == (k(9),)  # the intermediate itself is never postponed
    names = [name for name, _ in _order(plan)]
    assert names.index("promote") < names.index("repoint-postponed") == len(names) - 1
    assert all(k(9) not in s.targets for s in promotion_steps(plan)[:-1])
