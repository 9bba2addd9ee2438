"""Which clusters get a baton_masters record, and what `submit-masters-to-kv-stores` does with each
(libs/recovery/seeding.py, pure), plus the keeper's create-only writes on an in-memory book.

Each case is a fleet in the golden-case format (tests/unit/analysis/builder.py: "m" is m:3306, `age` the
latest probe's age in seconds, unreachable instances keep an older good snapshot), the records already
in baton_masters as `(cluster, alias, master, epoch)`, the seeds the leader creates as
`(key, cluster, alias, master)`, and the submit action per cluster name.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from libs.bus.subjects import kv_key
from libs.errors import LeadershipLost
from libs.models import InstanceKey, MasterRecord
from libs.recovery.fence import StaticFence
from libs.recovery.keeper import MasterKeeper
from libs.recovery.masters import MemoryMasterBook
from libs.recovery.seeding import Action, decide, kv_pairs, seeds
from libs.topology.view import group_clusters
from tests.unit.analysis.builder import NOW, build_case

pytestmark = pytest.mark.unit
STALE = timedelta(seconds=5)
EPOCH = 42

HEALTHY = {"m": {"read_only": False}, "r1": {"master": "m"}, "r2": {"master": "m"}}
SHOP = {"m": {"read_only": False, "alias": "shop"}, "r1": {"master": "m", "alias": "shop"}}

CASES: list[dict[str, Any]] = [
    {
        "id": "live writable master, no record: seeded under its cluster name",
        "instances": HEALTHY,
        "records": [],
        "seeds": [("m=3306", "m:3306", "m:3306", "m:3306")],
        "actions": {"m:3306": Action.CREATE},
    },
    {
        "id": "the alias keys the record",
        "instances": SHOP,
        "records": [],
        "seeds": [("shop", "m:3306", "shop", "m:3306")],
        "actions": {"m:3306": Action.CREATE},
    },
    {
        "id": "a record naming the master already: nothing",
        "instances": SHOP,
        "records": [("m:3306", "shop", "m:3306", 3)],
        "seeds": [],
        "actions": {"m:3306": Action.KEEP},
    },
    {
        "id": "a record naming a dead server: never replaced by a seed; submit replaces it",
        "instances": {**SHOP, "old": {"reachable": False, "read_only": True, "alias": "other"}},
        "records": [("old:3306", "shop", "old:3306", 3)],
        "seeds": [],
        "actions": {"m:3306": Action.REPLACE, "old:3306": Action.SKIP},
    },
    {
        "id": "a record with a newer epoch naming another master: untouched",
        "instances": SHOP,
        "records": [("x:3306", "shop", "x:3306", EPOCH + 10)],
        "seeds": [],
        "actions": {"m:3306": Action.SKIP},
    },
    {
        "id": "a cluster recorded under its old name after a failover: covered, nothing seeded",
        "instances": {
            "m": {"reachable": False, "read_only": False},
            "r1": {"read_only": False},
            "r2": {"master": "r1"},
        },
        "records": [("m:3306", "m:3306", "r1:3306", 7)],
        "seeds": [],
        "actions": {"m:3306": Action.SKIP, "r1:3306": Action.KEEP},
    },
    {
        "id": "master unreachable: nothing",
        "instances": {"m": {"reachable": False, "read_only": False}, "r1": {"master": "m"}},
        "records": [],
        "seeds": [],
        "actions": {"m:3306": Action.SKIP},
    },
    {
        "id": "master's latest probe too old: nothing",
        "instances": {"m": {"read_only": False, "age": 30}, "r1": {"master": "m"}},
        "records": [],
        "seeds": [],
        "actions": {"m:3306": Action.SKIP},
    },
    {
        "id": "master read-only: nothing",
        "instances": {"m": {"read_only": True}, "r1": {"master": "m"}},
        "records": [],
        "seeds": [],
        "actions": {"m:3306": Action.SKIP},
    },
    {
        "id": "co-master ring (no root): nothing",
        "instances": {
            "a": {"master": "b", "read_only": False},
            "b": {"master": "a", "read_only": False},
            "r1": {"master": "a"},
        },
        "records": [],
        "seeds": [],
        "actions": {"a:3306": Action.SKIP},
    },
    {
        "id": "two writable roots claiming one alias: neither",
        "instances": {
            "a": {"read_only": False, "alias": "shop"},
            "ra": {"master": "a", "alias": "shop"},
            "b": {"read_only": False, "alias": "shop"},
        },
        "records": [],
        "seeds": [],
        "actions": {"a:3306": Action.SKIP, "b:3306": Action.SKIP},
    },
    {
        "id": "a read-only stray with the same alias does not block the writable master",
        "instances": {
            "a": {"read_only": False, "alias": "shop"},
            "ra": {"master": "a", "alias": "shop"},
            "b": {"read_only": True, "alias": "shop"},
        },
        "records": [],
        "seeds": [("shop", "a:3306", "shop", "a:3306")],
        "actions": {"a:3306": Action.CREATE, "b:3306": Action.SKIP},
    },
    {
        "id": "a record naming a live writable master elsewhere is not taken over (and covers it)",
        "instances": {
            "a": {"read_only": False, "alias": "a"},
            "b": {"read_only": False, "alias": "shop"},
        },
        "records": [("a:3306", "shop", "a:3306", 3)],
        "seeds": [],
        "actions": {"a:3306": Action.KEEP, "b:3306": Action.SKIP},
    },
    {
        "id": "a root replicating from a server Baton does not know: nothing",
        "instances": {"m": {"master": "upstream", "read_only": False}},
        "records": [],
        "seeds": [],
        "actions": {"m:3306": Action.SKIP},
    },
    {
        "id": "several clusters: each one seeded under its own key",
        "instances": {
            "a": {"read_only": False, "alias": "shop"},
            "ra": {"master": "a", "alias": "shop"},
            "b": {"read_only": False},
            "rb": {"master": "b"},
        },
        "records": [],
        "seeds": [("shop", "a:3306", "shop", "a:3306"), ("b=3306", "b:3306", "b:3306", "b:3306")],
        "actions": {"a:3306": Action.CREATE, "b:3306": Action.CREATE},
    },
]


def _records(rows: list[tuple[str, str, str, int]]) -> dict[str, MasterRecord]:
    return {
        kv_key(alias): MasterRecord(
            cluster=cluster, alias=alias, master=InstanceKey.parse(master), epoch=epoch, updated_at=NOW
        )
        for cluster, alias, master, epoch in rows
    }


def _views(case: dict[str, Any]) -> list[Any]:
    states, _, _ = build_case({"instances": case["instances"]})
    return group_clusters(states)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_seeds(case: dict[str, Any]) -> None:
    got = seeds(_views(case), _records(case["records"]), NOW, STALE, EPOCH)
    assert [(kv_key(r.alias), r.cluster, r.alias, str(r.master)) for r in got] == case["seeds"]
    for record in got:
        assert record.epoch == EPOCH and record.recovery_uid is None and record.updated_at == NOW
        assert record.hostname == record.master.host


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_submit_actions(case: dict[str, Any]) -> None:
    decisions = decide(_views(case), _records(case["records"]), NOW, STALE, EPOCH)
    assert {d.view.name: d.action for d in decisions} == case["actions"]
    for d in decisions:
        assert (d.action is Action.SKIP) == bool(d.reason), d
        if d.action is Action.REPLACE:
            assert d.current is not None and d.record is not None
            assert (d.record.alias, d.record.cluster, d.record.epoch) == (
                d.current.alias,
                d.current.cluster,
                EPOCH,
            )


def test_kv_pairs_are_orchestrators_layout_plus_the_epoch() -> None:
    record = seeds(_views(CASES[1]), {}, NOW, STALE, EPOCH)[0]
    assert kv_pairs([record], "mysql/master") == [
        {"Key": "mysql/master/shop", "Value": "m:3306"},
        {"Key": "mysql/master/shop/hostname", "Value": "m"},
        {"Key": "mysql/master/shop/port", "Value": "3306"},
        {"Key": "mysql/master/shop/ipv4", "Value": ""},
        {"Key": "mysql/master/shop/ipv6", "Value": ""},
        {"Key": "mysql/master/shop/baton-epoch", "Value": str(EPOCH)},
    ]


async def test_keeper_seeds_once_never_over_a_record_and_not_while_busy() -> None:
    views = _views(CASES[-1])
    book = MemoryMasterBook(_records([("b:3306", "b:3306", "b:3306", EPOCH + 5)]))
    events: list[str] = []

    async def emit(event: Any, msg_id: str) -> None:
        events.append(msg_id)

    busy = [True]
    keeper = MasterKeeper(book, stale_after=STALE, emit=emit, busy=lambda: busy[0], clock=lambda: NOW)
    fence = StaticFence(EPOCH)
    assert await keeper.seed(views, fence) == []  # a recovery runs: nothing
    busy[0] = False
    created = await keeper.seed(views, fence)
    assert [r.alias for r in created] == ["shop"] and events == [f"masters.seeded:shop:{EPOCH}"]
    assert book.values["b=3306"].epoch == EPOCH + 5  # the existing record stands
    assert await keeper.seed(views, fence) == []  # once
    fence.lose()
    book.values.pop("shop")
    with pytest.raises(LeadershipLost):
        await keeper.seed(views, fence)
    assert "shop" not in book.values


async def test_keeper_submit_creates_replaces_and_reports() -> None:
    case = CASES[3]  # the record names a dead server
    book = MemoryMasterBook(_records(case["records"]))
    asked: list[int] = []

    async def republish() -> int:
        asked.append(1)
        return 1

    keeper = MasterKeeper(book, stale_after=STALE, republish=republish, clock=lambda: NOW)
    done = await keeper.submit(_views(case), StaticFence(EPOCH), by="op")
    assert [str(r.master) for r in done.submitted] == ["m:3306"] and asked == [1]
    assert book.values["shop"].master == InstanceKey.parse("m:3306") and book.values["shop"].epoch == EPOCH
    assert [d.view.name for d in done.skipped] == ["old:3306"]
    assert keeper.pairs(done)[0] == {"Key": "mysql/master/shop", "Value": "m:3306"}
    again = await keeper.submit(_views(case), StaticFence(EPOCH), cluster="m:3306")
    assert [d.view.name for d in again.kept] == ["m:3306"] and not again.written
