"""`baton discover --wait`'s completeness rule and tree (pure parts of libs/cli/discovery.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Console

from libs.cli.discovery import render_tree, topology_of
from libs.models import InstanceKey, InstanceSnapshot, ReplicationStatus
from libs.topology.view import fold, group_clusters

T = datetime(2025, 1, 1, tzinfo=UTC)


def K(text: str) -> InstanceKey:
    return InstanceKey.parse(text)


def snap(
    key: str, master: str | None = None, replicas: tuple[str, ...] = (), at: datetime = T
) -> InstanceSnapshot:
    rep = ReplicationStatus(master=K(master)) if master else None
    return InstanceSnapshot(
        key=K(key), probed_at=at, reachable=True, replication=rep, replicas=tuple(K(r) for r in replicas)
    )


def test_topology_is_complete_only_when_every_member_has_a_fresh_snapshot() -> None:
    snaps = {
        K("m:1"): snap("m:1", replicas=("r1:1", "r2:1")),
        K("r1:1"): snap("r1:1", master="m:1"),
    }
    members, missing = topology_of(K("r1:1"), snaps, {}, T - timedelta(seconds=1))
    assert members == {K("m:1"), K("r1:1"), K("r2:1")} and missing == {K("r2:1")}
    snaps[K("r2:1")] = snap("r2:1", master="m:1", at=T - timedelta(seconds=5))  # stale
    assert topology_of(K("r1:1"), snaps, {}, T - timedelta(seconds=1))[1] == {K("r2:1")}
    snaps[K("r2:1")] = snap("r2:1", master="m:1")
    assert topology_of(K("r1:1"), snaps, {}, T - timedelta(seconds=1))[1] == set()
    # a seed given by an alias name is followed to its canonical key
    assert topology_of(K("10.0.0.1:1"), snaps, {K("10.0.0.1:1"): K("r1:1")}, T)[1] == set()


def test_tree_puts_replicas_under_their_master() -> None:
    states = [fold(None, s) for s in (snap("m:1", replicas=("r1:1",)), snap("r1:1", master="m:1"))]
    (view,) = group_clusters(states)
    console = Console(width=200, record=True)
    console.print(render_tree(view))
    lines = console.export_text().splitlines()
    assert lines[0].startswith("cluster m:1")
    assert "m:1" in lines[1] and "r1:1" in lines[2] and lines[2].index("r1:1") > lines[1].index("m:1")
