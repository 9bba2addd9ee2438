"""Where a dead intermediate master's replicas go (`relocation_plan`), table-driven."""

from __future__ import annotations

from datetime import timedelta

import pytest

from libs.models import PromotionRule
from libs.topology.analysis import analyze
from libs.topology.codes import Analysis
from libs.topology.intermediate import relocation_plan, relocation_summary
from libs.topology.plan import CandidateRules
from libs.topology.view import ClusterView
from tests.unit.candidate.builders import MASTER, NOW, k
from tests.unit.topology.chain_builders import IM, alive_master, chain, im_replica, sibling

RULES = CandidateRules(stale_after=timedelta(seconds=15))
BOTH = (k(11), k(12))

CASES: list[tuple[str, ClusterView, object, tuple[object, ...], str]] = [
    # name, view, expected source (None: plan fails), replicas moved, text in the plan/passed-over
    ("sibling in the same DC", chain(sibling(2)), k(2), BOTH, ""),
    ("same DC first", chain(sibling(2, dc="dc2"), sibling(3)), k(3), BOTH, "same data center"),
    ("other-DC sibling before the master", chain(sibling(2, dc="dc2")), k(2), BOTH, ""),
    ("no sibling: the master", chain(), MASTER, BOTH, ""),
    (
        "sibling without log_slave_updates",
        chain(sibling(2, lsu=False)),
        MASTER,
        BOTH,
        "log_slave_updates off",
    ),
    ("delayed sibling", chain(sibling(2, delay=3600)), MASTER, BOTH, "delayed by 3600"),
    ("must_not sibling", chain(sibling(2, rule=PromotionRule.MUST_NOT)), MASTER, BOTH, "must_not"),
    ("unreachable sibling", chain(sibling(2, reachable=False)), MASTER, BOTH, "unreachable"),
    (
        "more up to date sibling wins",
        chain(sibling(2, pos="0-1-90"), sibling(3)),
        k(3),
        BOTH,
        "less up to date",
    ),
    (
        "prefer rule wins",
        chain(sibling(2), sibling(3, rule=PromotionRule.PREFER)),
        k(3),
        BOTH,
        "promotion rule",
    ),
    (
        "a sibling that would lose a replica loses to the master",
        chain(sibling(2, server_id=111)),
        MASTER,
        BOTH,
        "would lose more replicas",
    ),
    (
        "diverged replica",
        chain(sibling(2, pos="0-1-101"), replicas=(im_replica(11, pos="0-1-100,1-999-5"), im_replica(12))),
        MASTER,
        BOTH,
        "",
    ),
    (
        "an unreachable replica is lost",
        chain(sibling(2), replicas=(im_replica(11), im_replica(12, reachable=False))),
        k(2),
        (k(11),),
        "",
    ),
    (
        "no reachable replica",
        chain(sibling(2), replicas=(im_replica(11, reachable=False),)),
        None,
        (),
        "no reachable replicas",
    ),
    (
        "master unreachable, no sibling",
        chain(
            master=alive_master().model_copy(
                update={"last_probe": alive_master().last_probe.model_copy(update={"reachable": False})}
            )
        ),
        None,
        (),
        "nor its master",
    ),
]


@pytest.mark.parametrize(("name", "view", "source", "moved", "text"), CASES, ids=[c[0] for c in CASES])
def test_relocation_plan(
    name: str, view: ClusterView, source: object, moved: tuple[object, ...], text: str
) -> None:
    plan = relocation_plan(view, IM, RULES, NOW)
    if source is None:
        assert not plan.ok and text in plan.reason, plan.reason
        return
    assert plan.ok, plan.reason
    assert plan.successor == source and plan.replicas_to_repoint == moved
    assert plan.intermediate is None and plan.failed_master == IM
    everything = " | ".join(
        [plan.reason, *(r.reason for r in plan.passed_over), *(r.reason for r in plan.lost)]
    )
    assert text in everything, everything
    assert str(source) in relocation_summary(plan)


def test_the_chain_is_analysed_as_a_dead_intermediate_master() -> None:
    """The fixtures above are what the analysis calls DeadIntermediateMaster."""
    findings = analyze(chain(sibling(2)), NOW)
    assert [(f.code, f.instance) for f in findings if f.instance == IM] == [
        (Analysis.DEAD_INTERMEDIATE_MASTER, IM)
    ]


def test_unknown_instance_is_refused() -> None:
    plan = relocation_plan(chain(), k(9), RULES, NOW)
    assert not plan.ok and "not in cluster" in plan.reason
