"""Probes of instances that die, hang and come back (each test starts its own small sandbox)."""

from __future__ import annotations

import asyncio
import signal
import time

from libs.models import IOThreadState
from libs.mysql import ConnectionPool, ProbeSettings, probe
from libs.sandbox.spec import master_replicas
from tests.fixtures.sandbox import SandboxFactory


async def test_killed_instance_yields_unreachable_2003_quickly(sandbox_factory: SandboxFactory) -> None:
    sb = await sandbox_factory(master_replicas(1))
    pool = ConnectionPool()
    key, creds = sb.key("replica1"), sb.topology_creds
    try:
        assert (await probe(key, creds, pool=pool)).reachable  # a pooled connection now exists
        sb.kill("replica1", signal.SIGKILL)
        started = time.perf_counter()
        snap = await probe(key, creds, pool=pool)
        elapsed = time.perf_counter() - started
    finally:
        pool.close()
    assert not snap.reachable and not snap.partial
    assert snap.error_code == 2003, snap.error
    assert snap.error and "\n" not in snap.error
    assert elapsed < 0.5
    assert snap.latency_ms < 500


async def test_dead_master_seen_from_its_replica_then_restart(sandbox_factory: SandboxFactory) -> None:
    sb = await sandbox_factory(master_replicas(1))
    pool = ConnectionPool()
    creds = sb.topology_creds
    try:
        assert (await probe(sb.key("master"), creds, pool=pool)).reachable
        sb.kill("master", signal.SIGKILL)
        deadline = time.monotonic() + 5
        while True:
            rep = (await probe(sb.key("replica1"), creds, pool=pool)).replication
            assert rep is not None
            if rep.io_state is not IOThreadState.YES or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert rep.io_state is IOThreadState.CONNECTING
        assert rep.sql_running  # the SQL thread keeps running
        await sb.restart("master")
        await sb.wait_replicating("replica1", within=10)
        again = await probe(sb.key("master"), creds, pool=pool)  # stale pooled connection: reopened
        assert again.reachable, again.error
        replica = await probe(sb.key("replica1"), creds, pool=pool)
        assert replica.replication is not None and replica.replication.replicating
    finally:
        pool.close()


async def test_hung_instance_costs_no_more_than_its_timeouts(sandbox_factory: SandboxFactory) -> None:
    sb = await sandbox_factory(master_replicas(0))
    settings = ProbeSettings(connect_timeout=0.5, read_timeout=0.5)
    pool = ConnectionPool(connect_timeout=0.5, read_timeout=0.5)
    key, creds = sb.key("master"), sb.topology_creds
    try:
        assert (await probe(key, creds, settings, pool=pool)).reachable
        sb.kill("master", signal.SIGSTOP)
        try:
            started = time.perf_counter()
            hung = await probe(key, creds, settings, pool=pool)  # on the pooled connection
            hung_elapsed = time.perf_counter() - started
            started = time.perf_counter()
            fresh = await probe(key, creds, settings, pool=pool)  # a new connection's handshake hangs
            fresh_elapsed = time.perf_counter() - started
        finally:
            sb.kill("master", signal.SIGCONT)
        back = await probe(key, creds, settings, pool=pool)
    finally:
        pool.close()
    assert not hung.reachable and hung.error_code == 2013, hung.error
    assert not fresh.reachable and fresh.error_code == 2003, fresh.error
    assert hung_elapsed < 1.2 and fresh_elapsed < 1.2
    assert back.reachable, back.error
