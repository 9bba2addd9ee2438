from __future__ import annotations

from typing import Any

import pytest

from libs.models import Flavor, InstanceKey, IOThreadState
from libs.mysql.dialect import (
    dialect_for,
    normalize_heartbeats,
    normalize_processlist_hosts,
    normalize_replica_hosts,
    normalize_replication_row,
    normalize_semi_sync,
    parse_version,
)


@pytest.mark.parametrize(
    ("version", "flavor", "triple"),
    [
        ("5.5.5-10.11.6-MariaDB-log", Flavor.MARIADB, (10, 11, 6)),
        ("10.11.19-MariaDB-0+deb12u1-log", Flavor.MARIADB, (10, 11, 19)),
        ("5.5.5-10.5.23-MariaDB", Flavor.MARIADB, (10, 5, 23)),
        ("8.0.36", Flavor.MYSQL, (8, 0, 36)),
        ("8.4.2", Flavor.MYSQL, (8, 4, 2)),
        ("5.7.44-log", Flavor.MYSQL, (5, 7, 44)),
        ("8.0.22-13", Flavor.MYSQL, (8, 0, 22)),  # Percona Server
    ],
)
def test_parse_version(version: str, flavor: Flavor, triple: tuple[int, int, int]) -> None:
    assert parse_version(version) == (flavor, triple)


def test_parse_version_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="unrecognised"):
        parse_version("banana")


# version -> replica status, replica hosts, binlog status, start, reset, change-master prefix, gtid clause
DIALECT_TABLE = [
    (
        "5.5.5-10.11.6-MariaDB-log",
        "SHOW SLAVE STATUS",
        "SHOW SLAVE HOSTS",
        "SHOW MASTER STATUS",
        "START SLAVE",
        "RESET SLAVE ALL",
        "CHANGE MASTER TO MASTER_HOST=%s",
        "MASTER_USE_GTID=slave_pos",
    ),
    (
        "5.7.44-log",
        "SHOW SLAVE STATUS",
        "SHOW SLAVE HOSTS",
        "SHOW MASTER STATUS",
        "START SLAVE",
        "RESET SLAVE ALL",
        "CHANGE MASTER TO MASTER_HOST=%s",
        "MASTER_AUTO_POSITION=1",
    ),
    (
        "8.0.21",
        "SHOW SLAVE STATUS",
        "SHOW SLAVE HOSTS",
        "SHOW MASTER STATUS",
        "START SLAVE",
        "RESET SLAVE ALL",
        "CHANGE MASTER TO MASTER_HOST=%s",
        "MASTER_AUTO_POSITION=1",
    ),
    (
        "8.0.22",
        "SHOW REPLICA STATUS",
        "SHOW REPLICAS",
        "SHOW MASTER STATUS",
        "START REPLICA",
        "RESET REPLICA ALL",
        "CHANGE MASTER TO MASTER_HOST=%s",  # CHANGE REPLICATION SOURCE TO arrived in 8.0.23
        "MASTER_AUTO_POSITION=1",
    ),
    (
        "8.0.36",
        "SHOW REPLICA STATUS",
        "SHOW REPLICAS",
        "SHOW MASTER STATUS",
        "START REPLICA",
        "RESET REPLICA ALL",
        "CHANGE REPLICATION SOURCE TO SOURCE_HOST=%s",
        "SOURCE_AUTO_POSITION=1",
    ),
    (
        "8.4.2",
        "SHOW REPLICA STATUS",
        "SHOW REPLICAS",
        "SHOW BINARY LOG STATUS",
        "START REPLICA",
        "RESET REPLICA ALL",
        "CHANGE REPLICATION SOURCE TO SOURCE_HOST=%s",
        "SOURCE_AUTO_POSITION=1",
    ),
]


@pytest.mark.parametrize(
    ("version", "status", "hosts", "binlog", "start", "reset", "change", "gtid"), DIALECT_TABLE
)
def test_dialect_choice(
    version: str, status: str, hosts: str, binlog: str, start: str, reset: str, change: str, gtid: str
) -> None:
    d = dialect_for(version)
    assert d.show_replica_status == status
    assert d.show_replica_hosts == hosts
    assert d.show_binlog_status == binlog
    assert d.start_replica() == start
    assert d.stop_replica() == start.replace("START", "STOP")
    assert d.start_replica("SQL_THREAD") == f"{start} SQL_THREAD"
    assert d.reset_replica_all == reset
    sql, params = d.change_master_gtid(InstanceKey.parse("db-2:3307"), "repl", "s3cr'et")
    assert sql.startswith(change)
    assert gtid in sql
    assert params == ("db-2", 3307, "repl", "s3cr'et", 1, 1.0)


