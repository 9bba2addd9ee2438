"""The prober's polls of a replica move to just after its master's heartbeats (real MariaDB, real NATS).

1 master + 3 replicas with 1 s heartbeats, polled every 1 s by the prober service. A watcher of the
test's own reads each replica's `Slave_received_heartbeats` every ~20 ms, which dates each heartbeat's
arrival to within a read. After the controller has converged, the prober's first snapshot showing each
new count must come shortly after that arrival: the lag the heartbeat rule's "since" carries. Before
that, a write on the master puts replica1's heartbeats half a poll after its polls; without the
controller its lag stays ~0.5 s (checked by hand: the test then fails)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator

import pytest
from nats.aio.msg import Msg

from libs.bus.connection import Bus, connect
from libs.bus.server import NatsServer
from libs.bus.subjects import snapshot_subject
from libs.models import InstanceKey, InstanceSnapshot
from libs.sandbox import Sandbox
from libs.sandbox.spec import master_replicas
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.analyzer.harness import RealProber

REPLICAS = ("replica1", "replica2", "replica3")
CONVERGE_S = 14.0  # the controller converges within ~10 polls
MEASURE_S = 10.0
LAG_BOUND_S = 0.15


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    async with await connect(nats_server.url, "heartbeat-phase-test") as b:
        yield b


async def _watch(sb: Sandbox, name: str, arrivals: dict[int, float], stop: asyncio.Event) -> None:
    """First wall-clock time each heartbeat count was seen (the read's start: an upper bound on the
    arrival within one read, ~20 ms)."""
    async with sb._root(name) as conn, conn.cursor() as cur:
        while not stop.is_set():
            at = time.time()
            await cur.execute("SHOW GLOBAL STATUS LIKE 'Slave_received_heartbeats'")
            row = await cur.fetchone()
            count = int(row[1])
            arrivals.setdefault(count, at)
            await asyncio.sleep(0.02)


async def _move_the_heartbeats_half_a_poll_away(sb: Sandbox, bus: Bus) -> None:
    """An event resets the master's heartbeat timers: written half a second after one of replica1's
    polls, it puts replica1's heartbeats half a poll after its polls, wherever they were (so the test
    cannot pass by a lucky start)."""
    polled: asyncio.Queue[float] = asyncio.Queue()

    async def on(msg: Msg) -> None:
        polled.put_nowait(InstanceSnapshot.model_validate_json(msg.data).probed_at.timestamp())

    sub = await bus.nc.subscribe(snapshot_subject(sb.key("replica1")), cb=on)
    try:
        last = await asyncio.wait_for(polled.get(), 10)
    finally:
        await sub.unsubscribe()
    await asyncio.sleep(max(0.0, last + 1.5 - time.time()) % 1.0)
    await sb.sql(sb.master, "CREATE DATABASE IF NOT EXISTS heartbeat_phase")


async def test_polls_land_just_after_the_heartbeats(
    nats_server: NatsServer, bus: Bus, sandbox_factory: SandboxFactory
) -> None:
    sb = await sandbox_factory(master_replicas(3))
    prober = await RealProber(nats_server.url, sb, 1.0, liveness=False).start()
    try:
        await prober.wait_probing([sb.key(n) for n in (sb.master, *REPLICAS)])
        await _move_the_heartbeats_half_a_poll_away(sb, bus)
        await asyncio.sleep(CONVERGE_S)
        keys: dict[InstanceKey, str] = {sb.key(n): n for n in REPLICAS}
        first_seen: dict[str, dict[int, float]] = {n: {} for n in REPLICAS}

        async def on(msg: Msg) -> None:
            snap = InstanceSnapshot.model_validate_json(msg.data)
            r = snap.replication
            if snap.reachable and r is not None and r.received_heartbeats is not None:
                first_seen[keys[snap.key]].setdefault(r.received_heartbeats, snap.probed_at.timestamp())

        subs = [await bus.nc.subscribe(snapshot_subject(k), cb=on) for k in keys]
        arrivals: dict[str, dict[int, float]] = {n: {} for n in REPLICAS}
        stop = asyncio.Event()
        watchers = [asyncio.create_task(_watch(sb, n, arrivals[n], stop)) for n in REPLICAS]
        await asyncio.sleep(MEASURE_S)
        stop.set()
        await asyncio.gather(*watchers)
        for sub in subs:
            await sub.unsubscribe()
    finally:
        await prober.stop()

    medians = {}
    for name in REPLICAS:
        # counts both saw arrive during the window (not the first one: its arrival predates the watch)
        counts = sorted(set(arrivals[name]) & set(first_seen[name]))[1:]
        lags = [first_seen[name][c] - arrivals[name][c] for c in counts]
        assert len(lags) >= 5, (name, arrivals[name], first_seen[name])
        medians[name] = statistics.median(lags)
    print(f"\nmedian lag from a heartbeat's arrival to the prober's poll that saw it: {medians}")
    assert all(m < LAG_BOUND_S for m in medians.values()), medians
