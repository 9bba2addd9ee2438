"""MySQL operations the failover needs beyond `libs.mysql.commands`, in both dialects.

- `binlog_gtid_position`: what a server has in its binary logs (MariaDB `@@gtid_binlog_pos`, MySQL
  `@@gtid_executed`), i.e. what a replica of it will have once caught up.
- `wait_gtid_once`: one bounded wait for a replica to have applied a position (MariaDB
  `MASTER_GTID_WAIT`, MySQL `WAIT_FOR_EXECUTED_GTID_SET`); callers loop in short slices so that the
  fence is checked between slices.
(Candidates for `libs/mysql/commands.py`; kept here so as not to edit a shared module.)
"""

from __future__ import annotations

from libs.errors import ReplicationCommandError
from libs.mysql.connection import MySQLConnection, translate


async def _scalar(conn: MySQLConnection, sql: str, params: tuple[object, ...] = ()) -> object:
    try:
        rows = await conn.fetch(sql, params or None)
    except Exception as exc:  # noqa: BLE001 - translated at the edge
        err = translate(exc)
        raise ReplicationCommandError(f"{sql.split('(')[0]} on {conn.key} failed: {err.message}") from None
    if not rows:
        return None
    return next(iter(rows[0].values()))


async def binlog_gtid_position(conn: MySQLConnection) -> str:
    sql = (
        "SELECT @@global.gtid_binlog_pos AS p"
        if conn.dialect.is_mariadb
        else "SELECT @@global.gtid_executed AS p"
    )
    value = await _scalar(conn, sql)
    return "" if value is None else (value.decode() if isinstance(value, bytes) else str(value))


async def wait_gtid_once(conn: MySQLConnection, position: str, seconds: float) -> bool:
    """True when `conn`'s server has applied `position` within `seconds`."""
    if not position:
        return True
    if conn.dialect.is_mariadb:
        value = await _scalar(conn, "SELECT MASTER_GTID_WAIT(%s, %s) AS r", (position, seconds))
        return value is not None and int(str(value)) == 0
    value = await _scalar(conn, "SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s) AS r", (position, seconds))
    return value is not None and int(str(value)) == 0


async def applied_gtid_position(conn: MySQLConnection) -> str:
    """What a replica has applied of what it replicated (MariaDB `@@gtid_slave_pos`, MySQL
    `@@gtid_executed`): the position a new source must have before the replica may follow it."""
    sql = (
        "SELECT @@global.gtid_slave_pos AS p"
        if conn.dialect.is_mariadb
        else "SELECT @@global.gtid_executed AS p"
    )
    value = await _scalar(conn, sql)
    return "" if value is None else (value.decode() if isinstance(value, bytes) else str(value))


async def prepare_demoted_master(conn: MySQLConnection) -> str:
    """Make a former master resume, as a replica, right after its own last transaction. MariaDB's
    `MASTER_USE_GTID=slave_pos` starts from `gtid_slave_pos`, which on a master that never replicated is
    empty or old: set it to what the master wrote (`gtid_binlog_pos`). MySQL's auto-position already
    uses `gtid_executed`. Returns the position set ("" on MySQL). Replication must be stopped."""
    if not conn.dialect.is_mariadb:
        return ""
    position = await binlog_gtid_position(conn)
    try:
        await conn.execute("SET GLOBAL gtid_slave_pos = %s", (position,))
    except Exception as exc:  # noqa: BLE001 - translated at the edge
        err = translate(exc)
        raise ReplicationCommandError(
            f"SET GLOBAL gtid_slave_pos on {conn.key} failed: {err.message}"
        ) from None
    return position
