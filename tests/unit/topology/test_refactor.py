"""libs/topology/refactor.py: the refactoring decisions, table-driven, with orchestrator's words.

The fleet: M (master) → A, B, C (GTID replicas of M); variations are built per case."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from libs.models import Flavor, InstanceKey, InstanceSnapshot, IOThreadState, ReplicationStatus
from libs.topology import refactor
from libs.topology.refactor import Move, can_replicate_from

NOW = datetime(2026, 1, 1, tzinfo=UTC)
M, A, B, C = (InstanceKey(host=h, port=3306) for h in ("m", "a", "b", "c"))
IDS = {M: 1, A: 2, B: 3, C: 4}


def snap(key: InstanceKey, master: InstanceKey | None = None, **kw: Any) -> InstanceSnapshot:
    repl: dict[str, Any] = kw.pop("repl", {})
    replication = None
    if master is not None:
        fields: dict[str, Any] = {
            "master": master,
            "io_state": IOThreadState.YES,
            "sql_running": True,
            "seconds_behind_master": 0,
            "using_gtid": "Slave_Pos",
            "read_master_log_file": "bin.000002",
            "read_master_log_pos": 400,
        }
        replication = ReplicationStatus.model_validate({**fields, **repl})
    values: dict[str, Any] = {
        "key": key,
        "probed_at": NOW,
        "reachable": True,
        "server_id": IDS.get(key, 9),
        "version": "10.11.6-MariaDB-log",
        "flavor": Flavor.MARIADB,
        "read_only": master is not None,
        "log_bin": True,
        "log_slave_updates": True,
        "binlog_format": "ROW",
        "gtid_binlog_pos": "0-1-10",
        "gtid_current_pos": "0-1-10",
        "gtid_slave_pos": "0-1-10" if master is not None else "",
        "replication": replication,
    }
    values.update(kw)
    return InstanceSnapshot.model_validate(values)


def fleet(*snaps: InstanceSnapshot, **masters: InstanceKey | None) -> dict[InstanceKey, InstanceSnapshot]:
    """M → A, B, C unless `masters` says otherwise (`a=B`: A replicates from B); `snaps` replace."""
    wanted = {"a": M, "b": M, "c": M, **masters}
    out = {M: snap(M)}
    for name, key in (("a", A), ("b", B), ("c", C)):
        out[key] = snap(key, wanted[name])
    out.update({s.key: s for s in snaps})
    return out


# -- CanReplicateFrom, orchestrator's words ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("replica", "source", "words"),
    [
        (snap(A, M), snap(A, M), "instance cannot replicate from itself: a:3306"),
        (snap(A, M), snap(B, M, log_bin=False), "instance does not have binary logs enabled: b:3306"),
        (
            snap(A, M),
            snap(B, M, log_slave_updates=False),
            "instance does not have log_slave_updates enabled: b:3306",
        ),
        (snap(A, M), snap(M, log_slave_updates=False), None),  # a master needs no log_slave_updates
        (
            snap(A, M, version="10.6.1-MariaDB"),
            snap(B, M, version="10.11.6-MariaDB"),
            "instance a:3306 has version 10.6.1-MariaDB, which is lower than 10.11.6-MariaDB on b:3306 ",
        ),
        (snap(A, M, version="10.11.2-MariaDB"), snap(B, M, version="10.6.1-MariaDB"), None),
        (
            snap(A, M, binlog_format="STATEMENT"),
            snap(B, M, binlog_format="ROW"),
            "Cannot replicate from ROW binlog format on b:3306 to STATEMENT on a:3306",
        ),
        (snap(A, M, binlog_format="STATEMENT", log_slave_updates=False), snap(B, M), None),
        (snap(A, M, server_id=7), snap(B, M, server_id=7), "Identical server id: b:3306, a:3306 both have 7"),
        (snap(A, M), snap(B, M), None),
    ],
)
def test_can_replicate_from(replica: InstanceSnapshot, source: InstanceSnapshot, words: str | None) -> None:
    assert can_replicate_from(replica, source) == words


# -- plans ---------------------------------------------------------------------------------------------------
CASES: list[tuple[str, Any, refactor.MovePlan | str]] = [
    ("relocate below a sibling", lambda k: refactor.relocate(k, A, B), (Move(A, B),)),
    ("relocate onto its master: a repoint", lambda k: refactor.relocate(k, A, M), (Move(A, M),)),
    (
        "relocate below its own replica: a loop",
        lambda k: refactor.relocate(fleet(b=A), A, B),
        "b:3306 replicates (directly or not) from a:3306: relocating a:3306 below it would make a "
        "replication loop",
    ),
    ("relocate a master", lambda k: refactor.relocate(k, M, A), "instance is not a replica: m:3306"),
    (
        "relocate an unknown",
        lambda k: refactor.relocate(k, A, InstanceKey(host="x")),
        "instance x:3306 not found",
    ),
    (
        "relocate an unreachable target",
        lambda k: refactor.relocate({**k, B: snap(B, M, reachable=False)}, A, B),
        "b:3306: last check invalid",
    ),
    (
        "relocate a replica not using GTID",
        lambda k: refactor.relocate({**k, A: snap(A, M, repl={"using_gtid": "No"})}, A, B),
        "Instances a:3306, b:3306 not GTID compatible or not using GTID",
    ),
    (
        "relocate across flavors",
        lambda k: refactor.relocate({**k, B: snap(B, M, flavor=Flavor.MYSQL, version="8.0.36")}, A, B),
        "Instances a:3306, b:3306 not GTID compatible or not using GTID",
    ),
    (
        "move-up from an intermediate master",
        lambda k: refactor.move_up(fleet(a=B), A, max_lag_s=20),
        (Move(A, M),),
    ),
    (
        "move-up below the top",
        lambda k: refactor.move_up(k, A, max_lag_s=20),
        "master is not a replica itself: m:3306",
    ),
    ("move-up a master", lambda k: refactor.move_up(k, M, max_lag_s=20), "instance is not a replica: m:3306"),
    (
        "move-up a stopped replica",
        lambda k: refactor.move_up(
            {**fleet(a=B), A: snap(A, B, repl={"sql_running": False})}, A, max_lag_s=20
        ),
        "a:3306: instance is not replicating",
    ),
    (
        "move-up a lagging replica",
        lambda k: refactor.move_up(
            {**fleet(a=B), A: snap(A, B, repl={"seconds_behind_master": 99})}, A, max_lag_s=20
        ),
        "a:3306: lags too much",
    ),
    (
        "match-up ignores lag (GTID)",
        lambda k: refactor.move_up(
            {**fleet(a=B), A: snap(A, B, repl={"seconds_behind_master": 99})},
            A,
            max_lag_s=20,
            verb="match-up",
        ),
        (Move(A, M),),
    ),
    ("move-below a sibling", lambda k: refactor.move_below(k, A, B, max_lag_s=20), (Move(A, B),)),
    (
        "move-below a non-sibling",
        lambda k: refactor.move_below(fleet(b=C), A, B, max_lag_s=20),
        "instances are not siblings: a:3306, b:3306",
    ),
    ("take-master", lambda k: refactor.take_master(fleet(a=B), A), (Move(A, M), Move(B, A))),
    (
        "take-master of the top master",
        lambda k: refactor.take_master(k, A),
        "master is not a replica itself: m:3306",
    ),
    (
        "take-master of a co-master",
        lambda k: refactor.take_master({**k, M: snap(M, A)}, A),
        "m:3306 is co-master. Cannot take it.",
    ),
    (
        "make-co-master",
        lambda k: refactor.make_co_master(k, A, max_lag_s=20),
        (Move(M, A, demoted_master=True),),
    ),
    (
        "make-co-master of a writable replica",
        lambda k: refactor.make_co_master({**k, A: snap(A, M, read_only=False)}, A, max_lag_s=20),
        "instance a:3306 is not read-only; first make it read-only before making it co-master",
    ),
    (
        "make-co-master twice",
        lambda k: refactor.make_co_master({**k, M: snap(M, A)}, A, max_lag_s=20),
        "instance a:3306 is already co master of m:3306",
    ),
    (
        "make-co-master below an intermediate master",
        lambda k: refactor.make_co_master(fleet(a=B), A, max_lag_s=20),
        "master b:3306 already has known master: m:3306",
    ),
    ("take-siblings", lambda k: refactor.bulk(k, A, None, verb="take-siblings"), (Move(B, A), Move(C, A))),
    (
        "move-up-replicas",
        lambda k: refactor.bulk(fleet(b=A, c=A), A, None, verb="move-up-replicas"),
        (Move(B, M), Move(C, M)),
    ),
    (
        "relocate-replicas skips the target",
        lambda k: refactor.bulk(k, M, A, verb="relocate-replicas"),
        (Move(B, A), Move(C, A)),
    ),
    (
        "relocate-replicas with a pattern",
        lambda k: refactor.bulk(k, M, A, verb="relocate-replicas", pattern="^c"),
        (Move(C, A),),
    ),
    (
        "repoint-replicas in place",
        lambda k: refactor.bulk(k, M, None, verb="repoint-replicas"),
        (Move(A, M), Move(B, M), Move(C, M)),
    ),
    (
        "relocate-replicas where none may move",
        lambda k: refactor.bulk(
            {**k, B: snap(B, M, repl={"using_gtid": "No"})}, M, A, verb="relocate-replicas", pattern="^b"
        ),
        "Error on all operations: Instances b:3306, a:3306 not GTID compatible or not using GTID",
    ),
    (
        "regroup-replicas: the most advanced leads",
        lambda k: refactor.regroup_replicas(
            {
                **k,
                B: snap(B, M, gtid_slave_pos="0-1-12", gtid_binlog_pos="0-1-12", gtid_current_pos="0-1-12"),
            },
            M,
        ),
        (Move(A, B), Move(C, B)),
    ),
    (
        "move-equivalent",
        lambda k: refactor.move_equivalent(k, A, B),
        "No equivalent coordinates found for a:3306 replicating from m:3306 at :0 (Baton keeps no "
        "equivalence records: use relocate or move-gtid)",
    ),
    (
        "errant transactions travel with the replica",
        lambda k: refactor.relocate({**k, A: snap(A, M, gtid_binlog_pos="0-1-10,77-2-3")}, A, B),
        "a:3306 has errant GTIDs 77-2-3 (executed there, never on m:3306); not moved: resolve them first "
        "(gtid-errant-reset-master or gtid-errant-inject-empty)",
    ),
]


@pytest.mark.parametrize(("name", "decide", "want"), CASES, ids=[c[0] for c in CASES])
def test_plans(name: str, decide: Any, want: tuple[Move, ...] | str) -> None:
    plan = decide(fleet())
    if isinstance(want, str):
        assert plan.refused == want
        assert plan.moves == ()
    else:
        assert plan.refused is None, plan.refused
        assert plan.moves == want


def test_take_master_is_a_chain_and_names_what_it_touches() -> None:
    plan = refactor.take_master(fleet(a=B), A)
    assert plan.chain and plan.message == "a:3306 took its master"
    assert set(plan.touched) == {A, B, M}


def test_purge_refusal() -> None:
    known = fleet()
    assert refactor.purge_refusal(known, M, "bin.000002") is None  # replicas read bin.000002
    assert refactor.purge_refusal(known, M, "bin.000003") == (
        "Unsafe to purge binary logs on m:3306 up to bin.000003 because replica a:3306 has only applied "
        "up to bin.000002:400"
    )
    assert (
        refactor.purge_refusal(known, M, "x; DROP") == "purge-binary-logs: 'x; DROP' is not a binary log name"
    )


@pytest.mark.parametrize(
    ("io", "sql", "injected", "want"),
    [
        (
            IOThreadState.YES,
            True,
            "",
            [
                "stop slave io_thread;",
                "stop slave sql_thread;",
                "start slave io_thread;",
                "start slave sql_thread;",
            ],
        ),
        (
            IOThreadState.NO,
            True,
            "SET x=1",
            ["stop slave io_thread;", "stop slave sql_thread;", "SET x=1;", "start slave sql_thread;"],
        ),
        (IOThreadState.NO, False, "", ["stop slave io_thread;", "stop slave sql_thread;"]),
    ],
)
def test_restart_statements(io: IOThreadState, sql: bool, injected: str, want: list[str]) -> None:
    info = snap(A, M, repl={"io_state": io, "sql_running": sql})
    assert refactor.restart_statements(info, injected) == want
    assert refactor.restart_statements(info, "", replica_terms=True)[0] == "stop replica io_thread;"


def test_errant_fixes() -> None:
    errant = fleet(snap(A, M, gtid_binlog_pos="0-1-10,77-2-3"))
    assert refactor.errant_reset(errant, A) == refactor.ErrantFix(A, "77-2-3")
    assert refactor.errant_reset(fleet(), A).refused == (
        "gtid-errant-reset-master will not operate on a:3306 because no errant GTID is found"
    )
    with_replica = {**errant, C: snap(C, A)}
    assert refactor.errant_reset(with_replica, A).refused == (
        "gtid-errant-reset-master will not operate on a:3306 because it has 1 replicas. Expecting no replicas"
    )
    # a master has no errant GTID (it has no master to miss them): orchestrator's refusal
    assert refactor.errant_reset(errant, M).refused == (
        "gtid-errant-reset-master will not operate on m:3306 because no errant GTID is found"
    )
    assert refactor.errant_inject(errant, M).refused == (
        "gtid-errant-inject-empty will not operate on m:3306 because no errant GTID is found"
    )
    # MariaDB: logged on the top master of the cluster (rules: tests/unit/topology/test_errant_inject.py)
    assert refactor.errant_inject(errant, A) == refactor.ErrantFix(M, "77-2-3")
    below = fleet(snap(C, A, gtid_binlog_pos="0-1-10,9-4-1"), c=A)
    assert refactor.errant_inject(below, C) == refactor.ErrantFix(M, "9-4-1")
    foreign = fleet(snap(A, M, gtid_binlog_pos="0-1-10,77-9-3"))
    refused = refactor.errant_inject(foreign, A).refused
    assert refused is not None and "logged under server_id 9, not its own (2)" in refused
    top_down = {**below, M: snap(M, reachable=False)}  # judged against A, but nowhere to inject
    assert refactor.errant_inject(top_down, C).refused == (
        "gtid-errant-inject-empty found no reachable master for c:3306"
    )
    uuid_m, uuid_a = "00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-00000000000a"

    def mysql(key: InstanceKey, master: InstanceKey | None, executed: str) -> InstanceSnapshot:
        return snap(
            key,
            master,
            flavor=Flavor.MYSQL,
            version="8.0.36",
            gtid_mode="ON",
            gtid_executed=executed,
            server_uuid=uuid_m if key == M else uuid_a,
            repl={"using_gtid": "Yes"},
        )

    known = {M: mysql(M, None, f"{uuid_m}:1-10"), A: mysql(A, M, f"{uuid_m}:1-10,{uuid_a}:1-2")}
    assert refactor.errant_inject(known, A) == refactor.ErrantFix(M, f"{uuid_a}:1-2")
