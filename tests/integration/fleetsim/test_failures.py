"""A simulated instance dies, hangs, lags, breaks replication and comes back, as Baton's probe sees it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from bench.fleetsim import ClusterShape
from libs.models import InstanceSnapshot, IOThreadState
from libs.mysql import ConnectionPool, ProbeSettings, probe
from tests.integration.fleetsim.conftest import CREDS, FleetFactory, key

FAST = ProbeSettings(connect_timeout=1.0, read_timeout=1.0)


async def snap_until(
    pool: ConnectionPool, addr: tuple[str, int], ok: Callable[[InstanceSnapshot], bool], within: float = 30.0
) -> InstanceSnapshot:
    """Probe until `ok(snapshot)` holds (bounded polling); returns the last snapshot."""
    deadline = time.monotonic() + within
    while True:
        s = await probe(key(addr), CREDS, FAST, pool=pool)
        if ok(s) or time.monotonic() > deadline:
            return s
        await asyncio.sleep(0.2)


async def test_killed_master_is_unreachable_and_its_replicas_connecting(fleet_factory: FleetFactory) -> None:
    sim = await fleet_factory([ClusterShape(replicas=3, chain=True)], heartbeat_period=0.2)
    master, r1, r2, r3 = list(sim.fleet)  # r3 replicates from r1 (chain)
    pool = ConnectionPool(connect_timeout=1.0, read_timeout=1.0)
    try:
        before = await probe(key(r2.addr), CREDS, FAST, pool=pool)
        assert before.replication is not None and before.replication.io_state is IOThreadState.YES
        assert (await probe(key(master.addr), CREDS, FAST, pool=pool)).reachable
        sim.kill(master.addr)
        dead = await probe(key(master.addr), CREDS, FAST, pool=pool)
        assert not dead.reachable and dead.error_code == 2003, dead.error
        for r in (r1, r2):
            s = await probe(key(r.addr), CREDS, FAST, pool=pool)
            rep = s.replication
            assert s.reachable and rep is not None
            assert rep.io_state is IOThreadState.CONNECTING and rep.sql_running
            assert rep.last_io_errno == 2003 and "error reconnecting to master" in rep.last_io_error
            assert rep.seconds_behind_master is None
        # heartbeats stop on the master's replicas, not under the intermediate master
        a = await probe(key(r2.addr), CREDS, FAST, pool=pool)
        c = await probe(key(r3.addr), CREDS, FAST, pool=pool)
        await asyncio.sleep(1.0)
        b = await probe(key(r2.addr), CREDS, FAST, pool=pool)
        d = await probe(key(r3.addr), CREDS, FAST, pool=pool)
        assert a.replication and b.replication and c.replication and d.replication
        assert b.replication.received_heartbeats == a.replication.received_heartbeats
        assert (d.replication.received_heartbeats or 0) > (c.replication.received_heartbeats or 0)
        assert d.replication.io_state is IOThreadState.YES
        # it comes back: reachable again (Uptime from 0), replicas replicating and hearing it
        await sim.revive(master.addr)
        back = await snap_until(pool, master.addr, lambda s: s.reachable)
        assert back.reachable and (back.uptime_seconds or 0) < 5
        again = await snap_until(
            pool, r2.addr, lambda s: s.replication is not None and s.replication.io_state is IOThreadState.YES
        )
        assert again.replication is not None and again.replication.last_io_errno == 0
    finally:
        pool.close()


async def test_hung_master_times_the_probe_out_and_replicas_notice_after_slave_net_timeout(
    fleet_factory: FleetFactory,
) -> None:
    sim = await fleet_factory([ClusterShape(replicas=2)], heartbeat_period=0.2, slave_net_timeout=3.0)
    master, r1, _ = list(sim.fleet)
    pool = ConnectionPool(connect_timeout=1.0, read_timeout=1.0)
    fresh = ConnectionPool(connect_timeout=1.0, read_timeout=1.0)
    try:
        assert (await probe(key(master.addr), CREDS, FAST, pool=pool)).reachable  # pooled connection
        sim.hang(master.addr)
        hung_at = time.monotonic()
        started = time.monotonic()
        pooled = await probe(key(master.addr), CREDS, FAST, pool=pool)
        new = await probe(key(master.addr), CREDS, FAST, pool=fresh)
        took = time.monotonic() - started
        assert not pooled.reachable and pooled.error_code == 2013, pooled.error
        assert not new.reachable and new.error_code == 2003, new.error  # the greeting never comes
        assert took < 30  # bounded by the timeouts, not hanging with the server
        # right after the hang: IO thread still Yes, but no heartbeat arrives any more
        a = await probe(key(r1.addr), CREDS, FAST, pool=pool)
        await asyncio.sleep(0.8)
        b = await probe(key(r1.addr), CREDS, FAST, pool=pool)
        assert a.replication is not None and b.replication is not None
        if time.monotonic() - hung_at < 3.0:
            assert b.replication.io_state is IOThreadState.YES
        assert b.replication.received_heartbeats == a.replication.received_heartbeats
        late = await snap_until(
            pool,
            r1.addr,
            lambda s: s.replication is not None and s.replication.io_state is IOThreadState.CONNECTING,
        )
        assert late.replication is not None and late.replication.io_state is IOThreadState.CONNECTING
        assert late.replication.last_io_errno == 2013
        assert time.monotonic() - hung_at >= 3.0
        await sim.revive(master.addr)
        assert (await snap_until(pool, master.addr, lambda s: s.reachable)).reachable
    finally:
        pool.close()
        fresh.close()


async def test_lag_and_broken_threads_and_repair(fleet_factory: FleetFactory) -> None:
    sim = await fleet_factory([ClusterShape(replicas=2)], write_rate=50.0)
    _, r1, r2 = list(sim.fleet)
    pool = ConnectionPool()
    try:
        sim.lag(r1.addr, 30)
        s = await probe(key(r1.addr), CREDS, pool=pool)
        assert s.replication is not None and s.replication.seconds_behind_master == 30
        assert s.replication_lag_seconds == 30.0
        sim.break_io(r1.addr)
        sim.break_sql(
            r2.addr, 1032, "Could not execute Delete_rows_v1 event on table app.t; Can't find record"
        )
        s1 = await probe(key(r1.addr), CREDS, pool=pool)
        s2 = await probe(key(r2.addr), CREDS, pool=pool)
        assert s1.replication is not None and s2.replication is not None
        assert s1.replication.io_state is IOThreadState.NO and s1.replication.last_io_errno == 1236
        assert "Got fatal error 1236" in s1.replication.last_io_error
        assert s1.replication.seconds_behind_master is None
        assert not s2.replication.sql_running and s2.replication.last_sql_errno == 1032
        assert s2.replication.io_state is IOThreadState.YES
        sim.repair(r2.addr)
        s2 = await probe(key(r2.addr), CREDS, pool=pool)
        assert (
            s2.replication is not None and s2.replication.sql_running and s2.replication.last_sql_errno == 0
        )
    finally:
        pool.close()