def test_change_master_never_interpolates_values() -> None:
    evil = "x', MASTER_HOST='evil"
    for version in ("10.11.6-MariaDB", "8.0.36", "5.7.44"):
        sql, params = dialect_for(version).change_master_gtid(InstanceKey(host="h", port=1), evil, evil)
        assert evil not in sql and "evil" not in sql
        assert sql.count("%s") == len(params)


def test_unknown_thread_is_refused() -> None:
    with pytest.raises(ValueError, match="thread"):
        dialect_for("8.0.36").stop_replica("BOTH; DROP TABLE x")


@pytest.mark.parametrize(
    ("version", "present", "absent"),
    [
        (
            "10.11.6-MariaDB",
            ["gtid_current_pos", "gtid_slave_pos", "rpl_semi_sync_master_enabled"],
            ["server_uuid", "super_read_only"],
        ),
        (
            "8.0.36",
            ["server_uuid", "super_read_only", "gtid_executed", "log_replica_updates"],
            ["gtid_current_pos"],
        ),
        ("8.0.25", ["log_slave_updates"], ["log_replica_updates"]),
        ("5.7.44", ["server_uuid", "gtid_mode"], ["gtid_slave_pos"]),
    ],
)
def test_variables_query_per_flavor(version: str, present: list[str], absent: list[str]) -> None:
    d = dialect_for(version)
    q = d.variables_query
    assert q.startswith("SELECT @@global.server_id AS server_id")
    for name in present:
        assert f"@@global.{name} AS {name}" in q
    for name in absent:
        assert f"@@global.{name}" not in q
    assert (d.semi_sync_variables_query is None) == d.is_mariadb


MARIADB_ROW: dict[str, Any] = {
    "Slave_IO_State": "Waiting for master to send event",
    "Master_Host": "127.0.0.1",
    "Master_User": "repl",
    "Master_Port": 40001,
    "Connect_Retry": 1,
    "Master_Log_File": "mysql-bin.000001",
    "Read_Master_Log_Pos": 1298,
    "Relay_Log_File": "relay-bin.000002",
    "Relay_Log_Pos": 1597,
    "Relay_Master_Log_File": "mysql-bin.000001",
    "Slave_IO_Running": "Yes",
    "Slave_SQL_Running": "Yes",
    "Exec_Master_Log_Pos": 1298,
    "Seconds_Behind_Master": 0,
    "Last_IO_Errno": 0,
    "Last_IO_Error": "",
    "Last_SQL_Errno": 0,
    "Last_SQL_Error": "",
    "Master_Server_Id": 1,
    "Using_Gtid": "Slave_Pos",
    "Gtid_IO_Pos": "0-1-4",
    "SQL_Delay": 0,
}

MYSQL84_ROW: dict[str, Any] = {
    "Replica_IO_State": "Waiting for source to send event",
    "Source_Host": "db-1.dc1",
    "Source_User": "repl",
    "Source_Port": 3306,
    "Source_Log_File": "binlog.000007",
    "Read_Source_Log_Pos": 9000,
    "Relay_Log_File": "relay.000003",
    "Relay_Log_Pos": 420,
    "Relay_Source_Log_File": "binlog.000007",
    "Replica_IO_Running": "Connecting",
    "Replica_SQL_Running": "Yes",
    "Exec_Source_Log_Pos": 8000,
    "Seconds_Behind_Source": None,
    "Last_IO_Errno": 2003,
    "Last_IO_Error": "error connecting to source 'repl@db-1.dc1:3306' - retry-time: 60 retries: 1",
    "Last_SQL_Errno": 0,
    "Last_SQL_Error": "",
    "Source_Server_Id": 11,
    "Source_UUID": "3e11fa47-71ca-11e1-9e33-c80aa9429562",
    "SQL_Delay": 3600,
    "Retrieved_Gtid_Set": "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5",
    "Executed_Gtid_Set": "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-4,\n4b22:1-2",
    "Auto_Position": 1,
}

