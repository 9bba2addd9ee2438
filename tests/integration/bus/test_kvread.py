"""`libs.bus.kvread`: whole-bucket reads on a real nats-server never answer short.

nats-py's `kv.keys()` answered "no keys" about once in 4,000 calls on a bucket holding two (its
end-of-initial-values marker can overtake the values); the recovery took that for "no rules" and
promoted a `must_not` replica. These tests read many times, under load, and demand the exact set.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import nats.js.errors
import pytest
from nats.js import JetStreamContext
from nats.js.kv import KV_MARKER_REASON

from libs.bus import kvread
from libs.bus.connection import Bus, connect
from libs.bus.provision import BLOCKS, CANDIDATES, DOWNTIME, INSTANCES, SETTINGS, provision
from libs.bus.server import NatsServer
from services.api.kvmirror import KVMirror


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    async with await connect(nats_server.url, "kvread-test") as b:
        await provision(b.js)
        yield b


async def _put(js: JetStreamContext, bucket: str, key: str, value: bytes, ttl_s: int | None = None) -> int:
    ack = await js.publish(f"$KV.{bucket}.{key}", value, msg_ttl=ttl_s)
    return int(ack.seq)


async def _last(js: JetStreamContext, bucket: str, key: str) -> tuple[dict[str, str], bytes] | None:
    """The raw last message of a key (None when the stream holds none)."""
    try:
        msg = await js.get_msg(f"KV_{bucket}", subject=f"$KV.{bucket}.{key}")
    except nats.js.errors.NotFoundError:
        return None
    return dict(msg.headers or {}), msg.data or b""


async def _expired(js: JetStreamContext, bucket: str, key: str) -> bool:
    """The server has acted on the key's TTL: message gone, or replaced by its expiry marker."""
    last = await _last(js, bucket, key)
    return last is None or KV_MARKER_REASON in last[0]


async def _wait_expired(js: JetStreamContext, bucket: str, keys: list[str], within_s: float = 15.0) -> None:
    until = time.monotonic() + within_s
    while not all([await _expired(js, bucket, k) for k in keys]):
        assert time.monotonic() < until, f"{bucket}: {keys} never expired"
        await asyncio.sleep(0.2)


async def _fill(js: JetStreamContext, bucket: str, live: int, deleted: int, expired: int) -> dict[str, bytes]:
    """`live` keys to keep, `deleted` keys deleted or purged, `expired` keys with a 1 s TTL (waited
    for). Returns the live set."""
    kv = await js.key_value(bucket)
    want = {f"live-{i:03d}": f"value {i}".encode() for i in range(live)}
    for key, value in want.items():
        await kv.put(key, value)
    for i in range(deleted):
        await kv.put(f"gone-{i}", b"soon deleted")
        if i % 2:
            await kv.purge(f"gone-{i}")
        else:
            await kv.delete(f"gone-{i}")
    for i in range(expired):
        await _put(js, bucket, f"ttl-{i}", b"soon expired", ttl_s=1)
    await _wait_expired(js, bucket, [f"ttl-{i}" for i in range(expired)])
    return want


async def test_an_empty_bucket_scans_empty_and_a_lone_tombstone_too(bus: Bus) -> None:
    assert await kvread.scan(bus.js, CANDIDATES) == []
    kv = await bus.js.key_value(CANDIDATES)
    await kv.put("x", b"1")
    await kv.delete("x")
    assert await kvread.scan(bus.js, CANDIDATES) == []


@pytest.mark.parametrize("bucket", [DOWNTIME, BLOCKS])  # without and with subject delete markers
async def test_deleted_purged_and_expired_keys_are_absent(bus: Bus, bucket: str) -> None:
    want = await _fill(bus.js, bucket, live=3, deleted=2, expired=2)
    if bucket == BLOCKS:  # the expired keys' last message is the server's marker, not silence
        last = await _last(bus.js, bucket, "ttl-0")
        assert last is not None and KV_MARKER_REASON in last[0]
    entries = await kvread.scan(bus.js, bucket)
    assert {e.key: e.value for e in entries} == want
    assert [e.key for e in entries] == sorted(want)


async def test_the_latest_value_and_its_revision(bus: Bus) -> None:
    kv = await bus.js.key_value(SETTINGS)  # history 5: older values stay in the stream
    await kv.put("a", b"1")
    await kv.put("b", b"2")
    rev = await kv.put("a", b"3")
    entries = await kvread.scan(bus.js, SETTINGS)
    assert [(e.key, e.value) for e in entries] == [("a", b"3"), ("b", b"2")]
    assert entries[0].revision == rev
    await kv.update("a", b"4", last=entries[0].revision)  # the revision is what compare-and-set expects


