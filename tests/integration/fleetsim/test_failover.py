"""The statements Baton's recovery sends (libs.mysql.replication through a FencedSession) move the model:
a failover runs against the simulator as against MariaDB."""

from __future__ import annotations

import asyncio
import time

from pydantic import SecretStr

from bench.fleetsim import ClusterShape
from libs.errors import ReplicationCommandError
from libs.models import InstanceKey, IOThreadState
from libs.mysql import ConnectionPool, Credentials, probe
from libs.mysql import replication as rpl
from libs.mysql.fenced import FencedSession, action_pool
from tests.integration.fleetsim.conftest import CREDS, FleetFactory, key

REPL = Credentials(user="repl", password=SecretStr("repl-pw"))


class Open:
    def check(self) -> None:
        return None


async def test_failover_statements_repoint_the_simulated_cluster(fleet_factory: FleetFactory) -> None:
    sim = await fleet_factory([ClusterShape(replicas=3)], write_rate=100.0, heartbeat_period=0.2)
    old, new, r2, r3 = list(sim.fleet)
    pool = action_pool(connect_timeout=2.0, statement_timeout=5.0)
    probes = ConnectionPool()

    def session(k: InstanceKey) -> FencedSession:
        return FencedSession(pool, k, CREDS, Open(), 5.0)

    try:
        sim.lag(r3.addr, 2.0)
        sim.kill(old.addr)
        s_new = session(key(new.addr))
        # a running replica refuses CHANGE MASTER, as MariaDB does
        try:
            await rpl.change_master_gtid(session(key(r2.addr)), key(new.addr), REPL)
        except ReplicationCommandError as exc:
            assert "1198" in str(exc) or "running slave" in str(exc)
        else:
            raise AssertionError("CHANGE MASTER on a running replica must fail")
        await rpl.stop_replication(s_new)
        await rpl.reset_replica_all(s_new)
        await rpl.set_read_only(s_new, False)
        assert not await rpl.read_only(s_new)
        promoted_at = await rpl.binlog_gtid_position(s_new)
        for r in (r2, r3):
            s = session(key(r.addr))
            await rpl.stop_replication(s)
            await rpl.change_master_gtid(s, key(new.addr), REPL, heartbeat=0.2)
            await rpl.start_replication(s)
            assert await rpl.wait_gtid(s, promoted_at, 5.0)
        await asyncio.sleep(0.3)
        top = await probe(key(new.addr), CREDS, pool=probes)
        assert top.reachable and top.replication is None and not top.read_only
        assert set(top.replicas) == {key(r2.addr), key(r3.addr)}
        assert top.gtid_binlog_pos.startswith(f"0-{new.server_id}-")  # it writes now, as itself
        for r in (r2, r3):
            snap = await probe(key(r.addr), CREDS, pool=probes)
            assert snap.replication is not None and snap.replication.master == key(new.addr)
            assert snap.replication.io_state is IOThreadState.YES and snap.replication.sql_running
            assert snap.replication.master_server_id == new.server_id
        # the old master comes back and is demoted under the new one
        await sim.revive(old.addr)
        s_old = session(key(old.addr))
        await rpl.set_read_only(s_old, True)
        await rpl.prepare_demoted_master(s_old)
        await rpl.change_master_gtid(s_old, key(new.addr), REPL)
        await rpl.start_replication(s_old)
        deadline = time.monotonic() + 10
        while True:
            back = await probe(key(old.addr), CREDS, pool=probes)
            if back.replication is not None and back.replication.io_state is IOThreadState.YES:
                break
            assert time.monotonic() < deadline, back.replication
            await asyncio.sleep(0.1)
        assert back.read_only and back.replication.master == key(new.addr)
        position = await rpl.binlog_gtid_position(s_new)
        assert await rpl.wait_gtid(s_old, position, 5.0)
        # a wait that cannot be met times out (-1), bounded
        far = f"0-{new.server_id}-999999999"
        assert not await rpl.wait_gtid(session(key(r2.addr)), far, 0.3)
    finally:
        pool.close()
        probes.close()
