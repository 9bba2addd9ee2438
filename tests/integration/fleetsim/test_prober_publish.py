"""The probe loop publishes snapshots without waiting for each JetStream ack, with a bounded number in
flight: every snapshot still reaches BATON_SNAPSHOTS, the bound holds (at it, the next probe waits for
room), and an ack that fails or never comes is counted and logged. Real nats-server and a simulated fleet
(bench/fleetsim) answering Baton's probe."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest

from bench.fleetsim import ClusterShape
from libs.bus.connection import Bus, connect
from libs.bus.provision import provision
from libs.bus.server import NatsServer
from libs.bus.subjects import snapshot_subject
from libs.models import InstanceSnapshot
from services.prober.config import ProberConfig
from services.prober.loop import ProbeLoop
from tests.integration.fleetsim.conftest import CREDS, FleetFactory, key


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    async with await connect(nats_server.url, "prober-publish-test") as b:
        await provision(b.js)
        yield b


def config(in_flight: int, *, timeout_s: float = 2.0, poll_s: float = 0.2) -> ProberConfig:
    return ProberConfig(
        worker_id="publish-test",
        credentials=CREDS,
        poll_s=poll_s,
        publish_max_in_flight=in_flight,
        publish_timeout_s=timeout_s,
    )


async def test_every_snapshot_is_stored_and_the_bound_holds(bus: Bus, fleet_factory: FleetFactory) -> None:
    sim = await fleet_factory([ClusterShape(replicas=2)] * 3)
    keys = [key(i.addr) for i in sim.fleet]
    loop = ProbeLoop(config(2), bus.js)
    most = 0
    try:
        loop.set_owned(keys)
        stop_at = time.monotonic() + 2.0
        while time.monotonic() < stop_at:
            most = max(most, loop.in_flight)
            await asyncio.sleep(0)
    finally:
        await loop.stop()
    assert loop.probes >= 3 * len(keys)
    assert 1 <= most <= 2
    assert loop.publish_failures == 0 and loop.in_flight == 0
    info = await bus.js.stream_info("BATON_SNAPSHOTS")
    assert info.state.messages == min(loop.probes, 5 * len(keys))  # each probe stored (5 per key kept)
    for k in keys:
        raw = await bus.js.get_msg("BATON_SNAPSHOTS", subject=snapshot_subject(k))
        assert InstanceSnapshot.model_validate_json(raw.data or b"").reachable


async def test_at_the_bound_a_probe_waits_and_a_missing_ack_is_counted(
    bus: Bus, nats_server: NatsServer, fleet_factory: FleetFactory, caplog: pytest.LogCaptureFixture
) -> None:
    sim = await fleet_factory([ClusterShape(replicas=1)])
    a, b = (key(i.addr) for i in sim.fleet)
    loop = ProbeLoop(config(1, timeout_s=0.6, poll_s=60), bus.js)
    assert nats_server.pid is not None
    caplog.set_level(logging.WARNING, logger="services.prober.loop")
    try:
        await loop.probe_once(a, wait_ack=False)  # warm the connection and the ack inbox
        await asyncio.sleep(0.2)
        assert loop.in_flight == 0 and loop.publish_failures == 0
        os.kill(nats_server.pid, signal.SIGSTOP)  # no acks from now on
        try:
            started = time.monotonic()
            await loop.probe_once(a, wait_ack=False)  # sent; its ack will not come
            assert loop.in_flight == 1
            await loop.probe_once(b, wait_ack=False)  # waits for room: the first ack times out
            waited = time.monotonic() - started
        finally:
            os.kill(nats_server.pid, signal.SIGCONT)
        assert waited >= 0.5, waited
        assert loop.publish_failures == 1
        assert f"{a}: no JetStream ack within 0.6s" in caplog.text
        deadline = time.monotonic() + 5
        while loop.in_flight and time.monotonic() < deadline:  # b's ack arrives once the server runs
            await asyncio.sleep(0.05)
        assert loop.in_flight == 0 and loop.publish_failures == 1
    finally:
        await loop.stop()


async def test_a_refused_publish_is_counted_and_logged(
    bus: Bus, fleet_factory: FleetFactory, caplog: pytest.LogCaptureFixture
) -> None:
    sim = await fleet_factory([ClusterShape(replicas=1)])
    a = key(next(iter(sim.fleet)).addr)
    loop = ProbeLoop(config(4), bus.js)
    caplog.set_level(logging.WARNING, logger="services.prober.loop")
    await bus.js.delete_stream("BATON_SNAPSHOTS")  # nobody stores baton.snapshot.>: no responders
    try:
        await loop.probe_once(a, wait_ack=False)
        deadline = time.monotonic() + 5
        while loop.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert loop.publish_failures == 1
        assert "cannot publish snapshots" in caplog.text and str(a) in caplog.text
    finally:
        await loop.stop()