MYSQL57_ROW: dict[str, Any] = {
    "Master_Host": "10.0.0.5",
    "Master_Port": 3306,
    "Master_Log_File": "mysql-bin.000002",
    "Read_Master_Log_Pos": 150,
    "Relay_Master_Log_File": "mysql-bin.000002",
    "Exec_Master_Log_Pos": 150,
    "Slave_IO_Running": "No",
    "Slave_SQL_Running": "No",
    "Seconds_Behind_Master": None,
    "Last_IO_Errno": 0,
    "Last_SQL_Errno": 1062,
    "Last_SQL_Error": "Duplicate entry '1' for key 'PRIMARY'",
    "Master_Server_Id": 5,
    "Master_UUID": "aaaa-bbbb",
    "SQL_Delay": 0,
    "Auto_Position": 0,
    "Retrieved_Gtid_Set": "",
    "Executed_Gtid_Set": "",
}


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            MARIADB_ROW,
            {
                "master": InstanceKey(host="127.0.0.1", port=40001),
                "io_state": IOThreadState.YES,
                "sql_running": True,
                "replicating": True,
                "seconds_behind_master": 0,
                "using_gtid": "Slave_Pos",
                "gtid_io_pos": "0-1-4",
                "master_server_id": 1,
                "master_uuid": None,
                "relay_log_applied": True,
            },
        ),
        (
            MYSQL84_ROW,
            {
                "master": InstanceKey(host="db-1.dc1", port=3306),
                "io_state": IOThreadState.CONNECTING,
                "sql_running": True,
                "replicating": False,
                "seconds_behind_master": None,
                "last_io_errno": 2003,
                "using_gtid": "Yes",
                "master_server_id": 11,
                "master_uuid": "3e11fa47-71ca-11e1-9e33-c80aa9429562",
                "sql_delay": 3600,
                "read_master_log_pos": 9000,
                "exec_master_log_pos": 8000,
                "relay_log_applied": False,
                "executed_gtid_set": "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-4,4b22:1-2",
            },
        ),
        (
            MYSQL57_ROW,
            {
                "master": InstanceKey(host="10.0.0.5", port=3306),
                "io_state": IOThreadState.NO,
                "sql_running": False,
                "last_sql_errno": 1062,
                "using_gtid": "No",
                "master_uuid": "aaaa-bbbb",
            },
        ),
    ],
    ids=["mariadb", "mysql84", "mysql57"],
)
def test_normalize_replication_row(row: dict[str, Any], expected: dict[str, Any]) -> None:
    status = normalize_replication_row(row)
    assert status is not None
    for name, value in expected.items():
        assert getattr(status, name) == value, name


def test_no_row_is_not_a_replica() -> None:
    assert normalize_replication_row(None) is None
    assert normalize_replication_row({}) is None


def test_row_after_plain_reset_has_no_master() -> None:
    status = normalize_replication_row({**MARIADB_ROW, "Master_Host": "", "Slave_IO_Running": "No"})
    assert status is not None and status.master is None


def test_replica_hosts_mariadb_and_mysql84() -> None:
    mariadb = [
        {"Server_id": 3, "Host": "127.0.0.1", "Port": 40003, "Master_id": 1},
        {"Server_id": 2, "Host": "127.0.0.1", "Port": 40002, "Master_id": 1},
        {"Server_id": 4, "Host": "", "Port": 3306, "Master_id": 1},  # no report_host: skipped
    ]
    mysql = [{"Server_Id": 7, "Host": "db-7", "Port": 3306, "Source_Id": 1, "Replica_UUID": "u"}]
    assert normalize_replica_hosts(mariadb) == (
        InstanceKey(host="127.0.0.1", port=40002),
        InstanceKey(host="127.0.0.1", port=40003),
    )
    assert normalize_replica_hosts(mysql) == (InstanceKey(host="db-7", port=3306),)


def test_processlist_hosts_use_the_masters_port() -> None:
    rows = [{"HOST": "10.0.0.5:53122"}, {"HOST": "[::1]:40000"}, {"HOST": "db-9"}, {"HOST": ""}]
    assert normalize_processlist_hosts(rows, 3307) == (
        InstanceKey(host="10.0.0.5", port=3307),
        InstanceKey(host="::1", port=3307),
        InstanceKey(host="db-9", port=3307),
    )


