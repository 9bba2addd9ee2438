"""Which cluster an alias means after a failover, and who its live master is (libs/topology/succession).

Each case is a fleet in the golden-case format (tests/unit/analysis/builder.py) plus `baton_masters`
records, and what the directory must answer: the clusters with their alias and members, what each
lookup name resolves to, and each cluster's live master (None: no live master).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from libs.models import InstanceKey, MasterRecord
from libs.topology.succession import follow_masters, tops
from libs.topology.view import group_clusters
from tests.unit.analysis.builder import NOW, build_case

pytestmark = pytest.mark.unit
STALE = timedelta(seconds=3)

# After kill -9 of m and a failover to r1: m keeps its last good snapshot (a master with alias ci and
# no replicas any more); r1 is writable with r2 under it and reports the same alias.
AFTER_FAILOVER = {
    "m": {"reachable": False, "alias": "ci", "read_only": False},
    "r1": {"alias": "ci", "read_only": False},
    "r2": {"master": "r1", "alias": "ci"},
}

CASES: list[dict[str, Any]] = [
    {
        "id": "healthy cluster, no record: unchanged",
        "instances": {"m": {"alias": "ci"}, "r1": {"master": "m", "alias": "ci"}},
        "records": [],
        "clusters": {"m:3306": ("ci", ["m:3306", "r1:3306"])},
        "find": {"ci": "m:3306", "m:3306": "m:3306", "r1": "m:3306"},
        "master": {"m:3306": "m:3306"},
    },
    {
        "id": "after failover with the record: the alias and the old name reach the new cluster",
        "instances": AFTER_FAILOVER,
        "records": [("m:3306", "ci", "r1:3306", 7)],
        "clusters": {"r1:3306": ("ci", ["m:3306", "r1:3306", "r2:3306"])},
        "find": {"ci": "r1:3306", "m:3306": "r1:3306", "m": "r1:3306", "r2:3306": "r1:3306"},
        "master": {"r1:3306": "r1:3306"},
    },
    {
        "id": "after failover with no record: the live writable master keeps the alias",
        "instances": AFTER_FAILOVER,
        "records": [],
        "clusters": {"r1:3306": ("ci", ["m:3306", "r1:3306", "r2:3306"])},
        "find": {"ci": "r1:3306", "m:3306": "r1:3306"},
        "master": {"r1:3306": "r1:3306"},
    },
    {
        "id": "master dead, no failover yet: the cluster has no live master",
        "instances": {
            "m": {"reachable": False, "alias": "ci", "read_only": False},
            "r1": {"master": "m", "io": "Connecting", "errno": 2003, "alias": "ci"},
        },
        "records": [("m:3306", "ci", "m:3306", 0)],
        "clusters": {"m:3306": ("ci", ["m:3306", "r1:3306"])},
        "find": {"ci": "m:3306"},
        "master": {"m:3306": None},
    },
    {
        "id": "old master back, fenced read-only and standalone: not merged, loses the alias",
        "instances": {
            "m": {"alias": "ci", "read_only": True},
            "r1": {"alias": "ci", "read_only": False},
            "r2": {"master": "r1", "alias": "ci"},
        },
        "records": [("m:3306", "ci", "r1:3306", 7)],
        "clusters": {"m:3306": ("m:3306", ["m:3306"]), "r1:3306": ("ci", ["r1:3306", "r2:3306"])},
        "find": {"ci": "r1:3306", "m:3306": "m:3306"},
        "master": {"r1:3306": "r1:3306", "m:3306": "m:3306"},
    },
    {
        "id": "the record wins over a live writable impostor with the same alias",
        "instances": {
            "m": {"alias": "ci", "read_only": False},
            "r1": {"master": "m", "alias": "ci"},
            "x": {"alias": "ci", "read_only": False},
        },
        "records": [("m:3306", "ci", "m:3306", 3)],
        "clusters": {"m:3306": ("ci", ["m:3306", "r1:3306"]), "x:3306": ("x:3306", ["x:3306"])},
        "find": {"ci": "m:3306", "x": "x:3306"},
        "master": {"m:3306": "m:3306", "x:3306": "x:3306"},
    },
    {
        "id": "two failovers: both dead masters fold into the newest cluster",
        "instances": {
            "m": {"reachable": False, "alias": "ci", "read_only": False},
            "r1": {"reachable": False, "alias": "ci", "read_only": False},
            "r2": {"alias": "ci", "read_only": False},
        },
        "records": [("r1:3306", "ci", "r2:3306", 9)],
        "clusters": {"r2:3306": ("ci", ["m:3306", "r1:3306", "r2:3306"])},
        "find": {"ci": "r2:3306", "m:3306": "r2:3306", "r1:3306": "r2:3306"},
        "master": {"r2:3306": "r2:3306"},
    },
    {
        "id": "a stale record (older epoch) does not beat a newer one for the same alias",
        "instances": AFTER_FAILOVER,
        "records": [("m:3306", "ci", "m:3306", 2), ("m:3306", "ci", "r1:3306", 7)],
        "clusters": {"r1:3306": ("ci", ["m:3306", "r1:3306", "r2:3306"])},
        "find": {"ci": "r1:3306"},
        "master": {"r1:3306": "r1:3306"},
    },
    {
        "id": "other clusters are untouched",
        "instances": {
            **AFTER_FAILOVER,
            "a": {"alias": "other", "read_only": False},
            "b": {"master": "a", "alias": "other"},
        },
        "records": [("m:3306", "ci", "r1:3306", 7)],
        "clusters": {
            "a:3306": ("other", ["a:3306", "b:3306"]),
            "r1:3306": ("ci", ["m:3306", "r1:3306", "r2:3306"]),
        },
        "find": {"other": "a:3306", "ci": "r1:3306", "b": "a:3306"},
        "master": {"a:3306": "a:3306", "r1:3306": "r1:3306"},
    },
    {
        "id": "read-only live master is still the master (shown read-only), a dead one never",
        "instances": {"m": {"alias": "ci", "read_only": True}, "r1": {"master": "m", "alias": "ci"}},
        "records": [],
        "clusters": {"m:3306": ("ci", ["m:3306", "r1:3306"])},
        "find": {"ci": "m:3306"},
        "master": {"m:3306": "m:3306"},
    },
    {
        "id": "just published: the record is newer than the tree, the successor is the master at once",
        "instances": {
            "m": {"reachable": False, "alias": "ci", "read_only": False, "age": 2},
            "r1": {"master": "m", "io": "Connecting", "errno": 2003, "alias": "ci", "age": 2},
            "r2": {"master": "m", "io": "Connecting", "errno": 2003, "alias": "ci", "age": 2},
        },
        "records": [("m:3306", "ci", "r1:3306", 7, 0.5)],
        "clusters": {"m:3306": ("ci", ["m:3306", "r1:3306", "r2:3306"])},
        "find": {"ci": "m:3306"},
        "master": {"m:3306": "r1:3306"},
    },
    {
        "id": "a record older than the tree does not override it",
        "instances": {
            "m": {"alias": "ci", "read_only": False},
            "r1": {"master": "m", "alias": "ci"},
        },
        "records": [("m:3306", "ci", "r1:3306", 7, 30)],
        "clusters": {"m:3306": ("ci", ["m:3306", "r1:3306"])},
        "find": {"ci": "m:3306"},
        "master": {"m:3306": "m:3306"},
    },
    {
        "id": "no alias query, after failover: the old name reaches the new cluster",
        "instances": {
            "m": {"reachable": False, "read_only": False},
            "r1": {"read_only": False},
            "r2": {"master": "r1"},
        },
        "records": [("m:3306", "m:3306", "r1:3306", 7)],
        "clusters": {"r1:3306": ("r1:3306", ["m:3306", "r1:3306", "r2:3306"])},
        "find": {"m:3306": "r1:3306", "r1:3306": "r1:3306", "r2": "r1:3306"},
        "master": {"r1:3306": "r1:3306"},
    },
    {
        "id": "no alias query, takeover then forced failover back: the live old master keeps its name",
        "instances": {
            "a": {"read_only": False},
            "c": {"master": "a"},
            "b": {"read_only": True},
        },
        "records": [("a:3306", "a:3306", "b:3306", 1), ("b:3306", "b:3306", "a:3306", 2)],
        "clusters": {"a:3306": ("a:3306", ["a:3306", "c:3306"]), "b:3306": ("b:3306", ["b:3306"])},
        "find": {"a:3306": "a:3306", "b:3306": "b:3306", "c": "a:3306"},
        "master": {"a:3306": "a:3306", "b:3306": "b:3306"},
    },
    {
        "id": "co-master ring: the writable co-master is the master",
        "instances": {
            "a": {"master": "b", "alias": "ring", "read_only": True},
            "b": {"master": "a", "alias": "ring", "read_only": False},
            "c": {"master": "b", "alias": "ring"},
        },
        "records": [],
        "clusters": {"a:3306": ("ring", ["a:3306", "b:3306", "c:3306"])},
        "find": {"ring": "a:3306", "c": "a:3306"},
        "master": {"a:3306": "b:3306"},
    },
]


def _record(cluster: str, alias: str, master: str, epoch: int, age: float = 10.0) -> MasterRecord:
    """A record written `age` seconds before NOW (default: before every probe of the case)."""
    return MasterRecord(
        cluster=cluster,
        alias=alias,
        master=InstanceKey.parse(master),
        epoch=epoch,
        updated_at=NOW - timedelta(seconds=age),
    )


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_directory(case: dict[str, Any]) -> None:
    states, _, _ = build_case({"instances": case["instances"]})
    records = [_record(*r) for r in case["records"]]
    directory = follow_masters(group_clusters(states), records, NOW, STALE)

    shown = {v.name: (v.alias, [str(s.key) for s in v.instances]) for v in directory.views}
    assert shown == {name: (alias, sorted(members)) for name, (alias, members) in case["clusters"].items()}
    aliases = [v.alias for v in directory.views]
    assert len(aliases) == len(set(aliases)), "an alias names exactly one cluster"

    for name, expected in case["find"].items():
        found = directory.find(name)
        assert (found.name if found else None) == expected, name

    for cluster, expected in case["master"].items():
        view = directory.find(cluster)
        assert view is not None
        master = directory.master(view, NOW, STALE)
        assert (str(master.key) if master else None) == expected, cluster
        if master is not None:
            assert master.is_valid(NOW, STALE), "a dead server is never returned as the master"


def test_names_of_lists_the_names_before_failovers() -> None:
    states, _, _ = build_case({"instances": AFTER_FAILOVER})
    directory = follow_masters(group_clusters(states), [_record("m:3306", "ci", "r1:3306", 7)], NOW, STALE)
    view = directory.find("ci")
    assert view is not None
    assert directory.names_of(view) == ["r1:3306", "ci", "m:3306"]


def test_untouched_views_are_the_same_objects() -> None:
    states, _, _ = build_case({"instances": {"a": {"alias": "x"}, "b": {"master": "a", "alias": "x"}}})
    views = group_clusters(states)
    assert follow_masters(views, [], NOW, STALE).views == tuple(views)
    assert tops(views[0])[0].key == InstanceKey.parse("a")
