"""Replication commands the recovery needs, one statement family each, in the instance's dialect.

Each helper takes an open `MySQLConnection` (from `ConnectionPool.connection(...)`, whose dialect came
from the handshake) and raises `ReplicationCommandError` naming the instance on any failure; passwords
travel as driver-escaped parameters and never appear in the error text.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

from libs.errors import ReplicationCommandError
from libs.models import InstanceKey, ReplicationStatus
from libs.mysql.connection import Credentials, MySQLConnection, translate
from libs.mysql.dialect import normalize_replication_row

T = TypeVar("T")


async def _run(conn: MySQLConnection, what: str, action: Awaitable[T], secret: str = "") -> T:
    try:
        return await action
    except Exception as exc:  # noqa: BLE001 - every driver failure becomes one error type
        err = translate(exc, secret=secret)
        code = f" [{err.code}]" if err.code is not None else ""
        raise ReplicationCommandError(f"{what} on {conn.key} failed{code}: {err.message}") from None


async def stop_replication(conn: MySQLConnection, thread: str | None = None) -> None:
    """`STOP SLAVE` / `STOP REPLICA` (optionally only IO_THREAD or SQL_THREAD)."""
    sql = conn.dialect.stop_replica(thread)
    await _run(conn, sql, conn.execute(sql))


async def start_replication(conn: MySQLConnection, thread: str | None = None) -> None:
    sql = conn.dialect.start_replica(thread)
    await _run(conn, sql, conn.execute(sql))


async def reset_replica_all(conn: MySQLConnection) -> None:
    """Forget the replication configuration entirely (the promoted master's last step)."""
    sql = conn.dialect.reset_replica_all
    await _run(conn, sql, conn.execute(sql))


async def set_read_only(conn: MySQLConnection, on: bool, *, super_read_only: bool = False) -> None:
    """`read_only` on/off. `super_read_only` (MySQL only; ignored on MariaDB) is set along when turning
    on and always cleared when turning off (MySQL refuses read_only=0 while super_read_only=1)."""
    value = 1 if on else 0
    stmts: list[str] = []
    if not conn.dialect.is_mariadb and not on:
        stmts.append("SET GLOBAL super_read_only = 0")
    stmts.append(f"SET GLOBAL read_only = {value}")
    if not conn.dialect.is_mariadb and on and super_read_only:
        stmts.append("SET GLOBAL super_read_only = 1")
    for sql in stmts:
        await _run(conn, sql, conn.execute(sql))


async def change_master_gtid(
    conn: MySQLConnection,
    master: InstanceKey,
    repl: Credentials,
    *,
    connect_retry: int = 1,
    heartbeat: float = 1.0,
) -> None:
    """Point the replica at `master` with GTID auto-positioning (replication must be stopped)."""
    secret = repl.password.get_secret_value()
    sql, params = conn.dialect.change_master_gtid(
        master, repl.user, secret, connect_retry=connect_retry, heartbeat=heartbeat
    )
    what = f"CHANGE MASTER TO {master}"
    await _run(conn, what, conn.execute(sql, params), secret)


async def replication_status(conn: MySQLConnection) -> ReplicationStatus | None:
    sql = conn.dialect.show_replica_status
    rows = await _run(conn, sql, conn.fetch(sql))
    return normalize_replication_row(rows[0] if rows else None)


async def wait_relay_log_applied(
    conn: MySQLConnection, within: float, *, poll_interval: float = 0.05
) -> ReplicationStatus:
    """Poll until the SQL thread has applied everything the IO thread received (read coordinates ==
    exec coordinates). Returns the final status; raises ReplicationCommandError on timeout, when the
    instance is not a replica, or when the SQL thread stops with an error."""
    deadline = time.monotonic() + within
    while True:
        status = await replication_status(conn)
        if status is None:
            raise ReplicationCommandError(f"{conn.key} is not a replica: nothing to apply")
        if status.relay_log_applied:
            return status
        if not status.sql_running and status.last_sql_errno:
            raise ReplicationCommandError(
                f"SQL thread of {conn.key} stopped [{status.last_sql_errno}]: "
                f"{' '.join(status.last_sql_error.split())[:200]}"
            )
        if time.monotonic() >= deadline:
            raise ReplicationCommandError(
                f"{conn.key} did not apply its relay log within {within:g}s "
                f"(read {status.read_master_log_file}:{status.read_master_log_pos}, "
                f"exec {status.relay_master_log_file}:{status.exec_master_log_pos})"
            )
        await asyncio.sleep(poll_interval)
