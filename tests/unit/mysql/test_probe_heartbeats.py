"""The probe's MySQL heartbeat statement: where it sits in the batch and what a failure of it costs.

Only MariaDB runs on these machines, so the MySQL path is checked here on a scripted connection that
answers the batch the way a MySQL 8.0 server would (the statements themselves: test_dialect.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from libs.models import InstanceKey
from libs.mysql.connection import MySQLError, ProbeSettings, Row
from libs.mysql.dialect import Dialect, dialect_for
from libs.mysql.probe import _probe_on

KEY = InstanceKey(host="r1", port=3306)
VARIABLES: Row = {
    "server_id": 2,
    "hostname": "r1",
    "report_host": "r1",
    "version": "8.0.36",
    "version_comment": "MySQL",
    "read_only": 1,
    "log_bin": 1,
    "log_slave_updates": 1,
    "binlog_format": "ROW",
    "binlog_row_image": "FULL",
    "server_uuid": "u2",
    "super_read_only": 1,
    "gtid_mode": "ON",
    "gtid_executed": "u1:1-5",
    "gtid_purged": "",
}
REPLICA: Row = {
    "Source_Host": "m",
    "Source_Port": 3306,
    "Replica_IO_Running": "Yes",
    "Replica_SQL_Running": "Yes",
    "Read_Source_Log_Pos": 965,
    "Retrieved_Gtid_Set": "u1:1-5",
    "Auto_Position": 1,
}
HEARTBEATS: Row = {
    "heartbeat_period": 1.0,
    "received_heartbeats": 42,
    "last_queued_at": "2025-01-01 12:00:00",
}


class ScriptedConnection:
    """Answers a batch statement by statement, stopping (as a server does) at the first failure."""

    def __init__(self, dialect: Dialect, *, heartbeats: Sequence[Row] | MySQLError) -> None:
        self.dialect = dialect
        self.heartbeats = heartbeats
        self.batches: list[list[str]] = []

    def _answer(self, sql: str) -> list[Row] | MySQLError:
        d = self.dialect
        if sql == d.variables_query:
            return [VARIABLES]
        if sql == d.heartbeat_query:
            return self.heartbeats if isinstance(self.heartbeats, MySQLError) else list(self.heartbeats)
        if sql == d.show_replica_status:
            return [REPLICA]
        if sql == "SELECT 'dc2'":
            return [{"dc": "dc2"}]
        return []

    async def fetch_many(self, statements: Sequence[str]) -> list[list[Row] | MySQLError]:
        self.batches.append(list(statements))
        out: list[list[Row] | MySQLError] = []
        for sql in statements:
            answer = self._answer(sql)
            out.append(answer)
            if isinstance(answer, MySQLError):
                break
        return out


async def _probe(conn: ScriptedConnection) -> dict[str, Any]:
    settings = ProbeSettings(detect_data_center_query="SELECT 'dc2'")
    fields, error, first = await _probe_on(conn, KEY, settings)  # type: ignore[arg-type]
    assert error is None and first
    return fields


async def test_mysql_heartbeats_ride_in_the_same_round_trip() -> None:
    conn = ScriptedConnection(dialect_for("8.0.36"), heartbeats=[HEARTBEATS])
    fields = await _probe(conn)
    assert len(conn.batches) == 1, "one round trip"
    assert conn.dialect.heartbeat_query in conn.batches[0]
    rep = fields["replication"]
    assert (rep.heartbeat_period, rep.received_heartbeats, rep.last_queued_at) == (
        1.0,
        42,
        "2025-01-01 12:00:00",
    )
    assert rep.received_mark is not None
    assert fields["data_center"] == "dc2"


async def test_a_refused_heartbeat_statement_leaves_heartbeats_unknown_and_fails_nothing() -> None:
    denied = MySQLError(
        1142, "SELECT command denied to user 'baton' for table 'replication_connection_status'"
    )
    conn = ScriptedConnection(dialect_for("8.0.36"), heartbeats=denied)
    fields = await _probe(conn)
    rep = fields["replication"]
    assert (rep.heartbeat_period, rep.received_heartbeats, rep.received_mark) == (0.0, None, None)
    assert fields["data_center"] == "dc2", "the operator's query after it still ran (in a second trip)"
    assert len(conn.batches) == 2


async def test_no_channel_row_is_no_heartbeat_information() -> None:
    conn = ScriptedConnection(dialect_for("8.0.36"), heartbeats=[])
    rep = (await _probe(conn))["replication"]
    assert rep.received_heartbeats is None and rep.received_mark is None
