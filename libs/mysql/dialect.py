"""SQL dialects: which statements and column names a server speaks, chosen from its version string.

Pure (no I/O). MariaDB and MySQL before 8.0.22 speak the master/slave vocabulary; MySQL 8.0.22+ speaks
source/replica (`SHOW REPLICA STATUS` with `Source_*`/`Replica_*` columns, `SHOW REPLICAS`, `START/STOP
REPLICA`), `CHANGE REPLICATION SOURCE TO` from 8.0.23, and MySQL 8.2+ (removed in 8.4) replaces
`SHOW MASTER STATUS` with `SHOW BINARY LOG STATUS`. Every result row is normalized here into the one
`ReplicationStatus` the rest of Baton reads, so no caller ever branches on the flavor again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from libs.models import Flavor, InstanceKey, IOThreadState, ReplicationStatus

_VERSION_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)")
# MariaDB prefixes its handshake version with a fake "5.5.5-" so old clients do not choke.
_MARIADB_RPL_HACK = "5.5.5-"

Version = tuple[int, int, int]


def parse_version(version: str) -> tuple[Flavor, Version]:
    """`5.5.5-10.11.6-MariaDB-log` -> (MARIADB, (10, 11, 6)); `8.0.36` -> (MYSQL, (8, 0, 36)).

    Raises ValueError when the string holds no `X.Y.Z` triple."""
    text = version.strip()
    flavor = Flavor.MARIADB if "mariadb" in text.lower() else Flavor.MYSQL
    if flavor is Flavor.MARIADB and text.startswith(_MARIADB_RPL_HACK):
        text = text[len(_MARIADB_RPL_HACK) :]
    match = _VERSION_RE.search(text)
    if match is None:
        raise ValueError(f"unrecognised server version {version!r}")
    major, minor, patch = (int(g) for g in match.groups())
    return flavor, (major, minor, patch)


@dataclass(frozen=True, slots=True)
class Dialect:
    """The statements one server version understands. Build it with `dialect_for(version)`."""

    flavor: Flavor
    version: Version

    @property
    def is_mariadb(self) -> bool:
        return self.flavor is Flavor.MARIADB

    @property
    def replica_terms(self) -> bool:
        """MySQL 8.0.22+: SHOW REPLICA STATUS, START/STOP REPLICA, Source_*/Replica_* columns."""
        return not self.is_mariadb and self.version >= (8, 0, 22)

    @property
    def source_terms(self) -> bool:
        """MySQL 8.0.23+: CHANGE REPLICATION SOURCE TO ... SOURCE_*."""
        return not self.is_mariadb and self.version >= (8, 0, 23)

    @property
    def log_replica_updates_var(self) -> str:
        if not self.is_mariadb and self.version >= (8, 0, 26):
            return "log_replica_updates"
        return "log_slave_updates"

    # --- read statements -------------------------------------------------------------------------
    @property
    def show_replica_status(self) -> str:
        return "SHOW REPLICA STATUS" if self.replica_terms else "SHOW SLAVE STATUS"

    @property
    def show_replica_hosts(self) -> str:
        return "SHOW REPLICAS" if self.replica_terms else "SHOW SLAVE HOSTS"

    @property
    def show_binlog_status(self) -> str:
        if not self.is_mariadb and self.version >= (8, 2, 0):
            return "SHOW BINARY LOG STATUS"
        return "SHOW MASTER STATUS"

    @property
    def processlist_replicas(self) -> str:
        """Replica connections as binlog dump threads (the DiscoverByShowSlaveHosts=false path)."""
        return (
            "SELECT HOST FROM information_schema.PROCESSLIST "
            "WHERE COMMAND IN ('Binlog Dump', 'Binlog Dump GTID')"
        )

    @property
    def global_variables(self) -> tuple[str, ...]:
        """The `@@global.X` names the probe reads in one SELECT, in this order."""
        common = (
            "server_id",
            "hostname",
            "report_host",
            "version",
            "version_comment",
            "read_only",
            "log_bin",
            self.log_replica_updates_var,
            "binlog_format",
            "binlog_row_image",
        )
        if self.is_mariadb:
            # MariaDB has no server_uuid/super_read_only/gtid_mode; semi-sync is built in.
            return (
                *common,
                "gtid_current_pos",
                "gtid_slave_pos",
                "gtid_binlog_pos",
                "gtid_strict_mode",
                "rpl_semi_sync_master_enabled",
                "rpl_semi_sync_slave_enabled",
            )
        return (*common, "server_uuid", "super_read_only", "gtid_mode", "gtid_executed", "gtid_purged")

    @property
    def variables_query(self) -> str:
        return "SELECT " + ", ".join(f"@@global.{name} AS {name}" for name in self.global_variables)

    @property
    def semi_sync_variables_query(self) -> str | None:
        """MySQL's semi-sync is a plugin: its variables may not exist, so they are read with SHOW."""
        if self.is_mariadb:
            return None
        return "SHOW GLOBAL VARIABLES LIKE 'rpl\\_semi\\_sync\\_%'"

    @property
    def status_query(self) -> str:
        names: tuple[str, ...] = (
            "Uptime",
            "Rpl_semi_sync_master_status",
            "Rpl_semi_sync_master_clients",
            "Rpl_semi_sync_slave_status",
            "Rpl_semi_sync_source_status",
            "Rpl_semi_sync_source_clients",
            "Rpl_semi_sync_replica_status",
        )
        if self.is_mariadb:
            # The default connection's heartbeats (SHOW SLAVE STATUS has no heartbeat columns).
            names += ("Slave_heartbeat_period", "Slave_received_heartbeats")
        return "SHOW GLOBAL STATUS WHERE Variable_name IN (" + ", ".join(f"'{n}'" for n in names) + ")"

    @property
    def heartbeat_query(self) -> str | None:
        """MySQL 5.7.2+: the default channel's heartbeat period, heartbeat count and (8.0.2+) when the
        last transaction was queued, from performance_schema. None where the probe needs no extra
        statement (MariaDB: in `status_query`) or the server has no such tables. Optional: a failure (no
        privilege, performance_schema off) only leaves the heartbeat fields unknown."""
        if self.is_mariadb or self.version < (5, 7, 2):
            return None
        queued = "s.LAST_QUEUED_TRANSACTION_END_QUEUE_TIMESTAMP" if self.version >= (8, 0, 2) else "NULL"
        return (
            "SELECT c.HEARTBEAT_INTERVAL AS heartbeat_period, "
            "s.COUNT_RECEIVED_HEARTBEATS AS received_heartbeats, "
            f"{queued} AS last_queued_at "
            "FROM performance_schema.replication_connection_status s "
            "JOIN performance_schema.replication_connection_configuration c USING (CHANNEL_NAME) "
            "WHERE s.CHANNEL_NAME = ''"
        )

    # --- replication commands --------------------------------------------------------------------
    def _replica_word(self) -> str:
        return "REPLICA" if self.replica_terms else "SLAVE"

    def start_replica(self, thread: str | None = None) -> str:
        """`thread` is None (both), "IO_THREAD" or "SQL_THREAD"."""
        return self._threaded("START", thread)

    def stop_replica(self, thread: str | None = None) -> str:
        return self._threaded("STOP", thread)

    def _threaded(self, verb: str, thread: str | None) -> str:
        if thread not in (None, "IO_THREAD", "SQL_THREAD"):
            raise ValueError(f"unknown replication thread {thread!r}")
        base = f"{verb} {self._replica_word()}"
        return f"{base} {thread}" if thread else base

    @property
    def reset_replica_all(self) -> str:
        return f"RESET {self._replica_word()} ALL"

    def change_source(self, option: str) -> str:
        """`CHANGE MASTER TO <MASTER_option> = %s` / `CHANGE REPLICATION SOURCE TO <SOURCE_option> = %s`
        for one option (`DELAY`, `HOST`); the value is a driver parameter."""
        if option not in ("DELAY", "HOST"):
            raise ValueError(f"unknown replication source option {option!r}")
        if self.source_terms:
            return f"CHANGE REPLICATION SOURCE TO SOURCE_{option} = %s"
        return f"CHANGE MASTER TO MASTER_{option} = %s"

    def semi_sync_enabled_var(self, *, master: bool) -> str:
        """The global enabling semi-sync on the master / replica side (MySQL 8.0.26+: source/replica)."""
        if not self.is_mariadb and self.version >= (8, 0, 26):
            return "rpl_semi_sync_source_enabled" if master else "rpl_semi_sync_replica_enabled"
        return "rpl_semi_sync_master_enabled" if master else "rpl_semi_sync_slave_enabled"

    @property
    def skip_counter_var(self) -> str:
        if not self.is_mariadb and self.version >= (8, 0, 26):
            return "sql_replica_skip_counter"
        return "sql_slave_skip_counter"

    def change_master_gtid(
        self, master: InstanceKey, user: str, password: str, *, connect_retry: int = 1, heartbeat: float = 1.0
    ) -> tuple[str, tuple[Any, ...]]:
        """Repoint a replica at `master` with GTID auto-positioning.

        Returns (sql, params) with `%s` placeholders for every value: the host, user and password are
        never interpolated into the text, the numbers are validated ints/floats."""
        port = int(master.port)
        retry = int(connect_retry)
        beat = float(heartbeat)
        if self.source_terms:
            sql = (
                "CHANGE REPLICATION SOURCE TO SOURCE_HOST=%s, SOURCE_PORT=%s, SOURCE_USER=%s, "
                "SOURCE_PASSWORD=%s, SOURCE_CONNECT_RETRY=%s, SOURCE_HEARTBEAT_PERIOD=%s, "
                "SOURCE_AUTO_POSITION=1"
            )
        elif self.is_mariadb:
            sql = (
                "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, MASTER_PASSWORD=%s, "
                "MASTER_CONNECT_RETRY=%s, MASTER_HEARTBEAT_PERIOD=%s, MASTER_USE_GTID=slave_pos"
            )
        else:
            sql = (
                "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, MASTER_PASSWORD=%s, "
                "MASTER_CONNECT_RETRY=%s, MASTER_HEARTBEAT_PERIOD=%s, MASTER_AUTO_POSITION=1"
            )
        return sql, (master.host, port, user, password, retry, beat)

    # --- server-side time limits -----------------------------------------------------------------
    def time_limited(self, sql: str, seconds: float) -> str:
        """`sql` carrying a server-side execution limit of `seconds`, where this server has one.

        - MariaDB 10.1.2+: `SET STATEMENT max_statement_time=<s> FOR <sql>`. Accepted for every statement
          Baton sends (SELECT, SHOW, SET GLOBAL, STOP/START SLAVE, CHANGE MASTER, RESET SLAVE ALL); the
          server aborts the statement with 1969 where it waits in a killable way (a SELECT or
          MASTER_GTID_WAIT, `SET GLOBAL read_only` waiting for a table lock), not everywhere (STOP SLAVE
          waiting for the SQL thread runs on).
        - MySQL 5.7.8+: the `MAX_EXECUTION_TIME(<ms>)` optimizer hint, which applies to read-only SELECT
          statements only, so only a SELECT carries it.
        - Otherwise, and for every other MySQL statement: unchanged (only the client timeout applies)."""
        if seconds <= 0:
            return sql
        if self.is_mariadb:
            if self.version < (10, 1, 2):
                return sql
            return f"SET STATEMENT max_statement_time={seconds:.3f} FOR {sql}"
        head = sql.lstrip()
        if self.version < (5, 7, 8) or head[:7].upper() != "SELECT ":
            return sql
        millis = max(1, round(seconds * 1000))
        return f"SELECT /*+ MAX_EXECUTION_TIME({millis}) */ {head[7:]}"


