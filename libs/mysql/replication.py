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
- `received_position`: what the IO thread received (MariaDB `Gtid_IO_Pos`, MySQL `Retrieved_Gtid_Set`).
- `apply_relay_log`: start a replica's SQL thread (lifting its MASTER_DELAY if asked) without MariaDB
  discarding the relay log (by relay log coordinates when both threads are stopped).
"""

from __future__ import annotations

import asyncio
import time

from libs.errors import ReplicationCommandError
from libs.models import InstanceKey, IOThreadState, ReplicationStatus
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


async def read_only_flags(s: FencedSession) -> tuple[bool, bool]:
    """(`read_only`, `super_read_only`) in one statement; MariaDB has no super_read_only (False)."""
    if (await s.dialect()).is_mariadb:
        return await read_only(s), False
    rows = await s.read("SELECT @@global.read_only AS r, @@global.super_read_only AS s")
    row = rows[0] if rows else {}
    return bool(int(_text(row.get("r")) or 0)), bool(int(_text(row.get("s")) or 0))


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


async def set_master_host(s: FencedSession, *, detach: bool) -> str:
    """detach: `MASTER_HOST='//host'` (an impossible host: the IO thread cannot connect; reversible),
    replication left stopped; reattach: the host back, replication started. orchestrator's
    detach-replica-master-host / reattach-replica-master-host (and MasterFailoverDetachReplicaMasterHost)."""
    status = await replication_status(s)
    if status is None or status.master is None:
        raise ReplicationCommandError(f"{s.key} has no master to {'detach' if detach else 'reattach'}")
    host = status.master.host
    new = f"//{host}" if detach else host.removeprefix("//")
    await stop_replication(s)
    await s.write(
        (await s.dialect()).change_source("HOST"), (new,), what=f"CHANGE MASTER TO MASTER_HOST {new}"
    )
    if not detach:
        await start_replication(s)
    return f"master host {host} -> {new}"


async def replication_status(s: FencedSession) -> ReplicationStatus | None:
    rows = await s.read((await s.dialect()).show_replica_status)
    return normalize_replication_row(rows[0] if rows else None)


async def set_semi_sync(s: FencedSession, *, master: bool, on: bool) -> str:
    """Semi-sync on or off on the master side or the replica side (master/slave or source/replica
    names). The replica side takes effect when the IO thread reconnects: a running IO thread is
    restarted (`STOP SLAVE IO_THREAD; START SLAVE IO_THREAD`, as orchestrator)."""
    var = (await s.dialect()).semi_sync_enabled_var(master=master)
    await s.write(f"SET GLOBAL {var} = {int(on)}")
    if not master:
        status = await replication_status(s)
        if status is not None and status.io_state is not IOThreadState.NO:
            await stop_replication(s, "IO_THREAD")
            await start_replication(s, "IO_THREAD")
            return f"{var}={int(on)}; IO thread restarted"
    return f"{var}={int(on)}"


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


def received_position(status: ReplicationStatus, *, mariadb: bool) -> str:
    """What the IO thread has received, applied or not: MariaDB `Gtid_IO_Pos`, MySQL
    `Retrieved_Gtid_Set` ("" when the replica does not replicate by GTID)."""
    return status.gtid_io_pos if mariadb else status.retrieved_gtid_set


async def apply_relay_log(s: FencedSession, status: ReplicationStatus, *, lift_delay: bool = False) -> str:
    """Start the SQL thread of a replica so that it applies the relay log it holds, without losing it;
    with `lift_delay` its MASTER_DELAY is set to 0 first. `status` is its current replication status.
    Returns what was done, for the audit ("" when the SQL thread already runs and no delay is lifted).

    MariaDB discards the relay log when the SQL thread starts while both threads are stopped (with GTID
    it then re-fetches from `gtid_slave_pos`, which a dead master cannot serve), and CHANGE MASTER
    (needed to change MASTER_DELAY, refused unless both threads are stopped) discards it too — unless
    relay log coordinates are given. So when its IO thread is stopped, or a delay must be lifted, the
    replica is switched to its SQL thread's own relay log coordinates (MASTER_USE_GTID=no, RELAY_LOG_FILE,
    RELAY_LOG_POS: the relay log is kept, `gtid_slave_pos` still advances as it applies; the next
    CHANGE MASTER, a repoint, restores GTID positioning) and its SQL thread started. While its IO thread
    runs (or tries to connect) a plain START SLAVE SQL_THREAD keeps the relay log. MySQL keeps relay logs
    across both: STOP SLAVE SQL_THREAD, CHANGE MASTER TO MASTER_DELAY = 0, START SLAVE SQL_THREAD.
    Raises ReplicationCommandError when the SQL thread stopped with an error (it cannot apply)."""
    if status.last_sql_errno:
        raise ReplicationCommandError(
            f"SQL thread of {s.key} stopped [{status.last_sql_errno}]: "
            f"{' '.join(status.last_sql_error.split())[:200]}"
        )
    delayed = lift_delay and status.sql_delay > 0
    if status.sql_running and not delayed:
        return ""
    dialect = await s.dialect()
    if not dialect.is_mariadb:
        if delayed:
            if status.sql_running:
                await stop_replication(s, "SQL_THREAD")
            word = "REPLICATION SOURCE" if dialect.source_terms else "MASTER"
            delay = "SOURCE_DELAY" if dialect.source_terms else "MASTER_DELAY"
            await s.write(f"CHANGE {word} TO {delay} = 0")
        await start_replication(s, "SQL_THREAD")
        return (
            f"SQL_Delay of {status.sql_delay} s lifted; SQL thread started"
            if delayed
            else "SQL thread started"
        )
    if status.io_state is not IOThreadState.NO and not delayed:
        await start_replication(s, "SQL_THREAD")
        return "SQL thread started (its IO thread runs: the relay log is kept)"
    if status.io_state is not IOThreadState.NO:
        await stop_replication(s, "IO_THREAD")
    if status.sql_running:
        await stop_replication(s, "SQL_THREAD")
    stopped = await replication_status(s)
    if stopped is None or not stopped.relay_log_file:
        raise ReplicationCommandError(f"{s.key} has no relay log coordinates to apply from")
    sql = "CHANGE MASTER TO MASTER_USE_GTID = no, RELAY_LOG_FILE = %s, RELAY_LOG_POS = %s"
    if delayed:
        sql += ", MASTER_DELAY = 0"
    where = f"{stopped.relay_log_file}:{stopped.relay_log_pos}"
    await s.write(
        sql, (stopped.relay_log_file, stopped.relay_log_pos), what=f"CHANGE MASTER TO relay log {where}"
    )
    await start_replication(s, "SQL_THREAD")
    lifted = f"SQL_Delay of {status.sql_delay} s lifted; " if delayed else ""
    return f"{lifted}SQL thread started at relay log {where} (kept: both threads were stopped)"


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
