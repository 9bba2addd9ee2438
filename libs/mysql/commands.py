"""Replication commands the recovery needs, in the instance's dialect: Baton's one MySQL adapter for acting.

Each helper takes a `FencedSession` (libs/mysql/fenced.py): every statement is fenced and bounded on its
own, so a command of several statements (read_only on MySQL, demoting a master) sends one statement per
fence check. Failures are `ReplicationCommandError`s naming the instance; passwords travel as
driver-escaped parameters and never appear in the error text.

- `binlog_gtid_position`: what a server has in its binary logs (MariaDB `@@gtid_binlog_pos`, MySQL
  `@@gtid_executed`), i.e. what a replica of it will have once caught up.
- `applied_gtid_position`: what a replica has applied of what it replicated.
- `wait_gtid`: ONE bounded wait for a replica to have applied a position (MariaDB `MASTER_GTID_WAIT`,
  MySQL `WAIT_FOR_EXECUTED_GTID_SET`); callers loop in slices shorter than the lease TTL, so the fence
  is checked between slices.
"""

from __future__ import annotations

import asyncio
import time

from libs.errors import ReplicationCommandError
from libs.models import InstanceKey, ReplicationStatus
from libs.mysql.connection import Credentials
from libs.mysql.dialect import normalize_replication_row
from libs.mysql.fenced import FencedSession


def _text(value: object) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


async def stop_replication(s: FencedSession, thread: str | None = None) -> None:
    """`STOP SLAVE` / `STOP REPLICA` (optionally only IO_THREAD or SQL_THREAD)."""
    await s.write((await s.dialect()).stop_replica(thread))


async def start_replication(s: FencedSession, thread: str | None = None) -> None:
    await s.write((await s.dialect()).start_replica(thread))


async def reset_replica_all(s: FencedSession) -> None:
    """Forget the replication configuration entirely (the promoted master's last step)."""
    await s.write((await s.dialect()).reset_replica_all)


async def set_read_only(s: FencedSession, on: bool, *, super_read_only: bool = False) -> None:
    """`read_only` on/off. `super_read_only` (MySQL only; ignored on MariaDB) is set along when turning
    on and always cleared when turning off (MySQL refuses read_only=0 while super_read_only=1)."""
    mariadb = (await s.dialect()).is_mariadb
    value = 1 if on else 0
    stmts: list[str] = []
    if not mariadb and not on:
        stmts.append("SET GLOBAL super_read_only = 0")
    stmts.append(f"SET GLOBAL read_only = {value}")
    if not mariadb and on and super_read_only:
        stmts.append("SET GLOBAL super_read_only = 1")
    for sql in stmts:
        await s.write(sql)


async def read_only(s: FencedSession) -> bool:
    return bool(int(_text(await s.scalar("SELECT @@global.read_only AS r")) or 0))


async def change_master_gtid(
    s: FencedSession,
    master: InstanceKey,
    repl: Credentials,
    *,
    connect_retry: int = 1,
    heartbeat: float = 1.0,
) -> None:
    """Point the replica at `master` with GTID auto-positioning (replication must be stopped)."""
    secret = repl.password.get_secret_value()
    sql, params = (await s.dialect()).change_master_gtid(
        master, repl.user, secret, connect_retry=connect_retry, heartbeat=heartbeat
    )
    await s.write(sql, params, what=f"CHANGE MASTER TO {master}", secret=secret)


async def replication_status(s: FencedSession) -> ReplicationStatus | None:
    rows = await s.read((await s.dialect()).show_replica_status)
    return normalize_replication_row(rows[0] if rows else None)


async def binlog_gtid_position(s: FencedSession) -> str:
    mariadb = (await s.dialect()).is_mariadb
    sql = "SELECT @@global.gtid_binlog_pos AS p" if mariadb else "SELECT @@global.gtid_executed AS p"
    return _text(await s.scalar(sql))


async def applied_gtid_position(s: FencedSession) -> str:
    """What a replica has applied of what it replicated (MariaDB `@@gtid_slave_pos`, MySQL
    `@@gtid_executed`): the position a new source must have before the replica may follow it."""
    mariadb = (await s.dialect()).is_mariadb
    sql = "SELECT @@global.gtid_slave_pos AS p" if mariadb else "SELECT @@global.gtid_executed AS p"
    return _text(await s.scalar(sql))


async def wait_gtid(s: FencedSession, position: str, seconds: float) -> bool:
    """True when the server has applied `position` within `seconds` (one wait: keep it short)."""
    if not position:
        return True
    if (await s.dialect()).is_mariadb:
        sql, what = "SELECT MASTER_GTID_WAIT(%s, %s) AS r", "MASTER_GTID_WAIT"
    else:
        sql, what = "SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s) AS r", "WAIT_FOR_EXECUTED_GTID_SET"
    value = await s.scalar(sql, (position, seconds), what=what)
    return value is not None and int(_text(value)) == 0


async def prepare_demoted_master(s: FencedSession) -> str:
    """Make a former master resume, as a replica, right after its own last transaction. MariaDB's
    `MASTER_USE_GTID=slave_pos` starts from `gtid_slave_pos`, which on a master that never replicated is
    empty or old: set it to what the master wrote (`gtid_binlog_pos`). MySQL's auto-position already
    uses `gtid_executed`. Returns the position set ("" on MySQL). Replication must be stopped."""
    if not (await s.dialect()).is_mariadb:
        return ""
    position = await binlog_gtid_position(s)
    await s.write("SET GLOBAL gtid_slave_pos = %s", (position,), what="SET GLOBAL gtid_slave_pos")
    return position


async def wait_relay_log_applied(
    s: FencedSession, within: float, *, poll_interval: float = 0.05
) -> ReplicationStatus:
    """Poll until the SQL thread has applied everything the IO thread received (read coordinates ==
    exec coordinates). Returns the final status; raises ReplicationCommandError on timeout, when the
    instance is not a replica, or when the SQL thread stops with an error."""
    deadline = time.monotonic() + within
    while True:
        status = await replication_status(s)
        if status is None:
            raise ReplicationCommandError(f"{s.key} is not a replica: nothing to apply")
        if status.relay_log_applied:
            return status
        if not status.sql_running and status.last_sql_errno:
            raise ReplicationCommandError(
                f"SQL thread of {s.key} stopped [{status.last_sql_errno}]: "
                f"{' '.join(status.last_sql_error.split())[:200]}"
            )
        if time.monotonic() >= deadline:
            raise ReplicationCommandError(
                f"{s.key} did not apply its relay log within {within:g}s "
                f"(read {status.read_master_log_file}:{status.read_master_log_pos}, "
                f"exec {status.relay_master_log_file}:{status.exec_master_log_pos})"
            )
        await asyncio.sleep(poll_interval)
