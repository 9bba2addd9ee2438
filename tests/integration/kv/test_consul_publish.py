"""ConsulKVStore against the test Consul: fenced, atomic publishing and error translation."""

from __future__ import annotations

import asyncio
import random
import time

import httpx
import pytest

from libs.errors import KVError, StaleEpoch
from libs.kv.base import MasterKVStore, PublishOutcome
from libs.kv.consul import ConsulKVStore
from libs.kv.layout import cluster_master_kv_pairs
from tests.consul_server import ConsulTestServer, ServerConfig
from tests.fixtures.consul import ConsulDCFactory, free_port
from tests.integration.kv.helpers import MAIN, PREFIX, master, read_tree

TOKEN = "kv-write-token-0123456789"


async def test_publish_writes_every_key_in_one_transaction(
    kv_store: ConsulKVStore, consul_server: ConsulTestServer
) -> None:
    assert isinstance(kv_store, MasterKVStore)
    record = master("db-2.example.com", 3307, epoch=3, ipv4="10.0.0.2")
    result = await kv_store.publish_master(record, PREFIX)
    assert result.outcome is PublishOutcome.WRITTEN
    assert (result.previous_value, result.previous_epoch) == (None, None)
    entries = {k: e for k, e in consul_server.store.entries.items() if k.startswith(MAIN)}
    assert {k: (e.value or b"").decode() for k, e in entries.items()} == cluster_master_kv_pairs(
        record, PREFIX
    )
    assert {e.modify_index for e in entries.values()} == {result.index}  # one txn → one index

    seen = await kv_store.read_cluster(PREFIX, "shop")
    assert seen is not None
    assert (seen.value, seen.epoch, seen.index) == ("db-2.example.com:3307", 3, result.index)
    assert seen.subkeys["port"] == "3307" and seen.subkeys["ipv4"] == "10.0.0.2"
    assert await kv_store.read_cluster(PREFIX, "sho") is None  # prefix neighbours are not matched


async def test_older_epoch_is_refused_and_nothing_changes(
    kv_store: ConsulKVStore, consul_server: ConsulTestServer
) -> None:
    await kv_store.publish_master(master("db-new", epoch=5), PREFIX)
    before, raft_before = consul_server.store.snapshot(), consul_server.store.raft_index
    with pytest.raises(StaleEpoch, match="epoch 5"):
        await kv_store.publish_master(master("db-old", epoch=4), PREFIX)
    assert consul_server.store.snapshot() == before
    assert consul_server.store.raft_index == raft_before  # not even a failed write was sent


async def test_equal_epoch_same_value_is_a_no_op(
    kv_store: ConsulKVStore, consul_server: ConsulTestServer
) -> None:
    record = master("db-2", epoch=5)
    first = await kv_store.publish_master(record, PREFIX)
    raft_before = consul_server.store.raft_index
    again = await kv_store.publish_master(record, PREFIX)
    assert again.outcome is PublishOutcome.UNCHANGED
    assert again.index == first.index
    assert consul_server.store.raft_index == raft_before


async def test_equal_epoch_new_value_and_repair_of_a_damaged_subkey(
    kv_store: ConsulKVStore, consul_server: ConsulTestServer
) -> None:
    await kv_store.publish_master(master("db-2", epoch=5), PREFIX)
    moved = await kv_store.publish_master(master("db-3", epoch=5), PREFIX)
    assert moved.outcome is PublishOutcome.WRITTEN and moved.previous_value == "db-2:3306"
    async with httpx.AsyncClient(base_url=consul_server.url) as http:
        await http.put(f"/v1/kv/{MAIN}/port", content=b"9999")  # an operator's stray edit
        repaired = await kv_store.publish_master(master("db-3", epoch=5), PREFIX)
        assert repaired.outcome is PublishOutcome.WRITTEN
        assert (await read_tree(http))[f"{MAIN}/port"] == "3306"


async def test_keys_written_by_orchestrator_are_taken_over(
    kv_store: ConsulKVStore, consul_server: ConsulTestServer
) -> None:
    async with httpx.AsyncClient(base_url=consul_server.url) as http:
        for key, value in cluster_master_kv_pairs(master("orc-master", epoch=0), PREFIX).items():
            if not key.endswith("baton-epoch"):
                await http.put(f"/v1/kv/{key}", content=value.encode())
        seen = await kv_store.read_cluster(PREFIX, "shop")
        assert seen is not None and seen.value == "orc-master:3306" and seen.epoch is None
        result = await kv_store.publish_master(master("db-2", epoch=0), PREFIX)
        assert result.outcome is PublishOutcome.WRITTEN and result.previous_epoch is None
        assert (await read_tree(http))[MAIN] == "db-2:3306"


async def test_garbage_in_the_epoch_key_refuses_to_write(
    kv_store: ConsulKVStore, consul_server: ConsulTestServer
) -> None:
    async with httpx.AsyncClient(base_url=consul_server.url) as http:
        await http.put(f"/v1/kv/{MAIN}/baton-epoch", content=b"seven")
    before = consul_server.store.snapshot()
    with pytest.raises(KVError, match="not an epoch"):
        await kv_store.publish_master(master("db-2", epoch=9), PREFIX)
    assert consul_server.store.snapshot() == before


