"""Provisioning waits out a cluster that is not ready yet, instead of killing the service that asked.

A service started before its NATS cluster has a quorum (or while a dozen others create R3 streams on a
loaded machine) gets timeouts and "cluster not available" answers; `provision` retries those with
bounded back-off, and still fails fast, naming the stream, on an answer that will not change."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from libs.bus.cluster import NatsCluster
from libs.bus.connection import connect
from libs.bus.provision import STREAMS, provision
from libs.errors import BusError


async def test_provision_waits_for_the_quorum_that_comes(tmp_path: Path) -> None:
    cluster = NatsCluster(tmp_path / "nats", 3)
    try:
        cluster.start(0)  # one node of three: no meta leader, no quorum
        bus = await connect(cluster.nodes[0].url, "patience", request_timeout_s=1.0)
        try:
            task = asyncio.create_task(provision(bus.js, 3, budget_s=60))
            await asyncio.sleep(3)
            assert not task.done(), task  # still waiting, not failed
            started = time.monotonic()
            cluster.start(1)
            cluster.start(2)
            done = await asyncio.wait_for(task, 90)
            assert set(done) >= {s.name for s in STREAMS}
            assert time.monotonic() - started < 80
        finally:
            await bus.close()
    finally:
        cluster.stop()


async def test_provision_gives_up_after_its_budget_naming_the_stream(tmp_path: Path) -> None:
    cluster = NatsCluster(tmp_path / "nats", 3)
    try:
        cluster.start(0)
        bus = await connect(cluster.nodes[0].url, "patience", request_timeout_s=0.5)
        try:
            with pytest.raises(BusError, match=r"provisioning stream BATON_\w+"):
                await asyncio.wait_for(provision(bus.js, 3, budget_s=2), 30)
        finally:
            await bus.close()
    finally:
        cluster.stop()
