"""Fast and certain (libs/topology/freshness.py): when the analyzer may decide about a suspect."""

from __future__ import annotations

from datetime import timedelta

from libs.models import InstanceKey, InstanceSnapshot
from libs.topology.codes import Analysis
from libs.topology.freshness import (
    FreshnessParams,
    held_instances,
    may_decide,
    probe_targets,
    suspects,
    track_down_since,
)
from tests.unit.analysis.builder import NOW
from tests.unit.analyzer.helpers import view_of

M = InstanceKey.parse("m")
STALE = timedelta(seconds=3)
PARAMS = FreshnessParams(stale_after=STALE, confirm_after=timedelta(milliseconds=100), hold_max=STALE)


def snap(seconds: float, reachable: bool) -> InstanceSnapshot:
    at = NOW + timedelta(seconds=seconds)
    if reachable:
        return InstanceSnapshot(key=M, probed_at=at, reachable=True)
    return InstanceSnapshot.unreachable(M, at, "refused")


def test_down_since_is_the_first_failure_of_the_streak() -> None:
    down = track_down_since({}, snap(0, True))
    assert down == {}
    down = track_down_since(down, snap(1, False))
    down = track_down_since(down, snap(2, False))
    assert down == {M: NOW + timedelta(seconds=1)}
    assert track_down_since(down, snap(0.5, True)) == down  # an older success changes nothing
    assert track_down_since(down, snap(3, True)) == {}


def test_unreachable_and_stale_masters_are_suspects_leaf_replicas_are_not() -> None:
    view = view_of({"m": {"reachable": False, "age": 2}, "r1": {"master": "m", "reachable": False}})
    assert suspects(view, NOW, STALE, {}) == {M: NOW - timedelta(seconds=2)}
    assert suspects(view, NOW, STALE, {M: NOW - timedelta(seconds=5)}) == {M: NOW - timedelta(seconds=5)}
    stale = view_of({"m": {"age": 4}, "r1": {"master": "m"}})
    assert suspects(stale, NOW, STALE, {}) == {M: NOW - timedelta(seconds=1)}
    assert suspects(view_of({"m": {}, "r1": {"master": "m"}}), NOW, STALE, {}) == {}
    assert probe_targets(view, M) == (M, InstanceKey.parse("r1"))


def test_decide_only_on_replica_probes_newer_than_the_failure() -> None:
    since = NOW - timedelta(seconds=1)
    old = view_of({"m": {"reachable": False, "age": 1}, "r1": {"master": "m", "age": 2}})
    assert not may_decide(old, M, since, Analysis.UNREACHABLE_MASTER, NOW, PARAMS)
    assert not may_decide(old, M, since, Analysis.DEAD_MASTER, NOW, PARAMS)
    fresh_dead = view_of(
        {"m": {"reachable": False, "age": 1}, "r1": {"master": "m", "io": "Connecting", "age": 0.95}}
    )
    assert may_decide(fresh_dead, M, since, Analysis.DEAD_MASTER, NOW, PARAMS)
    assert held_instances(fresh_dead, {M: since}, {M: Analysis.DEAD_MASTER}, NOW, PARAMS) == set()


def test_still_connected_replicas_are_confirmed_once_more() -> None:
    since = NOW - timedelta(seconds=1)
    early = view_of({"m": {"reachable": False, "age": 1}, "r1": {"master": "m", "age": 0.95}})
    assert not may_decide(early, M, since, Analysis.UNREACHABLE_MASTER, NOW, PARAMS)
    late = view_of({"m": {"reachable": False, "age": 0.8}, "r1": {"master": "m", "age": 0.8}})
    assert may_decide(late, M, since, Analysis.UNREACHABLE_MASTER, NOW, PARAMS)


def test_nobody_waits_past_hold_max() -> None:
    since = NOW - STALE
    old = view_of({"m": {"reachable": False, "age": 3}, "r1": {"master": "m", "age": 5}})
    assert may_decide(old, M, since, Analysis.DEAD_MASTER, NOW, PARAMS)
    assert held_instances(old, {M: since}, {}, NOW - timedelta(seconds=1), PARAMS) == {M}


def test_replicas_newer_than_the_suspects_failing_probe_need_a_new_probe_of_it() -> None:
    """A master that came back after its last failing probe: replicas already reconnected."""
    since = NOW - timedelta(seconds=3)
    back = view_of({"m": {"reachable": False, "age": 1}, "r1": {"master": "m", "age": 0.5}})
    assert not may_decide(back, M, since, Analysis.UNREACHABLE_MASTER, NOW - timedelta(seconds=1), PARAMS)
    same_round = view_of({"m": {"reachable": False, "age": 0.51}, "r1": {"master": "m", "age": 0.5}})
    assert may_decide(same_round, M, since, Analysis.UNREACHABLE_MASTER, NOW - timedelta(seconds=1), PARAMS)


def test_one_replica_newer_than_the_suspects_failing_probe_is_enough_to_wait() -> None:
    since = NOW - timedelta(seconds=2)
    view = view_of(
        {
            "m": {"reachable": False, "age": 1},
            "r1": {"master": "m", "io": "Connecting", "age": 1},
            "r2": {"master": "m", "age": 0.2},
        }
    )
    assert not may_decide(view, M, since, Analysis.UNREACHABLE_MASTER, NOW, PARAMS)


def test_a_long_dead_master_coming_back_is_re_probed_before_unreachable_is_said() -> None:
    since = NOW - timedelta(seconds=30)
    back = view_of({"m": {"reachable": False, "age": 1}, "r1": {"master": "m", "age": 0.2}})
    assert not may_decide(back, M, since, Analysis.UNREACHABLE_MASTER, NOW, PARAMS)
    hung = view_of({"m": {"reachable": False, "age": 4}, "r1": {"master": "m", "age": 0.2}})
    assert may_decide(hung, M, since, Analysis.UNREACHABLE_MASTER, NOW, PARAMS)