async def test_concurrent_publishers_leave_the_highest_epoch(consul_server: ConsulTestServer) -> None:
    n = 12
    leaders = [
        ConsulKVStore(consul_server.address, datacenter="dc1", max_attempts=n) for _ in range(3)
    ]  # three processes that each believe they lead
    records = [master(f"db-{e}", epoch=e) for e in range(1, n + 1)]
    random.Random(7).shuffle(records)
    try:
        outcomes = await asyncio.gather(
            *(leaders[i % 3].publish_master(r, PREFIX) for i, r in enumerate(records)), return_exceptions=True
        )
        assert all(not isinstance(o, BaseException) or isinstance(o, StaleEpoch) for o in outcomes), outcomes
        final = await leaders[0].read_cluster(PREFIX, "shop")
        assert final is not None and (final.epoch, final.value) == (n, f"db-{n}:3306")
        assert final.subkeys["hostname"] == f"db-{n}"
    finally:
        for leader in leaders:
            await leader.close()


async def test_deposed_leaders_late_write_loses(consul_server: ConsulTestServer) -> None:
    old = ConsulKVStore(consul_server.address, datacenter="dc1")
    new = ConsulKVStore(consul_server.address, datacenter="dc1")
    try:
        await old.publish_master(master("db-1", epoch=1), PREFIX)
        await new.publish_master(master("db-2", epoch=2), PREFIX)
        with pytest.raises(StaleEpoch):
            await old.publish_master(master("db-3", epoch=1), PREFIX)
        seen = await new.read_cluster(PREFIX, "shop")
        assert seen is not None and (seen.value, seen.epoch) == ("db-2:3306", 2)
    finally:
        await old.close()
        await new.close()


async def test_consul_down_is_a_fast_kverror_naming_dc_and_address() -> None:
    port = free_port()  # nothing listens there
    store = ConsulKVStore(f"127.0.0.1:{port}", datacenter="dc-down", timeout=5.0)
    try:
        started = time.monotonic()
        with pytest.raises(KVError) as caught:
            await store.publish_master(master("db-2", epoch=1), PREFIX)
        assert time.monotonic() - started < 1.0
        assert "dc-down" in str(caught.value) and f"127.0.0.1:{port}" in str(caught.value)
        with pytest.raises(KVError, match="cannot connect"):
            await store.read_cluster(PREFIX, "shop")
    finally:
        await store.close()


async def test_hung_consul_times_out_within_the_bound() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # accept, read nothing, answer nothing

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = ConsulKVStore(f"127.0.0.1:{port}", datacenter="dc-hung", timeout=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(KVError, match=r"no answer within 0\.3s"):
            await store.publish_master(master("db-2", epoch=1), PREFIX)
        assert time.monotonic() - started < 1.5
    finally:
        await store.close()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_acl_token_required() -> None:
    async with ConsulTestServer(ServerConfig(acl_token=TOKEN)) as server:
        good = ConsulKVStore(server.address, datacenter="dc1", token=TOKEN)
        anonymous = ConsulKVStore(server.address, datacenter="dc1")
        wrong = ConsulKVStore(server.address, datacenter="dc1", token="not-the-token")
        try:
            assert TOKEN not in repr(good)
            result = await good.publish_master(master("db-2", epoch=1), PREFIX)
            assert result.outcome is PublishOutcome.WRITTEN
            for store in (anonymous, wrong):
                with pytest.raises(KVError) as caught:
                    await store.publish_master(master("db-3", epoch=2), PREFIX)
                assert not isinstance(caught.value, StaleEpoch)
                assert "ACL" in str(caught.value) and TOKEN not in str(caught.value)
            seen = await good.read_cluster(PREFIX, "shop")
            assert seen is not None and seen.value == "db-2:3306"
        finally:
            for store in (good, anonymous, wrong):
                await store.close()


async def test_environment_cannot_redirect_or_retoken_the_client(
    consul_server: ConsulTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONSUL_HTTP_ADDR", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "from-the-environment")
    store = ConsulKVStore(consul_server.address, datacenter="dc1")
    try:
        assert (await store.publish_master(master("db-2", epoch=1), PREFIX)).outcome is PublishOutcome.WRITTEN
    finally:
        await store.close()


async def test_dc_that_was_down_catches_up_once_back(consul_dcs: ConsulDCFactory) -> None:
    [dc] = consul_dcs(1)
    store = ConsulKVStore(dc.address, datacenter=dc.name, timeout=2.0)
    try:
        await store.publish_master(master("db-1", epoch=1), PREFIX)
        await dc.astop()
        with pytest.raises(KVError, match="dc1"):
            await store.publish_master(master("db-2", epoch=2), PREFIX)
        await dc.astart()
        seen = await store.read_cluster(PREFIX, "shop")
        assert seen is not None and (seen.value, seen.epoch) == ("db-1:3306", 1)  # data kept
        result = await store.publish_master(master("db-2", epoch=2), PREFIX)
        assert result.outcome is PublishOutcome.WRITTEN and result.previous_epoch == 1
    finally:
        await store.close()
