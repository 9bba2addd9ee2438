"""Replication commands against a real sandbox, each statement through a `FencedSession`: a hand-driven
promotion, and their errors."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from libs.errors import ReplicationCommandError
from libs.models import InstanceKey
from libs.mysql import ConnectionPool, Credentials, probe
from libs.mysql.fenced import FencedSession
from libs.mysql.replication import (
    change_master_gtid,
    replication_status,
    reset_replica_all,
    set_read_only,
    start_replication,
    stop_replication,
    wait_relay_log_applied,
)
from libs.recovery.fence import StaticFence
from libs.sandbox import SANDBOX_DB
from libs.sandbox.spec import master_replicas
from tests.fixtures.sandbox import SandboxFactory


def _session(pool: ConnectionPool, key: InstanceKey, creds: Credentials) -> FencedSession:
    return FencedSession(pool, key, creds, StaticFence(), timeout=5.0)


async def test_promote_a_replica_and_repoint_its_sibling(sandbox_factory: SandboxFactory) -> None:
    sb = await sandbox_factory(master_replicas(2))
    pool = ConnectionPool()
    creds = sb.topology_creds
    try:
        await sb.sql("master", f"INSERT INTO {SANDBOX_DB}.marker VALUES (2, 'before')")
        conn = _session(pool, sb.key("replica1"), creds)
        await stop_replication(conn, "IO_THREAD")
        applied = await wait_relay_log_applied(conn, within=10)
        assert applied.relay_log_applied and not applied.io_running
        await stop_replication(conn)
        await reset_replica_all(conn)
        assert await replication_status(conn) is None
        await set_read_only(conn, False)
        conn = _session(pool, sb.key("replica2"), creds)
        await stop_replication(conn)
        await change_master_gtid(conn, sb.key("replica1"), sb.repl_creds)
        await start_replication(conn)
        await sb.wait_replicating("replica2", within=10)
        await sb.sql("replica1", f"INSERT INTO {SANDBOX_DB}.marker VALUES (3, 'after')")
        (pos,) = await sb.sql("replica1", "SELECT @@gtid_binlog_pos AS p")
        await sb.wait_gtid("replica2", pos["p"], within=10)
        promoted = await probe(sb.key("replica1"), creds, pool=pool)
        moved = await probe(sb.key("replica2"), creds, pool=pool)
    finally:
        pool.close()
    assert promoted.replication is None and not promoted.read_only
    assert moved.replication is not None and moved.replication.master == sb.key("replica1")
    assert moved.replication.replicating
    assert sb.key("replica2") in promoted.replicas
    rows = await sb.sql("replica2", f"SELECT note FROM {SANDBOX_DB}.marker WHERE id = 3")
    assert rows == [{"note": "after"}]


async def test_read_only_round_trip(sandbox_factory: SandboxFactory) -> None:
    sb = await sandbox_factory(master_replicas(0))
    pool = ConnectionPool()
    try:
        conn = _session(pool, sb.key("master"), sb.topology_creds)
        await set_read_only(conn, True, super_read_only=True)  # super_: ignored on MariaDB
        assert (await probe(sb.key("master"), sb.topology_creds)).read_only
        await set_read_only(conn, False)
        assert not (await probe(sb.key("master"), sb.topology_creds)).read_only
    finally:
        pool.close()


async def test_command_errors_name_the_instance_and_hide_the_password(
    sandbox_factory: SandboxFactory,
) -> None:
    sb = await sandbox_factory(master_replicas(1))
    pool = ConnectionPool()
    secret = "Hunter2-Secret"
    try:
        conn = _session(pool, sb.key("replica1"), sb.topology_creds)
        # CHANGE MASTER on a running replica is refused (1198).
        with pytest.raises(ReplicationCommandError) as info:
            await change_master_gtid(
                conn, sb.key("master"), Credentials(user="repl", password=SecretStr(secret))
            )
        message = str(info.value)
        assert str(sb.key("replica1")) in message and "[1198]" in message
        assert secret not in message and "\n" not in message
        conn = _session(pool, sb.key("master"), sb.topology_creds)
        with pytest.raises(ReplicationCommandError, match="not a replica"):
            await wait_relay_log_applied(conn, within=1)
    finally:
        pool.close()
