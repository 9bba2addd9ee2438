"""Discovery and cadence against a real 4-node MariaDB sandbox and a real nats-server.

The sandbox is shared by the module: tests that break a node repair it before they end.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from libs.bus.connection import Bus, connect
from libs.bus.provision import provision
from libs.bus.server import NatsServer
from libs.discovery import registry as reg
from libs.sandbox import Sandbox
from libs.sandbox.spec import master_replicas
from tests.integration.prober.helpers import (
    Recorder,
    gaps,
    start_worker,
    stop_worker,
    wait_for,
    worker_config,
)

REPLICAS = ("replica1", "replica2", "replica3")


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    async with await connect(nats_server.url, "prober-test") as b:
        await provision(b.js)
        yield b


async def _registered(bus: Bus) -> set[str]:
    return {str(k) for k in await reg.read_registry(bus.js)}


async def test_discovery_from_a_replica_finds_the_whole_topology(
    sandbox4: Sandbox, nats_server: NatsServer, bus: Bus
) -> None:
    rec = await Recorder().start(bus)
    seed = sandbox4.key("replica2")
    everyone = {sandbox4.key(n) for n in sandbox4.names}
    worker = await start_worker(nats_server.url, worker_config(sandbox4, "w1", seeds=(str(seed),)))
    try:
        took = await wait_for(
            "every instance probed",
            lambda: {s.snap.key for s in rec.seen if s.snap.reachable} >= everyone,
            10,
        )
        assert await _registered(bus) == {str(k) for k in everyone}
        assert took < 5, f"discovery took {took:.1f}s"
        master = sandbox4.key("master")
        latest = {s.snap.key: s.snap for s in rec.seen}
        assert set(latest[master].replicas) == {sandbox4.key(n) for n in REPLICAS}
        for name in REPLICAS:
            assert latest[sandbox4.key(name)].master_key == master
        entries = await reg.read_registry(bus.js)
        assert entries[seed].source == "seed"
        assert {entries[k].source for k in everyone - {seed}} == {"discovered"}
        assert entries[master].via == str(seed)  # found by following the replica's master upward
    finally:
        await stop_worker(worker)


async def test_a_replica_that_appears_later_is_discovered(
    sandbox_factory: Callable[..., Awaitable[Sandbox]], nats_server: NatsServer, bus: Bus
) -> None:
    sb = await sandbox_factory(master_replicas(1))
    rec = await Recorder().start(bus)
    worker = await start_worker(nats_server.url, worker_config(sb, "w1", seeds=(str(sb.key("replica1")),)))
    try:
        both = {sb.key("master"), sb.key("replica1")}
        await wait_for("the two instances", lambda: rec.keys() >= both, 10)
        late = await sb.add_replica("late", "master")  # a brand-new server, never seen before
        assert str(late) not in await _registered(bus)
        took = await wait_for(
            "the new replica discovered and probed", lambda: any(s.snap.reachable for s in rec.of(late)), 10
        )
        assert str(late) in await _registered(bus)
        assert took < 4, f"a new replica took {took:.1f}s to be discovered (poll 1 s)"
    finally:
        await stop_worker(worker)


async def _all_registered_worker(sandbox4: Sandbox, nats_server: NatsServer, **kw: object) -> object:
    seeds = tuple(str(sandbox4.key(n)) for n in sandbox4.names)
    return await start_worker(nats_server.url, worker_config(sandbox4, "w1", seeds=seeds, **kw))


async def test_a_dead_or_hung_host_costs_only_its_timeout_and_delays_no_one(
    sandbox4: Sandbox, nats_server: NatsServer, bus: Bus
) -> None:
    rec = await Recorder().start(bus)
    worker = await _all_registered_worker(sandbox4, nats_server)
    killed, hung = sandbox4.key("replica2"), sandbox4.key("replica1")
    steady = [sandbox4.key("master"), sandbox4.key("replica3")]
    try:
        await wait_for(
            "all four probed twice",
            lambda: all(len(rec.of(sandbox4.key(n))) >= 2 for n in sandbox4.names),
            10,
        )
        t0 = time.monotonic()
        sandbox4.kill("replica2")  # SIGKILL: connections refused at once
        sandbox4.kill("replica1", signal.SIGSTOP)  # hung: its probe waits out the 1 s read timeout
        await asyncio.sleep(4.0)
        dead = [s for s in rec.of(killed, t0) if not s.snap.reachable]
        assert dead, "no unreachable snapshot of the killed replica"
        assert dead[0].at - t0 <= 1.0 + 0.3, (
            f"killed instance reported after {dead[0].at - t0:.2f}s (poll 1 s)"
        )
        assert dead[0].snap.error_code in (2003, 2013)
        stuck = [s for s in rec.of(hung, t0) if not s.snap.reachable]
        assert stuck, "no unreachable snapshot of the hung replica"
        assert stuck[0].at - t0 <= 1.0 + 1.0 + 0.4, f"hung instance reported after {stuck[0].at - t0:.2f}s"
        assert stuck[0].snap.error_code == 2013
        for key in steady:
            intervals = gaps([s.at for s in rec.of(key, t0 - 1.0)])
            assert len(intervals) >= 4
            # delayed by no one: waiting on the hung host (its 1 s read timeout) would open a gap of ~2 s;
            # the bound leaves room for a busy machine's scheduling, and a gap may be shorter (the
            # heartbeat placement moves a replica's polls by up to 0.1 s, a shard taken back probes at once)
            assert all(g <= 1.5 for g in intervals), f"{key} lost its 1 s cadence: {intervals}"
    finally:
        sandbox4.kill("replica1", signal.SIGCONT)
        await stop_worker(worker)
        await sandbox4.restart("replica2")
        await sandbox4.wait_replicating("replica2")
        await sandbox4.wait_replicating("replica1")


async def test_master_death_is_seen_by_the_liveness_watch_before_the_next_poll(
    sandbox4: Sandbox, nats_server: NatsServer, bus: Bus
) -> None:
    rec = await Recorder().start(bus)
    worker = await _all_registered_worker(sandbox4, nats_server, poll_s=5.0, liveness_watch=True)
    master = sandbox4.key("master")
    try:
        assert worker.liveness is not None
        await wait_for("the watch armed on the master", lambda: master in worker.liveness.armed, 10)  # type: ignore[union-attr]
        assert worker.liveness.watched == {master}  # replicas have no replicas: no watch
        await asyncio.sleep(0.3)
        t0 = time.monotonic()
        sandbox4.kill("master")
        await wait_for(
            "an unreachable snapshot of the master",
            lambda: any(not s.snap.reachable for s in rec.of(master, t0)),
            3,
            step=0.01,
        )
        first = next(s for s in rec.of(master, t0) if not s.snap.reachable)
        assert first.at - t0 < 0.5, f"master death seen after {first.at - t0:.3f}s with a 5 s poll"
        await asyncio.sleep(1.5)  # the watch backs off: a down master is not hammered
        assert worker.liveness.fired == 1
    finally:
        await stop_worker(worker)
        await sandbox4.restart("master")
        for name in REPLICAS:
            await sandbox4.wait_replicating(name)


async def test_a_hung_master_is_seen_by_the_bounded_liveness_watch_before_the_next_poll(
    sandbox4: Sandbox, nats_server: NatsServer, bus: Bus
) -> None:
    """SIGSTOP keeps the watch's socket open and silent: the watch's SLEEP(1) not answering 0.5 s
    after it should have is the sign: reported at once as an unreachable snapshot, and the master is
    probed at once (its probe then fails on its own 1 s read timeout), long before the next 30 s poll."""
    rec = await Recorder().start(bus)
    worker = await _all_registered_worker(
        sandbox4, nats_server, poll_s=30.0, liveness_watch=True, liveness_sleep_s=1, liveness_margin_s=0.5
    )
    master = sandbox4.key("master")
    stopped = False
    try:
        assert worker.liveness is not None
        await wait_for("the watch armed on the master", lambda: master in worker.liveness.armed, 10)  # type: ignore[union-attr]
        await asyncio.sleep(1.3)  # one SLEEP(1) answered and re-armed: the watch is healthy
        assert worker.liveness.fired == 0
        t0 = time.monotonic()
        sandbox4.kill("master", signal.SIGSTOP)
        stopped = True
        await wait_for(
            "an unreachable snapshot of the hung master",
            lambda: any(not s.snap.reachable for s in rec.of(master, t0)),
            6,
        )
        first = next(s for s in rec.of(master, t0) if not s.snap.reachable)
        took = first.at - t0
        # bound (1.5 s) + the probe's read timeout (1 s) + slack; the next poll slot is ~30 s away.
        assert took < 4.0, f"hung master reported after {took:.2f}s with a 30 s poll"
        assert first.snap.error_code == 2013, first.snap.error
        # the watch's own report, not the probe it woke (queued behind its read timeout)
        assert "no answer within 1.5s (liveness watch)" in (first.snap.error or ""), first.snap.error
        assert worker.liveness.hung == 1
        await asyncio.sleep(2.0)  # still hung: reconnecting fails before the watch arms, no re-firing
        assert worker.liveness.fired == 1
        print(f"\nhung master: watch fired, unreachable snapshot published {took:.2f}s after SIGSTOP")
    finally:
        if stopped:
            sandbox4.kill("master", signal.SIGCONT)
        await stop_worker(worker)
        for name in REPLICAS:
            await sandbox4.wait_replicating(name)
