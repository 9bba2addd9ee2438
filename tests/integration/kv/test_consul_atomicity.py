"""A reader polling during 200+ publishes never sees a mix of two masters' keys.

The reader checks each recursive snapshot for internal consistency. The control test runs the same
reader against orchestrator-style successive PUTs and must catch mixed states, which shows the
checker can fail.
"""

from __future__ import annotations

import asyncio

import httpx

from libs.kv.consul import ConsulKVStore
from libs.kv.layout import cluster_master_kv_pairs
from libs.models.events import MasterRecord
from tests.consul_server import ConsulTestServer
from tests.integration.kv.helpers import MAIN, PREFIX, master, read_tree

PUBLISHES = 220


def record_for(epoch: int) -> MasterRecord:
    """Odd epochs: an IPv4-resolved hostname master; even: an IPv6-literal master on another port."""
    if epoch % 2:
        return master("db-a.example.com", 3306, epoch=epoch, ipv4="10.0.0.1")
    return master("fd00::b", 3307, epoch=epoch)


def plain_layout(epoch: int) -> dict[str, str]:
    """orchestrator's five keys for the record of `epoch` (no Baton epoch key)."""
    pairs = cluster_master_kv_pairs(record_for(epoch), PREFIX)
    return {k: v for k, v in pairs.items() if not k.endswith("/baton-epoch")}


def mixed(tree: dict[str, str]) -> bool:
    """True if one snapshot is not exactly the keys of a single record."""
    if not tree:
        return False  # before the first write
    epoch_text = tree.get(f"{MAIN}/baton-epoch")
    if epoch_text is not None:
        return tree != cluster_master_kv_pairs(record_for(int(epoch_text)), PREFIX)
    return all(tree != plain_layout(e) for e in (1, 2))  # control writer: no epoch key


async def poll(http: httpx.AsyncClient, done: asyncio.Event) -> tuple[int, int]:
    reads = bad = 0
    while not done.is_set():
        tree = await read_tree(http)
        reads += 1
        bad += mixed(tree)
    return reads, bad


async def test_reader_never_sees_mixed_values(
    consul_server: ConsulTestServer, kv_store: ConsulKVStore
) -> None:
    done = asyncio.Event()
    async with httpx.AsyncClient(base_url=consul_server.url) as http:
        reader = asyncio.create_task(poll(http, done))
        for epoch in range(1, PUBLISHES + 1):
            await kv_store.publish_master(record_for(epoch), PREFIX)
        done.set()
        reads, bad = await reader
        final = await read_tree(http)
    assert final == cluster_master_kv_pairs(record_for(PUBLISHES), PREFIX)
    assert reads >= 100, f"the reader only got {reads} reads in: it did not really race the writer"
    assert bad == 0, f"{bad} of {reads} reads saw a mix of two masters"


async def test_control_successive_puts_are_caught_mixing(consul_server: ConsulTestServer) -> None:
    done = asyncio.Event()
    async with httpx.AsyncClient(base_url=consul_server.url) as http:
        reader = asyncio.create_task(poll(http, done))
        for epoch in range(1, 60):  # orchestrator's `consul` provider: one PUT per key, in order
            pairs = cluster_master_kv_pairs(record_for(epoch), PREFIX)
            for key, value in pairs.items():
                if not key.endswith("baton-epoch"):
                    await http.put(f"/v1/kv/{key}", content=value.encode())
        done.set()
        reads, bad = await reader
    assert bad > 0, f"the checker saw no mixed state in {reads} reads of non-atomic writes"
