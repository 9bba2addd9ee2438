"""Several workers: shard split, crash handover, losing NATS, probe-now, and secrets kept out of logs."""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import AsyncIterator

import pytest
from nats.aio.msg import Msg
from pydantic import SecretStr

from libs.bus.connection import Bus, connect
from libs.bus.probe_now import probe_now
from libs.bus.provision import provision
from libs.bus.server import NatsServer
from libs.bus.subjects import PROBE_NOW
from libs.discovery import registry as reg
from libs.models import InstanceKey, ProbeNowReply, ProbeNowRequest
from libs.mysql import Credentials
from libs.sandbox import TOPOLOGY_PASSWORD, Sandbox
from libs.topology.shards import DEFAULT_SHARD_COUNT, _score, shard_of
from tests.integration.prober.helpers import (
    Recorder,
    gaps,
    start_worker,
    stop_worker,
    wait_for,
    worker_config,
)

TTL_S = 2
POLL_S = 1.0
ROUND_S = 0.5


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    async with await connect(nats_server.url, "prober-test") as b:
        await provision(b.js)
        yield b


def _owner(workers: list[str], key: InstanceKey) -> str:
    shard = shard_of(key, DEFAULT_SHARD_COUNT)
    return max(workers, key=lambda w: (_score(w, shard), w))


def _split_ids(keys: list[InstanceKey]) -> tuple[str, str]:
    """Two worker names between which rendezvous hashing splits these instances (both get some)."""
    for i in range(1000):
        a, b = f"alpha{i}", f"beta{i}"
        owners = {_owner([a, b], k) for k in keys}
        if owners == {a, b}:
            return a, b
    raise AssertionError("no splitting pair of worker names found")


def _split_done(a: frozenset[int], b: frozenset[int]) -> bool:
    return bool(a) and bool(b) and not a & b and len(a | b) == DEFAULT_SHARD_COUNT


async def _register_all(bus: Bus, sandbox: Sandbox) -> list[InstanceKey]:
    keys = [sandbox.key(n) for n in sandbox.names]
    for key in keys:
        await reg.register(bus.js, key, source="cli", added_by="test")
    return keys


async def test_two_workers_split_the_instances_and_a_crash_hands_shards_over(
    sandbox4: Sandbox, nats_server: NatsServer, bus: Bus
) -> None:
    keys = await _register_all(bus, sandbox4)
    a_id, b_id = _split_ids(keys)
    rec = await Recorder().start(bus)
    a = await start_worker(nats_server.url, worker_config(sandbox4, a_id))
    b = await start_worker(nats_server.url, worker_config(sandbox4, b_id))
    crashed = False
    try:
        await wait_for("the split", lambda: _split_done(a.shards.held, b.shards.held), 10)
        await asyncio.sleep(1.5)
        t_split = time.monotonic()
        await asyncio.sleep(2.5)
        for key in keys:
            probers = {s.snap.prober for s in rec.of(key, t_split)}
            assert probers == {_owner([a_id, b_id], key)}, f"{key} probed by {probers}"
        # Crash a: its tasks stop and its leases are left to expire (no release).
        t_crash = time.monotonic()
        await stop_worker(a, release=False)
        crashed = True
        await wait_for("b holds every shard", lambda: len(b.shards.held) == DEFAULT_SHARD_COUNT, 10)
        took_over = time.monotonic() - t_crash
        await asyncio.sleep(2.0)
        bound = TTL_S + 2.0 + ROUND_S + POLL_S  # lease TTL + server expiry granularity + a round + a poll
        for key in keys:
            times = [s.at for s in rec.of(key, t_split)]
            worst = max(gaps([*times, time.monotonic()]))
            assert worst <= bound, f"{key} went unprobed for {worst:.2f}s (bound {bound:.1f}s)"
            assert {s.snap.prober for s in rec.of(key, t_crash + took_over + 0.1)} == {b_id}
        assert took_over <= TTL_S + 2.0 + ROUND_S + 0.5, f"takeover took {took_over:.2f}s"
    finally:
        if not crashed:
            await stop_worker(a)
        await stop_worker(b)


async def _gather_replies(bus: Bus, request: ProbeNowRequest, count: int) -> list[ProbeNowReply]:
    """Publish `request` on probe-now and collect `count` replies (bounded wait)."""
    replies: list[ProbeNowReply] = []
    inbox = bus.nc.new_inbox()

    async def on_reply(msg: Msg) -> None:
        replies.append(ProbeNowReply.model_validate_json(msg.data))

    sub = await bus.nc.subscribe(inbox, cb=on_reply)
    try:
        await bus.nc.publish(PROBE_NOW, request.model_dump_json().encode(), reply=inbox)
        await wait_for("the replies", lambda: len(replies) >= count, 15)
    finally:
        await sub.unsubscribe()
    return replies


