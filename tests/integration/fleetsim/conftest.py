"""Fixtures: a simulated fleet served in the test's event loop."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest
from pydantic import SecretStr

from bench.fleetsim import ClusterShape, FleetSimulator, build_fleet
from bench.fleetsim.server import free_base_port
from libs.models import InstanceKey
from libs.mysql import Credentials

USER, PASSWORD = "baton", "s3cret-fleet"
CREDS = Credentials(user=USER, password=SecretStr(PASSWORD))

FleetFactory = Callable[..., Awaitable[FleetSimulator]]


def key(addr: tuple[str, int] | str) -> InstanceKey:
    if isinstance(addr, str):
        return InstanceKey.parse(addr)
    return InstanceKey(host=addr[0], port=addr[1])


@pytest.fixture
async def fleet_factory() -> AsyncIterator[FleetFactory]:
    started: list[FleetSimulator] = []

    async def start(
        shapes: Sequence[ClusterShape],
        *,
        addressing: str = "ports",
        write_rate: float = 10.0,
        heartbeat_period: float = 1.0,
        slave_net_timeout: float = 60.0,
    ) -> FleetSimulator:
        count = sum(s.replicas + 1 for s in shapes)
        base = free_base_port(count, addressing=addressing)
        fleet = build_fleet(
            shapes,
            now=time.monotonic(),
            addressing=addressing,
            base_port=base,
            write_rate=write_rate,
            heartbeat_period=heartbeat_period,
            slave_net_timeout=slave_net_timeout,
        )
        sim = FleetSimulator(fleet, credentials=(USER, PASSWORD))
        started.append(sim)
        await sim.start()
        return sim

    yield start
    for sim in started:
        await sim.stop()