def dialect_for(version: str) -> Dialect:
    """The dialect of a server from its version string (handshake or `@@version`)."""
    flavor, triple = parse_version(version)
    return Dialect(flavor=flavor, version=triple)


# --- row normalization ---------------------------------------------------------------------------

# Canonical (master/slave) column name -> the MySQL 8.0.22+ name. Rows are read trying both.
_REPLICA_COLUMNS: dict[str, str] = {
    "Master_Host": "Source_Host",
    "Master_Port": "Source_Port",
    "Master_Server_Id": "Source_Server_Id",
    "Master_UUID": "Source_UUID",
    "Slave_IO_Running": "Replica_IO_Running",
    "Slave_SQL_Running": "Replica_SQL_Running",
    "Seconds_Behind_Master": "Seconds_Behind_Source",
    "Master_Log_File": "Source_Log_File",
    "Read_Master_Log_Pos": "Read_Source_Log_Pos",
    "Relay_Master_Log_File": "Relay_Source_Log_File",
    "Exec_Master_Log_Pos": "Exec_Source_Log_Pos",
}


def _get(row: Mapping[str, Any], name: str) -> Any:
    if name in row:
        return row[name]
    alt = _REPLICA_COLUMNS.get(name)
    return row.get(alt) if alt else None


def _int(value: Any, default: int = 0) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _io_state(value: Any) -> IOThreadState:
    text = _str(value)
    try:
        return IOThreadState(text)
    except ValueError:
        return IOThreadState.NO


