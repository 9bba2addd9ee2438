from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from libs.bus import lease as L
from libs.bus.connection import Bus, connect
from libs.bus.provision import LEADER, SHARDS, provision
from libs.bus.server import NatsServer
from libs.errors import BusError, LeadershipLost

KEY = "recovery"


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    async with await connect(nats_server.url, "lease-test") as b:
        await provision(b.js)
        yield b


async def test_two_holders_race_exactly_one_wins(bus: Bus) -> None:
    results = await asyncio.gather(*(L.acquire(bus.js, LEADER, KEY, f"holder-{i}", 5) for i in range(8)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    info = await L.read(bus.js, LEADER, KEY)
    assert info is not None and info.holder == winners[0].holder
    assert info.revision == winners[0].epoch == winners[0].revision


async def test_renew_keeps_it_past_the_ttl(bus: Bus) -> None:
    lease = await L.acquire(bus.js, LEADER, KEY, "a", 2)
    assert lease is not None
    for _ in range(3):  # 3 s in all: longer than the TTL
        await asyncio.sleep(1.0)
        renewed = await L.renew(bus.js, lease)
        assert renewed.revision > lease.revision and renewed.epoch == lease.epoch
        lease = renewed
    assert await L.acquire(bus.js, LEADER, KEY, "b", 2) is None
    info = await L.read(bus.js, LEADER, KEY)
    assert info is not None and info.holder == "a"


async def test_expired_lease_goes_to_the_other_with_a_higher_epoch(bus: Bus) -> None:
    first = await L.acquire(bus.js, SHARDS, "shard-1", "a", 2)
    assert first is not None
    first = await L.renew(bus.js, first)
    watcher = await (await bus.js.key_value(SHARDS)).watch("shard-1", include_history=False)
    start = time.monotonic()
    second = None
    while second is None and time.monotonic() - start < 8:  # ttl + coarse expiry: ~4 s seen
        second = await L.acquire(bus.js, SHARDS, "shard-1", "b", 2)
        if second is None:
            await asyncio.sleep(0.1)
    took = time.monotonic() - start
    assert second is not None, "the expired lease was never released by the server"
    assert took >= 1.0, f"lease expired too early ({took:.2f}s for a 2 s TTL)"
    assert second.epoch > first.revision >= first.epoch
    with pytest.raises(LeadershipLost):
        await L.renew(bus.js, first)
    assert not await L.release(bus.js, first)
    info = await L.read(bus.js, SHARDS, "shard-1")
    assert info is not None and info.holder == "b"
    # The bucket's marker TTL makes the expiry visible to watchers (a PURGE), not just silence.
    ops: list[tuple[str | None, int | None]] = []
    while not ops or ops[-1][1] != second.epoch:
        entry = await watcher.updates(timeout=2)  # None marks "initial values delivered"
        if entry is not None:
            ops.append((entry.operation, entry.revision))
    await watcher.stop()  # type: ignore[no-untyped-call]
    assert ("PURGE", second.epoch - 1) in ops, ops


async def test_release_lets_the_other_take_it_at_once(bus: Bus) -> None:
    a = await L.acquire(bus.js, LEADER, KEY, "a", 30)
    assert a is not None
    assert await L.acquire(bus.js, LEADER, KEY, "b", 30) is None
    assert await L.release(bus.js, a)
    assert await L.read(bus.js, LEADER, KEY) is None
    b = await L.acquire(bus.js, LEADER, KEY, "b", 30)
    assert b is not None and b.epoch > a.epoch
    with pytest.raises(LeadershipLost):
        await L.renew(bus.js, a)


async def test_renew_after_a_lost_reply_adopts_our_own_write(bus: Bus) -> None:
    """A renewal that landed but whose ack we never saw must not cost us the lease."""
    a = await L.acquire(bus.js, LEADER, KEY, "a", 10)
    assert a is not None
    landed = await L.renew(bus.js, a)  # pretend we never saw this reply: keep using `a`
    again = await L.renew(bus.js, a)
    assert again.revision > landed.revision and again.epoch == a.epoch


async def test_keeper_renews_and_reports_a_takeover(bus: Bus) -> None:
    a = await L.acquire(bus.js, LEADER, KEY, "a", 2)
    assert a is not None
    reasons: list[str] = []
    keeper = L.LeaseKeeper(bus.js, a, on_lost=reasons.append).start()
    try:
        await asyncio.sleep(3.0)  # longer than the TTL: only renewals keep it
        assert keeper.held and keeper.lease.revision > a.revision
        # Someone overwrites the key (an operator, a bug): the next renewal must notice.
        await bus.js.publish(f"$KV.{LEADER}.{KEY}", b'{"holder": "intruder"}')
        await asyncio.wait_for(keeper.lost.wait(), timeout=3.0)
        assert not keeper.held
        assert len(reasons) == 1 and "intruder" in reasons[0]
    finally:
        await keeper.stop()


async def test_keeper_stop_releases(bus: Bus) -> None:
    a = await L.acquire(bus.js, LEADER, KEY, "a", 30)
    assert a is not None
    keeper = L.LeaseKeeper(bus.js, a).start()
    await keeper.stop()
    assert not keeper.held
    assert await L.read(bus.js, LEADER, KEY) is None


async def test_keeper_declares_lost_by_its_deadline_when_the_server_dies(nats_server: NatsServer) -> None:
    async with await connect(nats_server.url, "lease-test", request_timeout_s=30) as bus:
        await provision(bus.js)
        lease = await L.acquire(bus.js, LEADER, KEY, "a", 3)
        assert lease is not None
        keeper = L.LeaseKeeper(bus.js, lease, margin_s=0.5).start()
        await asyncio.sleep(1.5)  # at least one renewal
        assert keeper.held and keeper.lease.revision > lease.revision
        deadline = keeper.deadline
        nats_server.kill()
        await asyncio.wait_for(keeper.lost.wait(), timeout=5.0)
        late = time.monotonic() - deadline
        assert -0.05 <= late < 0.3, f"declared lost {late:+.3f}s from its deadline"
        assert keeper.reason is not None and "deadline" in keeper.reason
        await keeper.stop(release_lease=False)


async def test_bad_ttl_refused(bus: Bus) -> None:
    with pytest.raises(ValueError):
        await L.acquire(bus.js, LEADER, KEY, "a", 0)


async def test_missing_bucket_is_a_bus_error(nats_server: NatsServer) -> None:
    async with await connect(nats_server.url, "lease-test") as b:
        with pytest.raises(BusError):
            await L.acquire(b.js, "no_such_bucket", KEY, "a", 5)
