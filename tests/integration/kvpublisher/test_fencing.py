"""A record with an older epoch never replaces a newer one in Consul, and is reported as stale."""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from libs.bus.connection import Bus
from libs.bus.subjects import kv_key
from libs.kv.consul import ConsulKVStore
from libs.models.events import Event, MasterRecord
from services.kvpublisher.worker import DCWorker
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
    wait_for,
    write_master,
)


async def test_a_late_older_epoch_in_baton_masters_never_overwrites(
    bus: Bus, dcs: list[ConsulProcess], clients: list[httpx.AsyncClient]
) -> None:
    newer = master("db-new.example.com", 5)
    late = master("db-old.example.com", 3)  # a deposed leader's late write
    async with event_log(bus) as log, running_publisher(bus, addresses(dcs)):
        await write_master(bus, newer)
        await time_until_published(clients, newer)
        await write_master(bus, late)
        await log.wait("kv.stale", [dc.name for dc in dcs], 3)
        stale = log.of("kv.stale", "dc1", 3)[0]
        assert stale.data["value"] == "db-old.example.com:3306" and stale.data["newer_epoch"] == 5
        await asyncio.sleep(0.3)
        for http in clients:
            assert await read_tree(http) == expected(newer)
        assert not log.of("kv.published", epoch=3)

    # A restarted publisher sees only the late record in baton_masters (no history): Consul's newer
    # epoch wins, and it says so once.
    async with event_log(bus) as log, running_publisher(bus, addresses(dcs)) as publisher:
        await log.wait("kv.stale", [dc.name for dc in dcs], 3)
        for http in clients:
            assert await read_tree(http) == expected(newer)
        assert publisher.status()["dcs"]["dc2"]["ahead"] == ["db-1.example.com:3306"]


async def test_a_publisher_fed_a_stale_record_is_refused_by_the_consul_fence(
    dcs: list[ConsulProcess], clients: list[httpx.AsyncClient]
) -> None:
    """A worker that never saw the newer record (a lagging process) still cannot write the old one."""
    dc1 = dcs[0]
    reported: list[Event] = []
    known: dict[str, MasterRecord] = {}
    store = ConsulKVStore(dc1.address, datacenter=dc1.name, timeout=2)
    worker = DCWorker(store, prefix=PREFIX, records=known, report=reported.append, node="t")
    task = asyncio.create_task(worker.run())
    try:
        newer, late = master("db-new.example.com", 7), master("db-old.example.com", 6)
        worker.offer(kv_key("shop"), newer)
        await time_until_published(clients[:1], newer)
        worker.offer(kv_key("shop"), late)  # its map is empty: only Consul knows epoch 7

        async def refused() -> bool:
            return any(e.type == "kv.stale" for e in reported)

        await wait_for(refused, 3, "a kv.stale event")
        (event,) = [e for e in reported if e.type == "kv.stale"]
        assert "epoch 7" in event.data["reason"] and event.data["epoch"] == 6
        assert await read_tree(clients[0]) == expected(newer)
        assert worker.status()["stale"] == 1 and worker.status()["pending"] == 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.close()
