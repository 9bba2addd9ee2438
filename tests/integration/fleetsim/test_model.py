"""The pure model and statement parsing of the simulator, table-driven (no sockets)."""

from __future__ import annotations

import pytest

from bench.fleetsim.model import (
    DEAD,
    HUNG,
    UP,
    ClusterShape,
    Fleet,
    build_fleet,
    gtid_text,
    keep_shard,
    mixed_shapes,
    parse_gtid,
)
from bench.fleetsim.protocol import Ok, ResultSet, SQLError
from bench.fleetsim.sql import Session, like_regex, split_statements


def fleet(write_rate: float = 10.0, heartbeat_period: float = 1.0, slave_net_timeout: float = 60.0) -> Fleet:
    """1 master, a replica, and a replica of that replica (a chain); time starts at 0."""
    return build_fleet(
        [ClusterShape(replicas=2, chain=True)],
        now=0.0,
        base_port=30000,
        write_rate=write_rate,
        heartbeat_period=heartbeat_period,
        slave_net_timeout=slave_net_timeout,
    )


def rows(answer: object) -> list[dict[str, object]]:
    assert isinstance(answer, ResultSet)
    return [dict(zip((c.name for c in answer.columns), r, strict=True)) for r in answer.rows]


@pytest.mark.parametrize(
    ("at", "master_seq", "replica_seq"),
    [(0.0, 100, 100), (1.0, 110, 110), (2.55, 125, 125)],
)
def test_positions_follow_the_write_rate(at: float, master_seq: int, replica_seq: int) -> None:
    f = fleet(write_rate=10.0)
    m, r1, r2 = list(f)
    assert f.position(m, at) == (m.server_id, master_seq)
    assert f.position(r1, at)[1] == replica_seq
    assert f.position(r2, at)[1] == replica_seq  # chained under r1


@pytest.mark.parametrize(
    ("state", "at", "io", "errno", "beats"),
    [
        (UP, 5.0, "Yes", 0, 10),  # heartbeats every 0.5 s since 0
        (DEAD, 5.0, "Connecting", 2003, 4),  # stopped at the death (t=2)
        (HUNG, 5.0, "Yes", 0, 4),  # within slave_net_timeout: Yes, but silent
        (HUNG, 13.0, "Connecting", 2013, 4),  # after it (10 s)
    ],
)
def test_a_master_failure_as_its_replica_sees_it(
    state: str, at: float, io: str, errno: int, beats: int
) -> None:
    f = fleet(heartbeat_period=0.5, slave_net_timeout=10.0)
    m, r1, r2 = list(f)
    f.set_state(m, state, 2.0)
    view = f.io_view(r1, at)
    assert (view.running, view.errno, f.heartbeats(r1, at)) == (io, errno, beats)
    assert f.heartbeats(r2, at) == int(at / 0.5)  # under the intermediate master: still hearing it
    if state != UP:
        assert f.position(r1, at)[1] == 120  # frozen at the failure (t=2, 10 tx/s)
        assert f.seconds_behind(r1, at) == (0 if io == "Yes" else None)


def test_lag_delays_the_applied_position_not_the_received_one() -> None:
    f = fleet(write_rate=10.0)
    _, r1, _ = list(f)
    r1.lag_s = 3.0
    assert f.position(r1, 10.0)[1] == 170
    assert f.received_position(r1, 10.0)[1] == 200
    assert f.seconds_behind(r1, 10.0) == 3


@pytest.mark.parametrize(
    ("sql", "expect"),
    [
        ("SELECT @@global.read_only AS r", {"r": 1}),
        ("SELECT @@server_id", {"@@server_id": 2}),
        ("SELECT 'x' AS a, 42 AS b", {"a": "x", "b": 42}),
        ("SHOW GLOBAL STATUS LIKE 'Slave\\_running'", None),
        ("STOP SLAVE", Ok()),
        ("SET GLOBAL read_only = ON", Ok()),
    ],
)
def test_statements(sql: str, expect: object) -> None:
    f = fleet()
    _, r1, _ = list(f)
    out = Session(f, r1, clock=lambda: 1.0).execute(sql)
    if isinstance(expect, dict):
        assert rows(out) == [expect]
    elif expect is None:
        assert rows(out) == [{"Variable_name": "Slave_running", "Value": "ON"}]
    else:
        assert out == expect


@pytest.mark.parametrize(
    ("sql", "errno"),
    [
        ("SELECT @@global.server_uuid", 1193),  # MariaDB has none
        ("SELECT x FROM meta.dc", 1146),
        ("RESET SLAVE ALL", 1198),  # replication still running
        ("CHANGE MASTER TO MASTER_HOST='h'", 1198),
        ("EXPLODE", 1064),
    ],
)
def test_errors_a_mariadb_would_give(sql: str, errno: int) -> None:
    f = fleet()
    _, r1, _ = list(f)
    with pytest.raises(SQLError) as err:
        Session(f, r1, clock=lambda: 1.0).execute(sql)
    assert err.value.errno == errno


def test_parsing_helpers() -> None:
    assert split_statements("SELECT 1;\nSELECT ';' AS x ; ") == ["SELECT 1", "SELECT ';' AS x"]
    assert like_regex("rpl\\_semi\\_sync\\_%").match("rpl_semi_sync_master_enabled")
    assert not like_regex("rpl\\_semi").match("rplXsemi")
    assert parse_gtid("0-3-17") == (3, 17) and gtid_text((3, 17)) == "0-3-17" and gtid_text((0, 0)) == ""
    shapes = mixed_shapes(1000)
    assert sum(s.replicas + 1 for s in shapes) == 1000
    assert {s.replicas for s in shapes[:-1]} == set(range(2, 9)) and any(s.chain for s in shapes)


def test_shards_split_the_clusters_without_overlap() -> None:
    def full() -> Fleet:
        return build_fleet(mixed_shapes(200), now=0.0, base_port=30000)

    parts = [keep_shard(full(), i, 3) for i in range(3)]
    keys = [set(f.nodes) for f in parts]
    assert sum(len(k) for k in keys) == 200
    assert keys[0].isdisjoint(keys[1]) and keys[1].isdisjoint(keys[2]) and keys[0].isdisjoint(keys[2])
    for f in parts:  # whole clusters: every replica's master is served by the same process
        assert all(n.master in f.nodes for n in f if n.master is not None)
