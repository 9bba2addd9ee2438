from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from nats.js import api

from libs.bus import subjects
from libs.bus.connection import Bus, connect
from libs.bus.provision import BUCKETS, MASTERS, STREAMS, provision
from libs.bus.server import NatsServer
from libs.errors import BusError


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    async with await connect(nats_server.url, "provision-test") as b:
        yield b


async def test_provision_creates_everything_and_is_idempotent(bus: Bus) -> None:
    first = await provision(bus.js)
    assert set(first.values()) == {"created"}
    assert len(first) == len(STREAMS) + len(BUCKETS)
    second = await provision(bus.js)
    assert set(second) == set(first) and set(second.values()) == {"updated"}
    # Concurrent provisioners (every service at start) do not trip over each other.
    await asyncio.gather(*(provision(bus.js) for _ in range(4)))

    snap = (await bus.js.stream_info("BATON_SNAPSHOTS")).config
    assert snap.subjects == ["baton.snapshot.>"] and snap.max_msgs_per_subject == 5
    assert snap.max_age == 3600
    det = (await bus.js.stream_info("BATON_DETECTIONS")).config
    assert det.duplicate_window == 600
    for spec in BUCKETS:
        kv = await bus.js.key_value(spec.bucket)  # opens like any nats-py bucket
        status = await kv.status()
        assert status.history == spec.history
        assert status.stream_info.config.allow_msg_ttl
    leader = (await bus.js.stream_info("KV_baton_leader")).config
    assert leader.subject_delete_marker_ttl == 60
    assert (await (await bus.js.key_value(MASTERS)).status()).history >= 5


async def test_existing_bucket_with_other_settings_is_updated(bus: Bus) -> None:
    await bus.js.create_key_value(bucket=MASTERS, history=2)
    await bus.js.add_stream(name="BATON_SNAPSHOTS", subjects=["baton.snapshot.>"], max_age=60.0)
    result = await provision(bus.js)
    assert result["KV_baton_masters"] == "updated" and result["BATON_SNAPSHOTS"] == "updated"
    assert (await (await bus.js.key_value(MASTERS)).status()).history == 10
    assert (await bus.js.stream_info("BATON_SNAPSHOTS")).config.max_age == 3600


async def test_snapshot_stream_keeps_last_few_per_instance(bus: Bus) -> None:
    await provision(bus.js)
    subject = subjects.snapshot_subject("db-1.dc2.example.com:3306")
    for i in range(8):
        await bus.js.publish(subject, str(i).encode())
    info = await bus.js.stream_info("BATON_SNAPSHOTS", subjects_filter=subject)
    assert info.state.messages == 5
    last = await bus.js.get_last_msg("BATON_SNAPSHOTS", subject)
    assert last.data == b"7"


async def test_incompatible_change_is_a_bus_error(bus: Bus) -> None:
    await bus.js.add_stream(name="BATON_AUDIT", subjects=["baton.audit.>"], storage=api.StorageType.MEMORY)
    with pytest.raises(BusError, match="BATON_AUDIT"):
        await provision(bus.js)


async def test_bad_replica_count_refused(bus: Bus) -> None:
    with pytest.raises(BusError):
        await provision(bus.js, replicas=2)


async def test_connect_failure_is_one_line(nats_server: NatsServer) -> None:
    url = nats_server.url
    nats_server.stop()
    with pytest.raises(BusError) as info:
        await connect(url.replace("nats://", "nats://user:s3cret@"), "x", connect_timeout_s=1.0)
    text = str(info.value)
    assert "\n" not in text and "s3cret" not in text and str(nats_server.port) in text


async def test_server_restart_keeps_streams(nats_server: NatsServer) -> None:
    async with await connect(nats_server.url, "restart-test") as b:
        await provision(b.js)
        await b.js.publish(subjects.audit_subject("test"), b"kept")
    nats_server.stop()
    nats_server.start()
    async with await connect(nats_server.url, "restart-test") as b:
        msg = await b.js.get_last_msg("BATON_AUDIT", "baton.audit.test")
        assert msg.data == b"kept"
