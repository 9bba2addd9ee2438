"""The recovery leader keeps baton_masters holding every master before any failure (seeding), and
`submit-masters-to-kv-stores` makes the kvpublisher write Consul again: real mariadbd sandbox, prober +
analyzer + recovery in-process, a real nats-server, a kvpublisher and a test Consul (a subprocess that
is stopped and wiped to lose its data)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from nats.aio.msg import Msg

from libs.bus.connection import Bus, connect
from libs.bus.provision import MASTERS, provision
from libs.bus.server import NatsServer
from libs.bus.subjects import kv_key
from libs.models import Event, MasterRecord
from libs.models.operator import CommandStatus
from libs.recovery.keeper import SEEDED
from libs.sandbox.spec import master_replicas
from tests.fixtures.consul import ConsulDCFactory
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.kvpublisher.helpers import (
    read_tree,
    running_publisher,
    time_until_published,
    wait_for,
)
from tests.integration.recovery.stack import Stack, master_of

VERB = "submit-masters-to-kv-stores"


async def wait_record(bus: Bus, alias: str, within: float = 30.0) -> MasterRecord:
    found: list[MasterRecord] = []

    async def there() -> bool:
        record = await master_of(bus.js, alias)
        if record is not None:
            found.append(record)
        return record is not None

    await wait_for(there, within, f"a baton_masters record for {alias}", interval=0.2)
    return found[-1]


@contextlib.asynccontextmanager
async def audit_masters(bus: Bus) -> AsyncIterator[list[Event]]:
    seen: list[Event] = []

    async def on_msg(msg: Msg) -> None:
        seen.append(Event.model_validate_json(msg.data))

    sub = await bus.nc.subscribe("baton.audit.masters", cb=on_msg)
    try:
        yield seen
    finally:
        await sub.unsubscribe()


@contextlib.asynccontextmanager
async def fresh_bus(url: str) -> AsyncIterator[Bus]:
    async with await connect([url], "seeding-test") as bus:
        await provision(bus.js)
        yield bus


@pytest.mark.timeout(180)
async def test_masters_are_seeded_and_consul_is_restored_by_submit(
    sandbox_factory: SandboxFactory, nats_server: NatsServer, consul_dcs: ConsulDCFactory
) -> None:
    sb = await sandbox_factory(master_replicas(2))
    (dc,) = consul_dcs(1)
    master = sb.key(sb.master)
    alias = str(master)  # no DetectClusterAliasQuery: the alias is the cluster name
    async with fresh_bus(nats_server.url) as bus, audit_masters(bus) as audit:
        stack = await Stack(sb, nats_server.url).start()
        try:
            assert stack.recovery is not None
            record = await wait_record(bus, alias)
            epoch = stack.recovery.status()["epoch"]
            assert (record.master, record.cluster, record.alias) == (master, alias, alias)
            assert record.epoch == epoch and record.recovery_uid is None

            async def seeded_event() -> bool:
                return any(e.type == SEEDED and e.cluster == alias for e in audit)

            await wait_for(seeded_event, 10, "a masters.seeded event", interval=0.1)
            event = next(e for e in audit if e.type == SEEDED)
            assert event.epoch == epoch and event.instance == str(master) and event.source == "recovery"

            async with (
                running_publisher(bus, {dc.name: dc.address}, reconcile_seconds=3600) as publisher,
                httpx.AsyncClient(base_url=dc.url, timeout=2.0) as http,
            ):
                # before any failure, Consul holds the master
                await time_until_published([http], record, timeout=30)

                # Consul loses its data: nothing in baton_masters changes, the periodic reconcile is an
                # hour away, so only the reconcile the submit asks for can bring the keys back
                reconciles = publisher.status()["dcs"][dc.name]["reconciles"]
                await dc.astop()
                dc.reset()
                await dc.astart()

                async def wiped() -> bool:
                    return await read_tree(http, alias) == {}

                await wait_for(wiped, 10, "the wiped Consul answering with no keys", interval=0.1)
                reply = await stack.command(VERB)
                assert reply.status is CommandStatus.OK, reply.message
                assert reply.message == "Submitted 1 masters"
                assert {"Key": f"mysql/master/{alias}", "Value": alias} in reply.details
                assert {"Key": f"mysql/master/{alias}/baton-epoch", "Value": str(epoch)} in reply.details
                await time_until_published([http], record, timeout=30)
                assert publisher.status()["dcs"][dc.name]["reconciles"] > reconciles

                # a cluster hint: by a member instance; an unknown one is orchestrator's error
                reply = await stack.command(VERB, cluster=str(sb.key("replica1")))
                assert reply.status is CommandStatus.OK and reply.message == "Submitted 1 masters"
                reply = await stack.command(VERB, cluster="no-such-cluster")
                assert reply.status is CommandStatus.NOT_FOUND
                assert reply.message == "Unable to determine cluster name. clusterHint=no-such-cluster"
            assert await master_of(bus.js, alias) == record  # submits of a right record write nothing
        finally:
            await stack.stop()


@pytest.mark.timeout(180)
async def test_a_seed_never_overwrites_a_record_and_submit_never_one_of_a_newer_epoch(
    sandbox_factory: SandboxFactory, nats_server: NatsServer
) -> None:
    sb = await sandbox_factory(master_replicas(1))
    master, replica = sb.key(sb.master), sb.key("replica1")
    alias = str(master)
    newer = MasterRecord(cluster=alias, alias=alias, master=replica, epoch=10**12, recovery_uid="elsewhere")
    async with fresh_bus(nats_server.url) as bus, audit_masters(bus) as audit:
        kv = await bus.js.key_value(MASTERS)
        await kv.create(kv_key(alias), newer.model_dump_json().encode())
        stack = await Stack(sb, nats_server.url).start()
        try:
            assert stack.recovery is not None
            epoch = stack.recovery.status()["epoch"]
            assert epoch < newer.epoch
            # several seeding ticks (every second) with a live writable master in the leader's memory
            await asyncio.sleep(4)
            state = stack.recovery.memory.states[master]
            assert state.last_probe.reachable and not state.last_probe.read_only
            assert await master_of(bus.js, alias) == newer
            assert not [e for e in audit if e.type == SEEDED]

            # the operator's submit does not replace a newer epoch's record either
            reply = await stack.command(VERB, cluster=alias)
            assert reply.status is CommandStatus.REFUSED and "newer" in reply.message, reply.message
            reply = await stack.command(VERB)
            assert reply.status is CommandStatus.OK and reply.message == "Submitted 0 masters"
            assert reply.details == []
            assert await master_of(bus.js, alias) == newer

            # control: with the record gone, the seeder creates it (it was running all along)
            await kv.delete(kv_key(alias))
            seeded = await wait_record(bus, alias, within=20)
            assert seeded.master == master and seeded.epoch == epoch

            # a record of an older epoch naming a server that is not a writable master: the submit
            # replaces it (compare-and-set, the leader's epoch); seeding would have left it alone
            stale = MasterRecord(cluster=alias, alias=alias, master=replica, epoch=1)
            await kv.put(kv_key(alias), stale.model_dump_json().encode())
            await asyncio.sleep(2)
            assert await master_of(bus.js, alias) == stale
            reply = await stack.command(VERB, cluster=alias)
            assert reply.status is CommandStatus.OK and reply.message == "Submitted 1 masters"
            current = await master_of(bus.js, alias)
            assert current is not None and current.master == master and current.epoch == epoch
        finally:
            await stack.stop()
