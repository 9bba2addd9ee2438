"""Fixtures for the kvpublisher tests: a provisioned NATS and three test Consul data centers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from libs.bus.connection import Bus, connect
from libs.bus.provision import provision
from libs.bus.server import NatsServer
from tests.fixtures.consul import ConsulDCFactory, ConsulProcess


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    async with await connect(nats_server.url, "kvpublisher-test") as b:
        await provision(b.js)
        yield b


@pytest.fixture
def dcs(consul_dcs: ConsulDCFactory) -> list[ConsulProcess]:
    return consul_dcs(3)


@pytest.fixture
async def clients(dcs: list[ConsulProcess]) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One HTTP client per DC (short timeouts: a stopped DC must not stall a poll)."""
    made = [httpx.AsyncClient(base_url=dc.url, timeout=1.0) for dc in dcs]
    try:
        yield made
    finally:
        for client in made:
            await client.aclose()


def addresses(dcs: list[ConsulProcess]) -> dict[str, str]:
    return {dc.name: dc.address for dc in dcs}