async def test_two_thousand_scans_under_load_all_return_exactly_the_live_set(bus: Bus) -> None:
    """40 live keys, 6 deleted or purged, 3 expired (markers in the stream), one key rewritten all the
    time; 2,000 scans, 20 at a time, while another bucket takes a stream of writes. Every scan must
    return exactly the live keys (the rewritten one included) and leave no consumer behind."""
    want = await _fill(bus.js, BLOCKS, live=40, deleted=6, expired=3)
    await _put(bus.js, BLOCKS, "churn", b"0")
    stop = asyncio.Event()
    writes = 0

    async def writer() -> None:  # other traffic: a bucket the scans do not read, and churn on this one
        nonlocal writes
        instances = await bus.js.key_value(INSTANCES)
        while not stop.is_set():
            await instances.put(f"w-{writes % 50}", b"x" * 200)
            await _put(bus.js, BLOCKS, "churn", str(writes).encode())
            writes += 1
            await asyncio.sleep(0)

    expected = set(want) | {"churn"}
    bad: list[str] = []
    scans = 0

    async def scanner(n: int) -> None:
        nonlocal scans
        for _ in range(n):
            entries = await kvread.scan(bus.js, BLOCKS)
            got = {e.key: e.value for e in entries}
            scans += 1
            if set(got) != expected or any(got[k] != v for k, v in want.items()):
                bad.append(f"scan {scans}: {len(got)} keys, missing {sorted(expected - set(got))[:5]}")

    started = time.monotonic()
    load = asyncio.create_task(writer())
    try:
        async with asyncio.timeout(100):
            await asyncio.gather(*(scanner(100) for _ in range(20)))
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await load
    took = time.monotonic() - started
    assert scans == 2000
    assert not bad, f"{len(bad)} short scans, e.g. {bad[:3]}"
    assert writes > 100, "the load did not run"
    info = await bus.js.stream_info(f"KV_{BLOCKS}")
    assert info.state.consumer_count == 0, "scans left consumers behind"
    print(f"2000 scans in {took:.1f}s with {writes} concurrent writes")


async def test_a_bucket_written_all_the_time_still_scans_complete_and_in_time(
    bus: Bus, nats_server: NatsServer
) -> None:
    """Issue 18: the shard leases and, during discovery, the registry are written without pause. A scan
    used to read on until the consumer said nothing was pending, which writers that never stop can
    deny for ever ("81 of 34 messages arrived within 5s": the writes made during the scan counted
    against the keys it expected). Eight writers rewrite the 300 keys and add new ones while 20 scans
    run: each must end, and hold every key that existed before it started."""
    kv = await bus.js.key_value(INSTANCES)  # history 1: a rewrite removes the key's older message
    base = {f"k-{i:03d}" for i in range(300)}
    for key in sorted(base):
        await kv.put(key, b"0")
    stop = asyncio.Event()
    writes = 0

    async def writer(n: int) -> None:
        nonlocal writes
        async with await connect(nats_server.url, f"kvread-writer-{n}") as own:  # its own connection
            i = n
            while not stop.is_set():
                key = f"k-{i % 300:03d}" if i % 50 else f"new-{n}-{i // 50 % 100}"  # at most 800 new
                await own.js.publish(f"$KV.{INSTANCES}.{key}", str(i).encode())
                writes, i = writes + 1, i + 7

    load = [asyncio.create_task(writer(n)) for n in range(8)]
    took: list[float] = []
    missing: list[str] = []
    try:
        while writes < 200:  # the writers are under way
            await asyncio.sleep(0.05)
        for _ in range(20):
            started = time.monotonic()
            entries = await kvread.scan(bus.js, INSTANCES, attempts=1)
            took.append(time.monotonic() - started)
            lost = base - {e.key for e in entries}
            if lost:
                missing.append(f"{len(lost)} keys missing, e.g. {sorted(lost)[:3]}")
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.gather(*load, return_exceptions=True)
    assert not missing, missing[:3]
    info = await bus.js.stream_info(f"KV_{INSTANCES}")
    assert info.state.consumer_count == 0, "scans left consumers behind"
    print(f"20 scans of {info.state.messages} keys under {writes} writes: slowest {max(took) * 1000:.0f} ms")


def test_the_time_allowed_grows_with_the_bucket_but_not_without_bound() -> None:
    assert kvread.scan_budget(34, 5.0) == 5.0
    assert kvread.scan_budget(5_000, 5.0) == 10.0
    assert kvread.scan_budget(10_000, 5.0) == 20.0
    assert kvread.scan_budget(1_000_000, 5.0) == 30.0


async def test_a_live_mirror_is_complete_the_moment_it_is_ready(bus: Bus) -> None:
    """The API's KV mirrors start from the scan: ready never means "some of them"."""
    want = await _fill(bus.js, CANDIDATES, live=5, deleted=1, expired=0)
    for _ in range(100):
        mirror = KVMirror(bus.js, CANDIDATES, retry_s=0.1).start()
        try:
            async with asyncio.timeout(10):
                await mirror.ready.wait()
            assert mirror.entries == want
        finally:
            await mirror.stop()
    mirror = KVMirror(bus.js, CANDIDATES).start()
    try:
        await mirror.ready.wait()
        kv = await bus.js.key_value(CANDIDATES)
        await kv.delete("live-000")
        await kv.put("new", b"n")
        async with asyncio.timeout(5):
            while "live-000" in mirror.entries or "new" not in mirror.entries:
                await asyncio.sleep(0.02)
    finally:
        await mirror.stop()
