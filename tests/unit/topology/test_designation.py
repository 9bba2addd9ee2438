"""The designated candidate's rules and verdict, and the failover's bookkeeping of replicas lost while
executing, table-driven. (The whole choice under a designation: cases/master_plan goldens; the expiry on
every calendar day: tests/unit/recovery/test_calendar.py.)"""

from __future__ import annotations

from datetime import timedelta

import pytest

from libs.models import InstanceKey, PromotionRule
from libs.topology.designation import (
    DESIGNATED_RULE_TTL,
    designated_refusal,
    designated_rules,
    designated_verdict,
)
from libs.topology.failover import lost_while_executing
from libs.topology.plan import CandidateRules, DrainState, Plan, RegisteredRule, ReplicaReason
from tests.unit.candidate.builders import MASTER, NOW, k

LATER = NOW + timedelta(days=30)
REPLICAS = [k(7), k(8), k(9)]


@pytest.mark.parametrize(
    ("name", "registered", "wanted", "expected"),
    [
        ("nothing registered", {}, k(8), {7: "must_not", 8: "must", 9: "must_not"}),
        ("a registered must elsewhere is overridden", {k(7): PromotionRule.MUST}, k(8),
         {7: "must_not", 8: "must", 9: "must_not"}),
        ("a registered must_not on the designated one is overridden", {k(8): PromotionRule.MUST_NOT}, k(8),
         {7: "must_not", 8: "must", 9: "must_not"}),
        ("registrations of other instances stand", {k(5): PromotionRule.PREFER}, k(9),
         {5: "prefer", 7: "must_not", 8: "must_not", 9: "must"}),
    ],
)  # fmt: skip
def test_designated_rules(
    name: str, registered: dict[InstanceKey, PromotionRule], wanted: InstanceKey, expected: dict[int, str]
) -> None:
    rules = CandidateRules(
        registered={key: RegisteredRule(rule=rule, expires_at=LATER) for key, rule in registered.items()},
        prevent_cross_data_center_master_failover=True,
    )
    out = designated_rules(rules, REPLICAS, wanted, NOW)
    assert {key.port - 23300: rr.rule.value for key, rr in out.registered.items()} == expected, name
    assert out.prevent_cross_data_center_master_failover  # the rest of the rules stand
    assert rules.registered.keys() == registered.keys()  # the input is not changed
    for key in REPLICAS:
        assert out.registered[key].expires_at == NOW + DESIGNATED_RULE_TTL
    for key in set(registered) - set(REPLICAS):
        assert out.registered[key].expires_at == LATER


@pytest.mark.parametrize(
    ("wanted", "refused"),
    [(k(7), False), (k(9), False), (k(5), True), (MASTER, True)],
)
def test_designated_refusal(wanted: InstanceKey, refused: bool) -> None:
    plan = designated_refusal(MASTER, "c1", wanted, REPLICAS)
    if not refused:
        assert plan is None
        return
    assert plan is not None and not plan.ok
    assert plan.reason == f"designated {wanted} is not a replica of {MASTER}"
    assert (plan.failed_master, plan.cluster) == (MASTER, "c1")


PASSED = (ReplicaReason(key=k(7), reason="127.0.0.1:23307 has no binary logs"),)
TRIED = (ReplicaReason(key=k(9), reason="promote: failed"),)


@pytest.mark.parametrize(
    ("name", "plan", "wanted", "ok", "reason"),
    [
        ("the designated one is promoted", Plan(failed_master=MASTER, cluster="c", ok=True, successor=k(7)),
         k(7), True, ""),
        ("another one would be: refused with the designated one's reason",
         Plan(failed_master=MASTER, cluster="c", ok=True, successor=k(8), passed_over=PASSED), k(7), False,
         "designated 127.0.0.1:23307 cannot be promoted: 127.0.0.1:23307 has no binary logs"),
        ("no plan, no reason for it: the plan's reason",
         Plan(failed_master=MASTER, cluster="c", ok=False, reason="no replica is reachable"), k(7), False,
         "designated 127.0.0.1:23307 cannot be promoted: no replica is reachable"),
    ],
)  # fmt: skip
def test_designated_verdict(name: str, plan: Plan, wanted: InstanceKey, ok: bool, reason: str) -> None:
    plan = plan.model_copy(update={"drain": DrainState.DONE, "tried": TRIED})
    out = designated_verdict(plan, wanted, MASTER, "c1")
    assert out.ok is ok, name
    if ok:
        assert out is plan
        return
    assert out.reason == reason, name
    assert out.successor is None and out.intermediate is None
    assert (out.failed_master, out.cluster) == (MASTER, "c1")
    assert (out.passed_over, out.drain, out.tried) == (plan.passed_over, DrainState.DONE, TRIED)  # the audit


def _lost(*ports: int) -> list[ReplicaReason]:
    return [ReplicaReason(key=k(p), reason=f"lost {p}") for p in ports]


@pytest.mark.parametrize(
    ("name", "planned", "lost", "during"),
    [
        ("nothing lost", [], [], []),
        ("the failed master is never 'lost while executing'", [], [6], []),
        ("planned losses are not news", [8], [6, 8], []),
        ("a replica that could not follow", [8], [6, 8, 9], [9]),
        ("in the order they were lost", [], [9, 7], [9, 7]),
    ],
)
def test_lost_while_executing(name: str, planned: list[int], lost: list[int], during: list[int]) -> None:
    plan = Plan(failed_master=MASTER, cluster="c", ok=True, successor=k(7), lost=tuple(_lost(*planned)))
    got = lost_while_executing(plan, MASTER, _lost(*lost))
    assert [r.key.port - 23300 for r in got] == during, name