# The replication filter columns of SHOW SLAVE STATUS (orchestrator's HasReplicationFilters reads these).
FILTER_COLUMNS = (
    "Replicate_Do_DB",
    "Replicate_Ignore_DB",
    "Replicate_Do_Table",
    "Replicate_Ignore_Table",
    "Replicate_Wild_Do_Table",
    "Replicate_Wild_Ignore_Table",
)


def replication_filters(row: Mapping[str, Any]) -> str:
    """The replica's filters as one canonical text (`Replicate_Do_DB=a,b; ...`), "" when it has none."""
    values = {name: _str(row.get(name)).strip() for name in FILTER_COLUMNS}
    return "; ".join(f"{name}={value}" for name, value in values.items() if value)


def normalize_replication_row(row: Mapping[str, Any] | None) -> ReplicationStatus | None:
    """One `SHOW SLAVE STATUS` / `SHOW REPLICA STATUS` row (as a dict) -> `ReplicationStatus`.

    None (no row: not a replica, or `RESET SLAVE ALL` done) stays None. A row with an empty host (after
    a plain `RESET SLAVE`) gives a status whose `master` is None."""
    if not row:
        return None
    host = _str(_get(row, "Master_Host"))
    port = _int(_get(row, "Master_Port"))
    master = InstanceKey(host=host, port=port) if host and 0 < port <= 65535 else None
    behind = _get(row, "Seconds_Behind_Master")
    if "Using_Gtid" in row:  # MariaDB
        using_gtid = _str(row["Using_Gtid"]) or "No"
    else:
        using_gtid = "Yes" if _int(row.get("Auto_Position")) == 1 else "No"
    master_uuid = _str(_get(row, "Master_UUID")) or None
    return ReplicationStatus(
        master=master,
        master_server_id=_int(_get(row, "Master_Server_Id"), 0) or None,
        master_uuid=master_uuid,
        io_state=_io_state(_get(row, "Slave_IO_Running")),
        sql_running=_str(_get(row, "Slave_SQL_Running")) == "Yes",
        last_io_errno=_int(row.get("Last_IO_Errno")),
        last_io_error=_str(row.get("Last_IO_Error")),
        last_sql_errno=_int(row.get("Last_SQL_Errno")),
        last_sql_error=_str(row.get("Last_SQL_Error")),
        seconds_behind_master=None if behind is None or behind == "" else _int(behind),
        read_master_log_file=_str(_get(row, "Master_Log_File")),
        read_master_log_pos=_int(_get(row, "Read_Master_Log_Pos")),
        relay_master_log_file=_str(_get(row, "Relay_Master_Log_File")),
        exec_master_log_pos=_int(_get(row, "Exec_Master_Log_Pos")),
        relay_log_file=_str(row.get("Relay_Log_File")),
        relay_log_pos=_int(row.get("Relay_Log_Pos")),
        sql_delay=_int(row.get("SQL_Delay")),
        using_gtid=using_gtid,
        retrieved_gtid_set=_str(row.get("Retrieved_Gtid_Set")).replace("\n", ""),
        executed_gtid_set=_str(row.get("Executed_Gtid_Set")).replace("\n", ""),
        gtid_io_pos=_str(row.get("Gtid_IO_Pos")),
        replication_filters=replication_filters(row),
    )


