"""The baton_masters watch after its NATS server restarts: a new record reaches Consul within seconds.

nats-py's KV watch is an ordered consumer: when the server it lives on restarts, the consumer is gone
and the client notices only when an idle heartbeat is missed, so a record written meanwhile waited for
that (seconds) or for the reconcile (30 s by default). The kvpublisher's watch guard compares the
bucket's last sequence with what the watch delivered every `WATCH_GUARD_S` and catches up itself.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from libs.bus.connection import Bus, connect
from libs.bus.provision import provision
from libs.bus.server import NatsServer
from services.kvpublisher.service import WATCH_GUARD_S
from tests.fixtures.consul import ConsulProcess
from tests.integration.kvpublisher.conftest import addresses
from tests.integration.kvpublisher.helpers import (
    master,
    running_publisher,
    time_until_published,
    write_master,
)

BOUND_S = 2 * WATCH_GUARD_S + 2.0  # two guard rounds and the Consul write, with room for a busy machine


async def test_a_record_written_after_the_server_restarts_reaches_consul_within_seconds(
    nats_server: NatsServer, dcs: list[ConsulProcess], clients: list[httpx.AsyncClient]
) -> None:
    async with await connect(nats_server.url, "kvpublisher-under-test", reconnect_wait_s=0.2) as bus:
        await provision(bus.js)
        async with running_publisher(bus, addresses(dcs), reconcile_seconds=300) as publisher:
            first = master("db-1.example.com", 1)
            await write_master(bus, first)
            await time_until_published(clients, first)

            await asyncio.to_thread(nats_server.stop)
            await asyncio.to_thread(nats_server.start)
            async with await connect(nats_server.url, "writer") as writer:
                await _wait_writable(writer)
                second = master("db-2.example.com", 2)
                written = time.monotonic()
                await write_master(writer, second)
                took = await time_until_published(clients, second, timeout=BOUND_S + 30)
            print(f"after the restart: in Consul {max(took):.2f}s after the write (bound {BOUND_S:g}s)")
            assert time.monotonic() - written < BOUND_S, f"took {took} (bound {BOUND_S}s)"
            assert publisher.watch_catch_ups >= 1 or max(took) < 1.0  # the guard did it, or the watch
            assert publisher.status()["ready"]


async def _wait_writable(bus: Bus, within: float = 30.0) -> None:
    """JetStream answers after a restart (recovering the streams takes a moment)."""
    deadline = time.monotonic() + within
    while True:
        try:
            await bus.js.stream_info("KV_baton_masters")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
