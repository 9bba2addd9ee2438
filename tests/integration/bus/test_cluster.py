from __future__ import annotations

import asyncio
import time

import pytest
from nats.js.kv import KeyValue

from libs.bus.cluster import NatsCluster
from libs.bus.connection import bus_errors, connect
from libs.bus.provision import MASTERS, provision
from libs.errors import BusError


async def _put(kv: KeyValue, key: str, value: bytes) -> int:
    with bus_errors(f"writing {key}"):
        return await kv.put(key, value)


async def _put_eventually(kv: KeyValue, key: str, value: bytes, within_s: float) -> float:
    start = time.monotonic()
    while True:
        try:
            await _put(kv, key, value)
            return time.monotonic() - start
        except BusError:
            if time.monotonic() - start > within_s:
                raise
            await asyncio.sleep(0.2)


async def _get_eventually(kv: KeyValue, key: str, within_s: float = 10.0) -> bytes | None:
    """Right after quorum returns, reads may still answer 503 "JetStream system temporarily unavailable"
    for a moment (the stream's leader is being re-elected): retry, within a bound."""
    start = time.monotonic()
    while True:
        try:
            with bus_errors(f"reading {key}"):
                return (await kv.get(key)).value
        except BusError:
            if time.monotonic() - start > within_s:
                raise
            await asyncio.sleep(0.2)


async def test_r3_survives_one_node_and_stops_without_quorum(nats_cluster: NatsCluster) -> None:
    assert nats_cluster.meta_leader() is not None
    async with await connect(nats_cluster.urls, "cluster-test", request_timeout_s=2.0) as bus:
        result = await provision(bus.js, replicas=3)
        assert set(result.values()) == {"created"}
        info = await bus.js.stream_info("KV_baton_masters")
        assert info.config.num_replicas == 3
        kv = await bus.js.key_value(MASTERS)
        await _put(kv, "c1", b"m1")

        nats_cluster.kill(0)  # one node down: the other two still form a quorum
        t0 = time.monotonic()
        took = await _put_eventually(kv, "c1", b"m2", within_s=10)
        print(f"one node down: write ok after {took:.2f}s")
        assert await _get_eventually(kv, "c1") == b"m2"

        nats_cluster.kill(1)  # two down: no quorum, writes must fail (not hang, not succeed)
        await asyncio.sleep(0.5)
        t0 = time.monotonic()
        with pytest.raises(BusError):
            await _put(kv, "c1", b"m3")
        with pytest.raises(BusError):
            await _put(kv, "c1", b"m3")

        print(f"two down: two refused writes took {time.monotonic() - t0:.2f}s")
        nats_cluster.start(1)
        took = await _put_eventually(kv, "c1", b"m4", within_s=20)
        assert await _get_eventually(kv, "c1") == b"m4"
        nats_cluster.start(0)
        print(f"writes back {took:.2f}s after one node returned")