async def test_probe_now_answers_within_100ms(sandbox4: Sandbox, nats_server: NatsServer, bus: Bus) -> None:
    keys = await _register_all(bus, sandbox4)
    a_id, b_id = _split_ids(keys)
    a = await start_worker(nats_server.url, worker_config(sandbox4, a_id, poll_s=30.0))
    b = await start_worker(nats_server.url, worker_config(sandbox4, b_id, poll_s=30.0))
    try:
        await wait_for("the split", lambda: _split_done(a.shards.held, b.shards.held), 10)
        took: list[float] = []
        for _ in range(7):
            before = time.monotonic()
            asked_at = time.time()
            got = await probe_now(bus.nc, keys, timeout=2.0, reason="test")
            took.append(time.monotonic() - before)
            assert set(got) == set(keys)
            assert all(s.reachable and s.probed_at.timestamp() >= asked_at - 0.01 for s in got.values())
            assert {s.prober for s in got.values()} == {a_id, b_id}
        assert statistics.median(took) < 0.1, f"probe-now took {took}"
        assert min(took) < 0.05, f"probe-now took {took}"
        # `anyone`: every worker probes every instance asked, whatever shards it holds, unpublished.
        published = a.loop.probes + b.loop.probes
        replies = await _gather_replies(bus, ProbeNowRequest(instances=tuple(keys), anyone=True), 2)
        assert {r.worker for r in replies} == {a_id, b_id}
        assert all({s.key for s in r.snapshots} == set(keys) for r in replies)
        assert a.loop.probes + b.loop.probes == published
        # An instance nobody's shard covers (no worker at all for it) returns what came, at the deadline.
        await stop_worker(b)
        before = time.monotonic()
        partial = await probe_now(bus.nc, keys, timeout=0.5, fallback=False)
        assert 0.45 <= time.monotonic() - before < 1.0
        mine = {k for k in keys if _owner([a_id, b_id], k) == a_id}
        assert set(partial) == mine
        # With the fallback (the default) the rest is asked of anyone: `a` probes them too, unpublished.
        if not a.shards.held >= {a.shard(k) for k in keys}:  # `a` has not taken b's shards over yet
            before = time.monotonic()
            published = a.loop.probes
            everything = await probe_now(bus.nc, keys, timeout=0.5)
            assert time.monotonic() - before < 2.0
            assert set(everything) == set(keys)
            assert all(s.prober == a_id and s.reachable for s in everything.values())
            if not a.shards.held >= {a.shard(k) for k in keys}:  # (a takeover meanwhile probes them too)
                assert a.loop.probes - published == len(mine)  # the orphans' probes were not published
    finally:
        await stop_worker(a)
        if b.started:
            await stop_worker(b)


async def test_a_worker_that_loses_nats_stops_probing_and_resumes_when_it_returns(
    sandbox4: Sandbox, nats_server: NatsServer, bus: Bus
) -> None:
    await _register_all(bus, sandbox4)
    await bus.close()
    worker = await start_worker(nats_server.url, worker_config(sandbox4, "lonely"))
    try:
        await wait_for("probing", lambda: worker.loop.probes >= 8, 10)
        nats_server.stop()
        t0 = time.monotonic()
        await wait_for(
            "every shard dropped", lambda: not worker.shards.held and not worker.loop.owned, TTL_S + 1
        )
        assert time.monotonic() - t0 <= TTL_S
        probes = worker.loop.probes
        await asyncio.sleep(2.5)
        assert worker.loop.probes == probes, "probing went on without NATS"
        nats_server.start()
        await wait_for("probing again", lambda: worker.loop.probes >= probes + 4, TTL_S + 10)
    finally:
        await stop_worker(worker)


async def test_credentials_never_reach_the_logs(
    sandbox4: Sandbox, nats_server: NatsServer, bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-password-" + "x7q"
    keys = await _register_all(bus, sandbox4)
    rec = await Recorder().start(bus)
    good = await start_worker(nats_server.url, worker_config(sandbox4, "good", liveness_watch=True))
    await wait_for("probes", lambda: good.loop.probes >= 8, 10)
    await stop_worker(good)
    bad_creds = Credentials(user=sandbox4.topology_creds.user, password=SecretStr(wrong))
    bad = await start_worker(nats_server.url, worker_config(sandbox4, "bad", credentials=bad_creds))
    try:
        await wait_for("denied snapshots", lambda: any(s.snap.error_code == 1045 for s in rec.seen), 10)
        assert repr(bad.config).count(wrong) == 0
    finally:
        await stop_worker(bad)
    assert keys
    published = "".join(s.snap.model_dump_json() for s in rec.seen)
    for secret in (wrong, TOPOLOGY_PASSWORD):
        assert secret not in caplog.text
        assert secret not in published