def _float(value: Any) -> float:
    try:
        return float(_str(value) or 0)
    except ValueError:
        return 0.0


def normalize_heartbeats(
    replication: ReplicationStatus | None, status: Mapping[str, Any], row: Mapping[str, Any] | None
) -> ReplicationStatus | None:
    """`replication` with what its IO thread hears from the master: MariaDB's lower-cased status
    (`slave_heartbeat_period`, `slave_received_heartbeats`) or MySQL's `heartbeat_query` row. Without
    either the heartbeat fields stay unknown (period 0, count None)."""
    if replication is None:
        return None
    if row:
        period = _float(row.get("heartbeat_period"))
        count = row.get("received_heartbeats")
        queued = _str(row.get("last_queued_at"))
    elif "slave_received_heartbeats" in status:
        period = _float(status.get("slave_heartbeat_period"))
        count = status.get("slave_received_heartbeats")
        queued = ""
    else:
        return replication
    received = _int(count, -1)
    return replication.model_copy(
        update={
            "heartbeat_period": max(0.0, period),
            "received_heartbeats": received if received >= 0 else None,
            "last_queued_at": queued,
        }
    )


def normalize_replica_hosts(rows: Sequence[Mapping[str, Any]]) -> tuple[InstanceKey, ...]:
    """`SHOW SLAVE HOSTS` / `SHOW REPLICAS` rows -> replica keys (report_host:report_port), sorted.

    Rows without a usable host or port (replicas that set no report_host) are skipped."""
    keys: set[InstanceKey] = set()
    for row in rows:
        host = _str(row.get("Host"))
        port = _int(row.get("Port"))
        if host and 0 < port <= 65535:
            keys.add(InstanceKey(host=host, port=port))
    return tuple(sorted(keys))


