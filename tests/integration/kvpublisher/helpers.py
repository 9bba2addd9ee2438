"""Shared pieces of the kvpublisher integration tests (also used by bench/kv_publish_latency.py).

Records are written to baton_masters as the recovery leader would; Consul is read over plain HTTP
(`?recurse`, one consistent snapshot per read), as consul-template would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import httpx
from nats.aio.msg import Msg

from libs.bus.connection import Bus
from libs.bus.provision import MASTERS
from libs.bus.subjects import kv_key
from libs.kv.consul import ConsulKVStore
from libs.kv.layout import cluster_master_kv_pairs
from libs.models.events import Event, MasterRecord
from libs.models.instance import InstanceKey
from services.kvpublisher.backoff import Backoff
from services.kvpublisher.service import EVENT_SUBJECT, KVPublisher

PREFIX = "mysql/master"
FAST_BACKOFF = Backoff(initial=0.05, maximum=1.0)


def master(host: str, epoch: int, *, alias: str = "shop", port: int = 3306) -> MasterRecord:
    return MasterRecord(
        cluster="db-1.example.com:3306", alias=alias, master=InstanceKey(host=host, port=port), epoch=epoch
    )


def expected(record: MasterRecord) -> dict[str, str]:
    return cluster_master_kv_pairs(record, PREFIX)


async def write_master(bus: Bus, record: MasterRecord) -> None:
    """Put a record in baton_masters under its cluster's key, as the recovery leader does."""
    kv = await bus.js.key_value(MASTERS)
    await kv.put(kv_key(record.alias or record.cluster), record.model_dump_json().encode())


async def read_tree(http: httpx.AsyncClient, alias: str = "shop") -> dict[str, str]:
    """One recursive read of a cluster's keys, decoded; {} when absent."""
    key = f"{PREFIX}/{alias}"
    resp = await http.get(f"/v1/kv/{key}", params={"recurse": ""})
    if resp.status_code == 404:
        return {}
    resp.raise_for_status()
    out = {}
    for entry in resp.json():
        if entry["Key"] == key or entry["Key"].startswith(key + "/"):
            raw = entry["Value"]
            out[entry["Key"]] = base64.b64decode(raw).decode() if raw else ""
    return out


async def wait_for(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.005
) -> float:
    """Poll `check` until true; returns the seconds it took. Fails the test after `timeout`."""
    start = time.monotonic()
    while True:
        with contextlib.suppress(httpx.TransportError):
            if await check():
                return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(interval)


async def time_until_published(
    clients: Sequence[httpx.AsyncClient], record: MasterRecord, timeout: float = 5.0
) -> list[float]:
    """Seconds until each client's Consul holds exactly `record`'s keys (polled side by side)."""
    want = expected(record)

    async def one(http: httpx.AsyncClient) -> float:
        async def holds() -> bool:
            return await read_tree(http, record.alias) == want

        return await wait_for(holds, timeout, f"{http.base_url} holding epoch {record.epoch}")

    return list(await asyncio.gather(*(one(c) for c in clients)))


@dataclass
class EventLog:
    """Every `baton.audit.kv` event seen on core NATS."""

    events: list[Event] = field(default_factory=list)

    async def on_msg(self, msg: Msg) -> None:
        self.events.append(Event.model_validate_json(msg.data))

    def of(self, kind: str, dc: str | None = None, epoch: int | None = None) -> list[Event]:
        return [
            e
            for e in self.events
            if e.type == kind
            and (dc is None or e.data["dc"] == dc)
            and (epoch is None or e.data["epoch"] == epoch)
        ]

    async def wait(self, kind: str, dcs: Sequence[str], epoch: int, timeout: float = 5.0) -> None:
        async def seen() -> bool:
            return all(self.of(kind, dc, epoch) for dc in dcs)

        await wait_for(seen, timeout, f"{kind} events for epoch {epoch} from {list(dcs)}", 0.02)


@contextlib.asynccontextmanager
async def event_log(bus: Bus) -> AsyncIterator[EventLog]:
    log = EventLog()
    sub = await bus.nc.subscribe(EVENT_SUBJECT, cb=log.on_msg)
    try:
        yield log
    finally:
        await sub.unsubscribe()


@contextlib.asynccontextmanager
async def running_publisher(
    bus: Bus,
    addresses: dict[str, str],
    *,
    reconcile_seconds: float = 30.0,
    consul_timeout: float = 2.0,
    backoff: Backoff = FAST_BACKOFF,
) -> AsyncIterator[KVPublisher]:
    """A KVPublisher task serving `addresses` ({dc: host:port}); ready when yielded; cancelled after."""
    stores = {
        dc: ConsulKVStore(addr, datacenter=dc, timeout=consul_timeout) for dc, addr in addresses.items()
    }
    publisher = KVPublisher(
        bus, stores, prefix=PREFIX, reconcile_seconds=reconcile_seconds, backoff=backoff, node="test"
    )
    task = asyncio.create_task(publisher.run())
    try:
        await asyncio.wait_for(publisher.wait_ready(), 10)
        yield publisher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for store in stores.values():
            await store.close()


def status_json(data: bytes) -> dict[str, object]:
    loaded = json.loads(data)
    assert isinstance(loaded, dict)
    return loaded
