"""A record written to baton_masters reaches all three DCs fast, atomically, with its events."""

from __future__ import annotations

import asyncio
import json

import httpx

from libs.bus.connection import Bus
from services.kvpublisher.service import STATUS_SUBJECT
from tests.fixtures.consul import ConsulProcess
from tests.integration.kvpublisher.conftest import addresses
from tests.integration.kvpublisher.helpers import (
    PREFIX,
    event_log,
    expected,
    master,
    read_tree,
    running_publisher,
    time_until_published,
    write_master,
)

BOUND_S = 2.0
FIELDS = {"dc", "cluster", "alias", "value", "epoch", "latency_ms"}


async def test_new_record_reaches_every_dc_within_the_bound_with_events(
    bus: Bus, dcs: list[ConsulProcess], clients: list[httpx.AsyncClient]
) -> None:
    async with event_log(bus) as log, running_publisher(bus, addresses(dcs)) as publisher:
        for epoch, host in ((1, "db-1.example.com"), (2, "db-2.example.com")):
            record = master(host, epoch)
            await write_master(bus, record)
            took = await time_until_published(clients, record)
            assert max(took) < BOUND_S, f"epoch {epoch}: {took}"
            await log.wait("kv.published", [dc.name for dc in dcs], epoch)
        for dc in dcs:
            (event,) = log.of("kv.published", dc.name, 2)
            assert event.data.keys() >= FIELDS
            assert event.data["value"] == "db-2.example.com:3306"
            assert event.data["alias"] == "shop" and event.data["cluster"] == "db-1.example.com:3306"
            assert event.data["previous_value"] == "db-1.example.com:3306"
            assert event.data["previous_epoch"] == 1 and event.epoch == 2
            assert 0 <= event.data["latency_ms"] < BOUND_S * 1000
            assert event.data["key"] == f"{PREFIX}/shop" and event.source == "kvpublisher"
        assert not log.of("kv.failed") and not log.of("kv.stale")

        status = publisher.status()
        assert status["clusters"] == 1 and status["ready"]
        for dc in dcs:
            mine = status["dcs"][dc.name]
            assert mine["healthy"] and mine["pending"] == 0 and mine["published"] == 2
            assert mine["last_success"]["epoch"] == 2 and mine["last_reconcile"]["ok"]
        reply = await bus.nc.request(STATUS_SUBJECT, b"", timeout=2)
        answered = json.loads(reply.data)
        assert set(answered["dcs"]) == {dc.name for dc in dcs}
        assert answered["dcs"]["dc1"]["last_success"]["value"] == "db-2.example.com:3306"


def _record_for(epoch: int) -> object:
    """Odd epochs: a hostname master with an IPv4; even: an IPv6 literal on another port."""
    if epoch % 2:
        return master("db-a.example.com", epoch)
    return master("fd00::b", epoch, port=3307)


async def test_a_reader_never_sees_a_mix_of_old_and_new(
    bus: Bus, dcs: list[ConsulProcess], clients: list[httpx.AsyncClient]
) -> None:
    http = clients[0]
    done = asyncio.Event()
    seen_epochs: set[int] = set()
    mixed: list[dict[str, str]] = []

    async def poll() -> int:
        reads = 0
        while not done.is_set():
            tree = await read_tree(http)
            reads += 1
            if tree:
                epoch = int(tree[f"{PREFIX}/shop/baton-epoch"])
                seen_epochs.add(epoch)
                if tree != expected(_record_for(epoch)):  # type: ignore[arg-type]
                    mixed.append(tree)
        return reads

    async with running_publisher(bus, addresses(dcs)):
        reader = asyncio.create_task(poll())
        last = None
        for epoch in range(1, 41):
            last = _record_for(epoch)
            await write_master(bus, last)  # type: ignore[arg-type]
            await asyncio.sleep(0.01)
        assert last is not None
        await time_until_published(clients, last)  # type: ignore[arg-type]
        done.set()
        reads = await reader
    assert not mixed, f"{len(mixed)} of {reads} reads saw a mix, first: {mixed[0]}"
    assert len(seen_epochs) >= 10, f"the reader saw only epochs {sorted(seen_epochs)}: no real race"
