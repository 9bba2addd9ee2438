"""Properties of `choose_candidate` over random clusters: what must hold whatever the topology."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.models import PromotionRule
from libs.topology.candidate import can_replicate_from, choose_candidate, covers, why_not_promotable
from libs.topology.plan import CandidateRules
from libs.topology.view import ClusterView, InstanceState
from tests.unit.candidate.builders import MASTER, NOW, cluster, master, r


@st.composite
def replica(draw: st.DrawFn, n: int) -> InstanceState:
    seq0 = draw(st.integers(95, 101))
    pos = f"0-1-{seq0}" + (f",1-2-{draw(st.integers(1, 3))}" if draw(st.booleans()) else "")
    return r(
        n,
        pos=pos,
        rule=draw(st.sampled_from(list(PromotionRule))),
        log_bin=draw(st.booleans() | st.just(True)),
        lsu=draw(st.booleans() | st.just(True)),
        delay=draw(st.sampled_from([0, 0, 0, 3600])),
        fmt=draw(st.sampled_from(["ROW", "ROW", "MIXED", "STATEMENT"])),
        version=draw(st.sampled_from(["10.11", "10.11", "10.6", "11.4"])),
        dc=draw(st.sampled_from(["dc1", "dc1", "dc2"])),
        reachable=draw(st.integers(0, 5)) > 0,
        downtimed=draw(st.integers(0, 7)) == 0,
    )


@st.composite
def views(draw: st.DrawFn) -> ClusterView:
    count = draw(st.integers(0, 6))
    return cluster(
        *(draw(replica(7 + i)) for i in range(count)),
        failed=master(fmt=draw(st.sampled_from(["ROW", "MIXED"]))),
    )


RULES = [CandidateRules(), CandidateRules(prevent_cross_data_center_master_failover=True)]


@settings(max_examples=300, deadline=None)
@given(view=views(), rules=st.sampled_from(RULES), seed=st.integers(0, 1000))
def test_plan_properties(view: ClusterView, rules: CandidateRules, seed: int) -> None:
    plan = choose_candidate(view, MASTER, rules, NOW)
    replicas = {s.key: s for s in view.replicas_of(MASTER)}
    failed_info = master().info

    # every replica but the successor has a reason, and so does every lost one
    assert {x.key for x in plan.passed_over} == set(replicas) - {plan.successor}
    assert all(x.reason for x in plan.passed_over + plan.lost)

    # deterministic: the order instances arrive in does not matter
    shuffled = list(view.instances)
    random.Random(seed).shuffle(shuffled)
    again = choose_candidate(view.model_copy(update={"instances": tuple(shuffled)}), MASTER, rules, NOW)
    assert again == plan

    promotable = [s for s in replicas.values() if why_not_promotable(s, failed_info, rules, NOW) is None]
    if not plan.ok:
        assert not promotable, plan.reason  # no lag guard is on: only the lack of a candidate stops a plan
        return
    assert plan.successor is not None
    successor = replicas[plan.successor]
    assert why_not_promotable(successor, failed_info, rules, NOW) is None
    data = replicas[plan.intermediate] if plan.intermediate else successor
    if plan.intermediate is not None:
        mid = data.info
        assert mid.log_bin and mid.log_slave_updates
        assert covers(mid, successor.info) and not covers(successor.info, mid)
        assert can_replicate_from(successor.info, mid) is None
    for key in plan.replicas_to_repoint:
        # nobody kept is ahead of the data the new master ends with, and everybody kept can follow it
        assert covers(data.info, replicas[key].info)
        assert can_replicate_from(replicas[key].info, successor.info) is None
    assert set(plan.replicas_to_repoint) | {x.key for x in plan.lost} == set(replicas) - {plan.successor}

    # no simple promotion of any allowed replica would have kept more replicas
    def lost_if_promoted(s: InstanceState) -> int:
        return sum(
            not o.is_valid(NOW, rules.stale_after)
            or can_replicate_from(o.info, s.info) is not None
            or not covers(s.info, o.info)
            for o in replicas.values()
            if o.key != s.key
        )

    assert len(plan.lost) <= min(lost_if_promoted(s) for s in promotable)