def normalize_processlist_hosts(rows: Sequence[Mapping[str, Any]], port: int) -> tuple[InstanceKey, ...]:
    """Binlog-dump threads' client `HOST` (`10.0.0.5:53122`, `[::1]:40000`) -> replica keys.

    The client side port is ephemeral, so, like orchestrator, the replica is assumed to listen on the
    same port as this master (`port`). On a one-machine sandbox that assumption is wrong by design."""
    keys: set[InstanceKey] = set()
    for row in rows:
        text = _str(row.get("HOST") or row.get("Host"))
        if not text:
            continue
        if text.startswith("["):
            host = text[1 : text.find("]")] if "]" in text else ""
        elif text.count(":") == 1:
            host = text.rsplit(":", 1)[0]
        else:
            host = text
        if host:
            keys.add(InstanceKey(host=host, port=port))
    return tuple(sorted(keys))


def _on(value: Any) -> bool:
    return _str(value).upper() in ("1", "ON", "YES", "TRUE")


def normalize_semi_sync(variables: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
    """Semi-sync settings and status from lower-cased name->value maps, master/slave or source/replica
    names alike. Returns the fields of `SemiSyncState`."""

    def pick(source: Mapping[str, Any], *names: str) -> Any:
        for name in names:
            if name in source:
                return source[name]
        return None

    wait = pick(
        variables,
        "rpl_semi_sync_master_wait_for_slave_count",
        "rpl_semi_sync_source_wait_for_replica_count",
    )
    return {
        "master_enabled": _on(
            pick(variables, "rpl_semi_sync_master_enabled", "rpl_semi_sync_source_enabled")
        ),
        "master_status": _on(pick(status, "rpl_semi_sync_master_status", "rpl_semi_sync_source_status")),
        "master_clients": _int(pick(status, "rpl_semi_sync_master_clients", "rpl_semi_sync_source_clients")),
        "master_wait_for_replica_count": _int(wait, 1) if wait is not None else 1,
        "replica_enabled": _on(
            pick(variables, "rpl_semi_sync_slave_enabled", "rpl_semi_sync_replica_enabled")
        ),
        "replica_status": _on(pick(status, "rpl_semi_sync_slave_status", "rpl_semi_sync_replica_status")),
    }
