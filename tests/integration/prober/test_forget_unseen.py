"""UnseenInstanceForgetHours against a real nats-server and MariaDB: the owning worker forgets an instance
no probe has reached for longer than the limit (here 2 s instead of hours) and keeps the live ones; with
the forgetting off, nothing is forgotten."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from libs.bus.connection import Bus, connect
from libs.bus.provision import provision
from libs.bus.server import NatsServer
from libs.discovery import registry as reg
from libs.models import InstanceKey
from libs.sandbox.server import free_port
from libs.sandbox.spec import master_replicas
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.prober.helpers import Recorder, start_worker, stop_worker, wait_for, worker_config


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    async with await connect(nats_server.url, "forget-test") as b:
        await provision(b.js)
        yield b


@pytest.mark.parametrize("forget", [True, False], ids=["forget-after-2s", "off"])
async def test_long_unseen_instance_is_forgotten(
    sandbox_factory: SandboxFactory,
    nats_server: NatsServer,
    bus: Bus,
    caplog: pytest.LogCaptureFixture,
    forget: bool,
) -> None:
    sb = await sandbox_factory(master_replicas(0))
    live = sb.key("master")
    gone = InstanceKey(host="127.0.0.1", port=free_port())  # nothing listens there
    for key in (live, gone):
        await reg.register(bus.js, key, source="test", added_by="test")
    rec = await Recorder().start(bus)
    after = timedelta(seconds=2) if forget else None
    worker = await start_worker(nats_server.url, worker_config(sb, "w-forget", forget_unseen_after=after))
    try:
        with caplog.at_level(logging.WARNING, logger="services.prober.service"):
            await wait_for("both probed", lambda: {s.snap.key for s in rec.seen} >= {live, gone}, 20)
            if forget:
                await wait_for("the unseen instance forgotten", _absent(bus, gone), 30)
            else:
                await asyncio.sleep(5)  # well past the 2 s the other case forgets after
            registered = set(await reg.read_registry(bus.js))
    finally:
        await stop_worker(worker)
    assert live in registered
    assert (gone in registered) is not forget
    warned = [r.getMessage() for r in caplog.records if "UnseenInstanceForgetHours" in r.getMessage()]
    assert bool(warned) is forget
    if forget:
        assert str(gone) in warned[0] and "not seen for" in warned[0]


def _absent(bus: Bus, key: InstanceKey):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return key not in await reg.read_registry(bus.js)

    return check