@pytest.mark.parametrize(
    ("variables", "status", "expected"),
    [
        (  # MariaDB: @@global row + SHOW GLOBAL STATUS
            {"rpl_semi_sync_master_enabled": 1, "rpl_semi_sync_slave_enabled": 0},
            {"rpl_semi_sync_master_status": "ON", "rpl_semi_sync_master_clients": "3"},
            {"master_enabled": True, "master_status": True, "master_clients": 3, "replica_enabled": False},
        ),
        (  # MySQL 8.0.26+ plugin names
            {"rpl_semi_sync_source_enabled": "ON", "rpl_semi_sync_source_wait_for_replica_count": "2"},
            {"rpl_semi_sync_source_status": "OFF", "rpl_semi_sync_source_clients": "1"},
            {
                "master_enabled": True,
                "master_status": False,
                "master_clients": 1,
                "master_wait_for_replica_count": 2,
            },
        ),
        (  # MySQL replica with the old plugin
            {"rpl_semi_sync_slave_enabled": "ON"},
            {"rpl_semi_sync_slave_status": "ON"},
            {"master_enabled": False, "replica_enabled": True, "replica_status": True},
        ),
        ({}, {}, {"master_enabled": False, "master_wait_for_replica_count": 1, "replica_enabled": False}),
    ],
)
def test_normalize_semi_sync(
    variables: dict[str, Any], status: dict[str, Any], expected: dict[str, Any]
) -> None:
    got = normalize_semi_sync(variables, status)
    for name, value in expected.items():
        assert got[name] == value, name


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("10.11.6-MariaDB-log", None),  # in SHOW GLOBAL STATUS instead
        ("5.6.51-log", None),  # no performance_schema replication tables yet
        ("5.7.44-log", "NULL AS last_queued_at"),
        ("8.0.36", "s.LAST_QUEUED_TRANSACTION_END_QUEUE_TIMESTAMP AS last_queued_at"),
        ("8.4.2", "s.LAST_QUEUED_TRANSACTION_END_QUEUE_TIMESTAMP AS last_queued_at"),
    ],
)
def test_heartbeat_query_per_version(version: str, expected: str | None) -> None:
    sql = dialect_for(version).heartbeat_query
    if expected is None:
        assert sql is None
        return
    assert sql is not None
    assert sql == (
        "SELECT c.HEARTBEAT_INTERVAL AS heartbeat_period, "
        "s.COUNT_RECEIVED_HEARTBEATS AS received_heartbeats, "
        f"{expected} "
        "FROM performance_schema.replication_connection_status s "
        "JOIN performance_schema.replication_connection_configuration c USING (CHANNEL_NAME) "
        "WHERE s.CHANNEL_NAME = ''"
    )


def test_mariadb_reads_heartbeats_with_the_status() -> None:
    status = dialect_for("10.11.6-MariaDB-log").status_query
    assert "'Slave_heartbeat_period', 'Slave_received_heartbeats'" in status
    assert "Slave_received_heartbeats" not in dialect_for("8.0.36").status_query


_ROW = {"Master_Host": "m", "Master_Port": 3306, "Slave_IO_Running": "Yes", "Read_Master_Log_Pos": 965}


def test_normalize_heartbeats_mariadb_status() -> None:
    base = normalize_replication_row(_ROW)
    status = {"slave_heartbeat_period": "1.000", "slave_received_heartbeats": "3"}
    rep = normalize_heartbeats(base, status, None)
    assert rep is not None
    assert (rep.heartbeat_period, rep.received_heartbeats, rep.last_queued_at) == (1.0, 3, "")
    mark = rep.received_mark
    assert mark is not None
    # A heartbeat or an event moves the mark; nothing else about the row does.
    beat = normalize_heartbeats(base, {**status, "slave_received_heartbeats": "4"}, None)
    assert beat is not None and beat.received_mark != mark
    moved = normalize_replication_row({**_ROW, "Read_Master_Log_Pos": 1211})
    assert normalize_heartbeats(moved, status, None).received_mark != mark  # type: ignore[union-attr]
    lagging = normalize_replication_row({**_ROW, "Seconds_Behind_Master": 5, "Exec_Master_Log_Pos": 4})
    assert normalize_heartbeats(lagging, status, None).received_mark == mark  # type: ignore[union-attr]


def test_normalize_heartbeats_mysql_performance_schema_row() -> None:
    base = normalize_replication_row({**_ROW, "Retrieved_Gtid_Set": "u:1-5"})
    row = {"heartbeat_period": 2.5, "received_heartbeats": 17, "last_queued_at": "2025-01-01 12:00:00.123456"}
    rep = normalize_heartbeats(base, {}, row)
    assert rep is not None
    assert (rep.heartbeat_period, rep.received_heartbeats) == (2.5, 17)
    assert rep.last_queued_at == "2025-01-01 12:00:00.123456"
    later = normalize_heartbeats(base, {}, {**row, "last_queued_at": "2025-01-01 12:00:01.000001"})
    assert later is not None and later.received_mark != rep.received_mark


def test_heartbeats_unknown_or_off_give_no_mark() -> None:
    base = normalize_replication_row(_ROW)
    assert normalize_heartbeats(None, {"slave_received_heartbeats": "3"}, None) is None
    unknown = normalize_heartbeats(base, {}, None)
    assert unknown is base and unknown is not None
    assert (unknown.heartbeat_period, unknown.received_heartbeats, unknown.received_mark) == (0.0, None, None)
    off = normalize_heartbeats(
        base, {"slave_heartbeat_period": "0.000", "slave_received_heartbeats": "0"}, None
    )
    assert off is not None and off.heartbeat_period == 0 and off.received_mark is None
    garbage = normalize_heartbeats(base, {}, {"heartbeat_period": None, "received_heartbeats": None})
    assert garbage is not None and garbage.received_heartbeats is None and garbage.received_mark is None
