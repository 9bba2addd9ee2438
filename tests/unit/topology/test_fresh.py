"""Fresh views, table-driven: known states with fresh snapshots folded in, grouped into clusters."""

from __future__ import annotations

from datetime import timedelta

import pytest

from libs.models import InstanceKey, InstanceSnapshot
from libs.topology.fresh import fresh_views, view_holding
from libs.topology.view import ClusterView, InstanceState
from tests.unit.candidate.builders import MASTER, NOW, k, master, r

OTHER = InstanceKey.parse("other:3306")


def _alone(key: InstanceKey) -> InstanceState:
    snap = InstanceSnapshot(key=key, probed_at=NOW, reachable=True, server_id=9)
    return InstanceState(key=key, last_probe=snap, last_seen=snap)


KNOWN = {s.key: s for s in (master(), r(7), r(8), _alone(OTHER))}


def _names(views: list[ClusterView]) -> list[tuple[str, list[int]]]:
    return [(v.name, sorted(s.key.port for s in v.instances)) for v in views]


@pytest.mark.parametrize(
    ("name", "fresh", "only", "expected"),
    [
        ("memory only", {}, None, [(str(MASTER), [23306, 23307, 23308]), (str(OTHER), [3306])]),
        ("only the failed one, nothing fresh", {}, [MASTER], [(str(MASTER), [23306])]),
        ("fresh ones always in", {k(7): r(7).last_probe}, [MASTER], [(str(MASTER), [23306, 23307])]),
        ("unknown fresh instance joins", {k(9): r(9).last_probe}, [MASTER], [(str(MASTER), [23306, 23309])]),
        ("only names nothing known", {}, [k(5)], []),
    ],
)
def test_fresh_views_membership(
    name: str,
    fresh: dict[InstanceKey, InstanceSnapshot],
    only: list[InstanceKey] | None,
    expected: list[tuple[str, list[int]]],
) -> None:
    assert _names(fresh_views(KNOWN, fresh, only=only)) == expected, name


def test_a_fresh_snapshot_is_folded_and_an_older_one_never_wins() -> None:
    down = InstanceSnapshot.unreachable(k(7), NOW + timedelta(seconds=1), "connection refused")
    (view,) = [v for v in fresh_views(KNOWN, {k(7): down}) if v.get(MASTER)]
    state = view.get(k(7))
    assert state is not None and not state.last_probe.reachable
    assert state.last_seen == KNOWN[k(7)].last_seen  # its place stays known: still under the master
    assert [s.key for s in view.replicas_of(MASTER)] == [k(7), k(8)]
    older = r(7).last_probe.model_copy(update={"probed_at": NOW - timedelta(hours=1), "server_id": 1})
    (view,) = [v for v in fresh_views(KNOWN, {k(7): older}) if v.get(MASTER)]
    assert view.get(k(7)) == KNOWN[k(7)]


def test_a_replica_moved_by_a_fresh_probe_changes_cluster() -> None:
    rep = r(8).last_probe.replication
    assert rep is not None
    moved = r(8).last_probe.model_copy(
        update={
            "probed_at": NOW + timedelta(seconds=1),
            "replication": rep.model_copy(update={"master": OTHER}),
        }
    )
    views = fresh_views(KNOWN, {k(8): moved})
    assert _names(views) == [(str(MASTER), [23306, 23307]), (str(OTHER), [3306, 23308])]


def test_view_holding() -> None:
    views = fresh_views(KNOWN)
    found = view_holding(views, k(8))
    assert found is not None and found.name == str(MASTER)
    other = view_holding(views, OTHER)
    assert other is not None and other.name == str(OTHER)
    assert view_holding(views, k(5)) is None
    assert view_holding([], MASTER) is None
