"""which-cluster-osc-replicas: orchestrator's heuristic (GetClusterOSCReplicas), stage by stage."""

from __future__ import annotations

from datetime import timedelta

from libs.models import InstanceKey
from libs.topology.osc import osc_replicas
from libs.topology.view import InstanceState, group_clusters
from tests.unit.candidate.builders import NOW, k
from tests.unit.topology.chain_builders import _with, alive_master, sibling

STALE = timedelta(seconds=30)


def under(n: int, master: InstanceKey, **kw: object) -> InstanceState:
    return _with(sibling(n, **kw), master=master)


def picked(*states: InstanceState) -> list[int]:
    [view] = group_clusters([alive_master(), *states])
    return [s.key.port - 23300 for s in osc_replicas(view, NOW, STALE)]


def test_two_busiest_intermediate_masters_one_replica_each_then_third_tier_then_leaves() -> None:
    states = [
        sibling(1), under(11, k(1)), under(12, k(1)), under(13, k(1)),  # IM with 3 replicas
        sibling(2), under(21, k(2)),  # IM with 1
        sibling(3), under(31, k(3)), under(32, k(3)),  # IM with 2
        under(111, k(11)), under(112, k(11)), under(113, k(11)),  # third tier
        sibling(4), sibling(5), sibling(7),  # first-tier leaves
    ]  # fmt: skip
    assert picked(*states) == [1, 3, 11, 31, 111, 112, 4, 5]


def test_one_intermediate_master_gives_two_of_its_replicas() -> None:
    assert picked(sibling(1), under(11, k(1)), under(12, k(1)), under(13, k(1)), sibling(4)) == [1, 11, 12, 4]


def test_only_valid_instances_count() -> None:
    dead = sibling(5, reachable=False)
    assert picked(sibling(4), dead, sibling(7)) == [4, 7]
    assert picked() == []
