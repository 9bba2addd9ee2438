"""The analyzer's incremental cluster grouping is exactly a full regroup (`group_clusters`) of the fleet.

Random snapshot streams over a small pool of hosts (so chains, co-master rings, instances moving
between clusters, masters appearing after their replicas, aliases changing, failed probes and older
good snapshots all happen), checked after every fold against a regroup of every state."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from libs.models import InstanceKey, InstanceSnapshot, IOThreadState, ReplicationStatus
from libs.topology.view import group_clusters
from services.analyzer.fleet import Fleet
from tests.unit.analysis.builder import NOW


def snapshot(key: InstanceKey, seconds: float, master: InstanceKey | None, alias: str) -> InstanceSnapshot:
    replication = (
        ReplicationStatus(master=master, io_state=IOThreadState.YES, sql_running=True) if master else None
    )
    return InstanceSnapshot(
        key=key,
        probed_at=NOW + timedelta(seconds=seconds),
        reachable=True,
        replication=replication,
        cluster_alias=alias,
    )


def assert_same_as_full_regroup(fleet: Fleet) -> None:
    full = group_clusters(fleet.states.values())
    assert fleet.clusters == sorted(v.name for v in full)
    for expected in full:
        view = fleet.view(expected.name)
        assert view is not None
        assert (view.alias, view.instances) == (expected.alias, expected.instances)
        for state in expected.instances:
            assert fleet.cluster_of(state.key) == expected.name


@pytest.mark.parametrize("seed", range(12))
def test_incremental_grouping_matches_a_full_regroup(seed: int) -> None:
    rng = random.Random(seed)
    pool = [InstanceKey(host=f"h{i:02d}", port=3306 + i % 2) for i in range(rng.choice((6, 15, 40)))]
    named = [*pool, InstanceKey(host="never-probed", port=3306)]  # a master that is never folded
    fleet = Fleet()
    clock = 0.0
    moves = 0
    for _ in range(600):
        clock += 1.0
        key = rng.choice(pool)
        roll = rng.random()
        if roll < 0.25:
            master = None
        elif roll < 0.3:
            master = key  # replicating from itself: a one-member ring
        else:
            master = rng.choice(named)
        alias = rng.choice(("", "", "alpha", "beta"))
        kind = rng.random()
        if kind < 0.15:
            snap = InstanceSnapshot.unreachable(key, NOW + timedelta(seconds=clock), "refused", code=2003)
        elif kind < 0.3:  # an older good snapshot (a replay): may only fill in the last seen
            snap = snapshot(key, clock - rng.uniform(1, 50), master, alias)
        else:
            snap = snapshot(key, clock, master, alias)
        before = fleet.cluster_of(key)
        now_in = fleet.fold(snap)
        if now_in is not None:
            assert now_in == fleet.cluster_of(key)
            moves += before is not None and before != now_in
        assert_same_as_full_regroup(fleet)
    assert moves > 0  # instances really moved between clusters


def test_a_master_found_after_its_replicas_gathers_them() -> None:
    fleet = Fleet()
    m, im = InstanceKey.parse("m"), InstanceKey.parse("im")
    replicas = [InstanceKey(host=f"r{i}", port=3306) for i in range(3)]
    for r in replicas:
        fleet.fold(snapshot(r, 1, im, ""))
    assert fleet.clusters == sorted(str(r) for r in replicas)  # each its own top until `im` is known
    assert fleet.fold(snapshot(im, 1, m, "")) == "im:3306"
    assert fleet.fold(snapshot(m, 1, None, "main")) == "m:3306"
    view = fleet.view("m:3306")
    assert view is not None and view.alias == "main"
    assert {s.key for s in view.instances} == {m, im, *replicas}
    assert fleet.fold(snapshot(im, 2, None, "")) == "im:3306"  # `im` leaves with its replicas
    assert fleet.clusters == ["im:3306", "m:3306"]
    assert_same_as_full_regroup(fleet)
