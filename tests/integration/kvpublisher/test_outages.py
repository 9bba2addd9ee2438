"""One DC's Consul down or hung: the others update at once; it is repaired when it returns."""

from __future__ import annotations

import os
import signal
import time

import httpx

from libs.bus.connection import Bus
from tests.fixtures.consul import ConsulProcess
from tests.integration.kvpublisher.conftest import addresses
from tests.integration.kvpublisher.helpers import (
    event_log,
    expected,
    master,
    read_tree,
    running_publisher,
    time_until_published,
    wait_for,
    write_master,
)

RECONCILE_S = 3.0
UNAFFECTED_S = 0.5  # the up DCs' latency with one DC out (all-up latency is a few ms)


async def test_a_down_dc_never_delays_the_others_and_catches_up(
    bus: Bus, dcs: list[ConsulProcess], clients: list[httpx.AsyncClient]
) -> None:
    dc1, dc2, dc3 = dcs
    async with (
        event_log(bus) as log,
        running_publisher(bus, addresses(dcs), reconcile_seconds=RECONCILE_S) as publisher,
    ):
        first = master("db-1.example.com", 1)
        await write_master(bus, first)
        await time_until_published(clients, first)

        await dc3.astop()
        second = master("db-2.example.com", 2)
        await write_master(bus, second)
        took = await time_until_published(clients[:2], second)
        assert max(took) < UNAFFECTED_S, f"the up DCs took {took} with dc3 down"
        await log.wait("kv.failed", ["dc3"], 2)
        failure = log.of("kv.failed", "dc3", 2)[0]
        assert "cannot connect" in failure.data["error"] and failure.data["retry_in_s"] is not None
        assert publisher.status()["dcs"]["dc3"]["pending"] == 1
        assert not publisher.status()["dcs"]["dc3"]["healthy"]

        await dc3.astart()  # with its old data: it still holds epoch 1
        returned = time.monotonic()
        await time_until_published(clients[2:], second, timeout=RECONCILE_S + 2)
        assert time.monotonic() - returned < RECONCILE_S + 1.0
        await log.wait("kv.published", ["dc3"], 2)
        assert publisher.status()["dcs"]["dc3"]["healthy"]

        # It comes back empty (a rebuilt Consul) with nothing pending: reconcile alone repairs it.
        await dc3.astop()
        dc3.reset()
        await dc3.astart()
        returned = time.monotonic()
        assert await read_tree(clients[2]) == {}
        await time_until_published(clients[2:], second, timeout=RECONCILE_S + 2)
        assert time.monotonic() - returned < RECONCILE_S + 1.0
        for http in clients[:2]:
            assert await read_tree(http) == expected(second)
        assert dc1.running and dc2.running


async def test_a_hung_dc_never_delays_the_others(
    bus: Bus, dcs: list[ConsulProcess], clients: list[httpx.AsyncClient]
) -> None:
    """A Consul that accepts connections but never answers (SIGSTOP) costs the others nothing."""
    dc1, dc2, dc3 = dcs
    async with event_log(bus) as log, running_publisher(bus, addresses(dcs), consul_timeout=1.5):
        first = master("db-1.example.com", 1)
        await write_master(bus, first)
        await time_until_published(clients, first)
        assert dc2.pid is not None
        os.kill(dc2.pid, signal.SIGSTOP)
        try:
            second = master("db-2.example.com", 2)
            await write_master(bus, second)
            took = await time_until_published([clients[0], clients[2]], second)
            assert max(took) < UNAFFECTED_S, f"the others took {took} while dc2 hung"
        finally:
            os.kill(dc2.pid, signal.SIGCONT)
        await time_until_published(clients[1:2], second, timeout=5)
        await log.wait("kv.published", ["dc2"], 2)

        async def settled() -> bool:
            return all([await read_tree(c) == expected(second) for c in clients])

        await wait_for(settled, 2, "all DCs at epoch 2")
        assert dc1.running and dc3.running
