"""Probe a real 4-node MariaDB sandbox and check every snapshot against what the servers say."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import SecretStr

from libs.errors import ProbeError
from libs.models import Flavor, InstanceKey, IOThreadState, PromotionRule
from libs.mysql import ConnectionPool, Credentials, ProbeSettings, probe, require_reachable
from libs.sandbox import SANDBOX_DB, Sandbox
from libs.sandbox.server import free_port

REPLICAS = ("replica1", "replica2", "replica3")


async def test_probe_every_instance_matches_the_servers(sandbox4: Sandbox) -> None:
    pool = ConnectionPool()
    try:
        for name in sandbox4.names:
            snap = await probe(sandbox4.key(name), sandbox4.topology_creds, pool=pool, prober="t")
            (var,) = await sandbox4.sql(
                name,
                "SELECT @@server_id AS id, @@read_only AS ro, @@version AS v, @@gtid_current_pos AS cur, "
                "@@gtid_slave_pos AS sp, @@gtid_binlog_pos AS bp, @@log_bin AS lb, @@hostname AS h",
            )
            (binlog,) = await sandbox4.sql(name, "SHOW MASTER STATUS")
            assert snap.reachable and not snap.partial and snap.error is None, snap.error
            assert snap.key == sandbox4.key(name)
            assert snap.prober == "t"
            assert snap.server_id == var["id"]
            assert snap.read_only is bool(var["ro"])
            assert snap.version == var["v"] and snap.flavor is Flavor.MARIADB
            assert snap.hostname == var["h"] and snap.report_host == "127.0.0.1"
            assert snap.server_uuid is None  # MariaDB has none
            assert snap.log_bin and snap.log_slave_updates and snap.binlog_format == "ROW"
            assert snap.binlog_row_image == "FULL"
            assert (snap.gtid_current_pos, snap.gtid_slave_pos, snap.gtid_binlog_pos) == (
                var["cur"],
                var["sp"],
                var["bp"],
            )
            assert snap.gtid_mode == "ON"
            assert snap.gtid_position == var["cur"]
            assert (snap.binlog_file, snap.binlog_pos) == (binlog["File"], binlog["Position"])
            assert snap.uptime_seconds is not None and snap.uptime_seconds >= 0
            assert 0 < snap.latency_ms < 2000
            assert not snap.semi_sync.master_enabled and not snap.semi_sync.replica_enabled
            if name == "master":
                assert snap.replication is None and not snap.is_replica
                assert not snap.read_only
                assert set(snap.replicas) == {sandbox4.key(r) for r in REPLICAS}
            else:
                rep = snap.replication
                assert rep is not None
                assert rep.master == sandbox4.key("master")
                assert rep.io_state is IOThreadState.YES and rep.sql_running
                assert rep.master_server_id == 1
                assert rep.using_gtid == "Slave_Pos"
                assert rep.last_io_errno == 0 and rep.last_sql_errno == 0
                assert rep.sql_delay == 0
                assert rep.heartbeat_period == 1.0 and rep.received_heartbeats is not None
                assert rep.received_mark is not None
                assert snap.read_only
                assert snap.replicas == ()
                assert snap.replication_lag_seconds == rep.seconds_behind_master
        assert len(pool) == 4  # one connection per instance
    finally:
        pool.close()


async def test_gtid_positions_advance_after_a_write(sandbox4: Sandbox) -> None:
    pool = ConnectionPool()
    creds = sandbox4.topology_creds
    try:
        before = {n: await probe(sandbox4.key(n), creds, pool=pool) for n in sandbox4.names}
        await sandbox4.sql("master", f"INSERT INTO {SANDBOX_DB}.marker VALUES (100, 'advance')")
        (row,) = await sandbox4.sql("master", "SELECT @@gtid_binlog_pos AS p")
        for r in REPLICAS:
            await sandbox4.wait_gtid(r, row["p"], within=10)
        after = {n: await probe(sandbox4.key(n), creds, pool=pool) for n in sandbox4.names}
    finally:
        await sandbox4.sql("master", f"DELETE FROM {SANDBOX_DB}.marker WHERE id = 100")
        pool.close()
    m0, m1 = before["master"], after["master"]
    assert m1.gtid_binlog_pos == row["p"] != m0.gtid_binlog_pos
    seq = lambda pos: int(pos.rsplit("-", 1)[1])  # noqa: E731
    assert seq(m1.gtid_binlog_pos) == seq(m0.gtid_binlog_pos) + 1
    assert m1.binlog_pos > m0.binlog_pos
    for r in REPLICAS:
        assert after[r].gtid_slave_pos == m1.gtid_binlog_pos != before[r].gtid_slave_pos
        rep = after[r].replication
        assert rep is not None and rep.read_master_log_pos == m1.binlog_pos


async def test_an_idle_masters_heartbeats_move_the_replicas_received_mark(sandbox4: Sandbox) -> None:
    """Nothing is written, yet every replica hears from the master each heartbeat period (1 s): that is
    what tells an idle master from a hung one."""
    pool = ConnectionPool()
    try:
        first = await probe(sandbox4.key("replica1"), sandbox4.topology_creds, pool=pool)
        await asyncio.sleep(2.2)
        second = await probe(sandbox4.key("replica1"), sandbox4.topology_creds, pool=pool)
    finally:
        pool.close()
    a, b = first.replication, second.replication
    assert a is not None and b is not None
    assert (a.read_master_log_pos, a.gtid_io_pos) == (b.read_master_log_pos, b.gtid_io_pos)
    assert a.received_heartbeats is not None and b.received_heartbeats is not None
    assert b.received_heartbeats >= a.received_heartbeats + 1
    assert a.received_mark != b.received_mark


async def test_stopped_sql_thread_shows_in_the_snapshot(sandbox4: Sandbox) -> None:
    key = sandbox4.key("replica3")
    await sandbox4.sql("replica3", "STOP SLAVE SQL_THREAD")
    try:
        snap = await probe(key, sandbox4.topology_creds)
        rep = snap.replication
        assert snap.reachable and rep is not None
        assert rep.sql_running is False
        assert rep.io_state is IOThreadState.YES
        assert not rep.replicating
    finally:
        await sandbox4.sql("replica3", "START SLAVE SQL_THREAD")
    await sandbox4.wait_replicating("replica3")
    snap = await probe(key, sandbox4.topology_creds)
    assert snap.replication is not None and snap.replication.replicating


async def test_wrong_password_is_an_unreachable_snapshot_without_the_password(sandbox4: Sandbox) -> None:
    secret = "Not-The-Password-42"
    creds = Credentials(user="baton", password=SecretStr(secret))
    snap = await probe(sandbox4.key("master"), creds, pool=ConnectionPool())
    assert not snap.reachable and not snap.partial
    assert snap.error_code == 1045
    assert snap.error is not None and "Access denied" in snap.error
    assert "\n" not in snap.error
    assert secret not in snap.model_dump_json()
    assert secret not in repr(creds) and secret not in str(creds)


async def test_unreachable_seed_port_gives_2003_quickly_and_a_one_line_error() -> None:
    key = InstanceKey(host="127.0.0.1", port=free_port())  # nobody listens there
    started = time.perf_counter()
    snap = await probe(key, Credentials(user="baton"), ProbeSettings(connect_timeout=1, read_timeout=1))
    assert time.perf_counter() - started < 1.0
    assert not snap.reachable and snap.error_code == 2003
    assert snap.server_id is None and snap.replication is None
    with pytest.raises(ProbeError) as info:
        require_reachable(snap)
    message = str(info.value)
    assert message.startswith(f"cannot probe {key} [2003]: ") and "\n" not in message
    assert info.value.code == 2003


async def test_configurable_queries_and_failing_ones_record_nothing(sandbox4: Sandbox) -> None:
    settings = ProbeSettings(
        detect_data_center_query="SELECT 'dc-east'",
        detect_region_query="SELECT nonsense FROM nowhere",  # fails: records nothing
        detect_cluster_alias_query="SELECT 'orders';",  # trailing ';' tolerated
        detect_promotion_rule_query="SELECT CASE WHEN @@server_id = 2 THEN 'prefer' ELSE 'bogus' END",
        replication_lag_query="SELECT 7.5",
    )
    pool = ConnectionPool()
    try:
        master = await probe(sandbox4.key("master"), sandbox4.topology_creds, settings, pool=pool)
        replica = await probe(sandbox4.key("replica1"), sandbox4.topology_creds, settings, pool=pool)
    finally:
        pool.close()
    for snap in (master, replica):
        assert snap.reachable and not snap.partial
        assert snap.data_center == "dc-east"
        assert snap.region == ""
        assert snap.cluster_alias == "orders"
        assert snap.replication_lag_seconds == 7.5
    assert replica.promotion_rule is PromotionRule.PREFER
    assert master.promotion_rule is PromotionRule.NEUTRAL  # 'bogus' is not a rule


async def test_processlist_discovery_alternative(sandbox4: Sandbox) -> None:
    settings = ProbeSettings(discover_by_show_slave_hosts=False)
    snap = await probe(sandbox4.key("master"), sandbox4.topology_creds, settings, pool=ConnectionPool())
    # Binlog dump threads only tell the replica's host; the master's port is assumed (as orchestrator
    # does), which on a one-host sandbox collapses the three replicas into one key.
    assert snap.replicas == (InstanceKey(host="127.0.0.1", port=sandbox4.key("master").port),)


async def test_pooled_connection_is_reused_and_reopened_after_it_was_killed(sandbox4: Sandbox) -> None:
    settings = ProbeSettings(detect_data_center_query="SELECT CONNECTION_ID()")
    pool = ConnectionPool()
    key, creds = sandbox4.key("replica2"), sandbox4.topology_creds
    try:
        first = await probe(key, creds, settings, pool=pool)
        second = await probe(key, creds, settings, pool=pool)
        assert first.data_center and first.data_center == second.data_center  # same connection
        await sandbox4.sql("replica2", f"KILL {int(first.data_center)}")
        third = await probe(key, creds, settings, pool=pool)  # stale connection: retried at once
        assert third.reachable, third.error
        assert third.data_center != first.data_center
        assert len(pool) == 1
    finally:
        pool.close()


async def test_partial_probe_when_a_later_statement_is_denied(sandbox4: Sandbox) -> None:
    # A user that can read variables but not SHOW SLAVE HOSTS: the first query answers, a later fails.
    await sandbox4.script(
        "master",
        [
            "SET SESSION sql_log_bin = 0",
            "CREATE USER IF NOT EXISTS 'weak'@'%' IDENTIFIED BY 'weak-pw'",
            "GRANT SELECT, SLAVE MONITOR ON *.* TO 'weak'@'%'",
        ],
    )
    try:
        snap = await probe(
            sandbox4.key("master"),
            Credentials(user="weak", password=SecretStr("weak-pw")),
            pool=ConnectionPool(),
        )
    finally:
        await sandbox4.script("master", ["SET SESSION sql_log_bin = 0", "DROP USER 'weak'@'%'"])
    assert not snap.reachable and snap.partial
    assert snap.error_code == 1227 and snap.error and "privilege" in snap.error
    assert snap.server_id == 1 and snap.flavor is Flavor.MARIADB  # first row kept
