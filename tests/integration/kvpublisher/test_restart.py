"""The real process: killed mid-way, restarted, every DC is correct after its first reconcile.

Runs `python -m services.kvpublisher` as a subprocess (as deployed), SIGKILLs it while one DC is still
owed a record, changes baton_masters while no publisher runs, and checks that the next process fixes
every DC at start — with a reconcile period far longer than the test, so only the start-up reconcile
can have done it. Then SIGTERM must stop it cleanly.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats.errors
import pytest

from libs.bus.connection import Bus
from libs.bus.server import NatsServer
from services.kvpublisher.service import STATUS_SUBJECT
from tests.fixtures.consul import REPO_ROOT, ConsulProcess
from tests.integration.kvpublisher.helpers import (
    event_log,
    expected,
    master,
    read_tree,
    time_until_published,
    wait_for,
    write_master,
)


class PublisherProcess:
    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "services.kvpublisher", "--config", str(self.config)]
        argv += ["--dc", "dc1", "--dc", "dc2", "--dc", "dc3"]
        argv += ["--reconcile-seconds", "600", "--consul-timeout", "1"]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=out, stderr=out)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def publishers(tmp_path: Path) -> Iterator[list[PublisherProcess]]:
    made: list[PublisherProcess] = []
    yield made
    for p in made:
        p.stop()


async def wait_ready(bus: Bus, timeout: float = 15.0) -> dict[str, object]:
    """Ask the status command until a publisher answers ready."""
    answer: dict[str, object] = {}

    async def ready() -> bool:
        nonlocal answer
        try:
            reply = await bus.nc.request(STATUS_SUBJECT, b"", timeout=0.5)
        except (nats.errors.Error, TimeoutError):  # not up yet: no responders, or no answer
            return False
        answer = json.loads(reply.data)
        return bool(answer["ready"])

    await wait_for(ready, timeout, "a ready kvpublisher", 0.1)
    return answer


async def test_kill_midway_then_restart_leaves_every_dc_correct(
    bus: Bus,
    nats_server: NatsServer,
    dcs: list[ConsulProcess],
    clients: list[httpx.AsyncClient],
    publishers: list[PublisherProcess],
    tmp_path: Path,
) -> None:
    dc1, dc2, dc3 = dcs
    config = tmp_path / "baton.json"
    config.write_text(
        json.dumps(
            {
                "BatonNatsURLs": [nats_server.url],
                "BatonNodeName": "kvp-test",
                "BatonConsulDataCenters": {dc.name: {"Address": dc.address} for dc in dcs},
            }
        )
    )
    first = PublisherProcess(config, tmp_path / "first.log")
    publishers.append(first)
    async with event_log(bus) as log:
        first.start()
        await wait_ready(bus)
        one = master("db-1.example.com", 1)
        await write_master(bus, one)
        await time_until_published(clients, one)

        await dc2.astop()
        two = master("db-2.example.com", 2)
        await write_master(bus, two)
        await time_until_published([clients[0], clients[2]], two)
        await log.wait("kv.failed", ["dc2"], 2)
        first.signal(signal.SIGKILL)  # mid-way: dc1 and dc3 have epoch 2, dc2 is still owed it
        first.wait(5)

    await dc2.astart()
    await asyncio.sleep(0.2)
    assert await read_tree(clients[1]) == expected(one)
    three = master("db-3.example.com", 3)  # a failover while no publisher runs at all
    await write_master(bus, three)
    await asyncio.sleep(0.2)
    assert all([await read_tree(c) != expected(three) for c in clients])

    second = PublisherProcess(config, tmp_path / "second.log")
    publishers.append(second)
    second.start()
    await wait_ready(bus)
    took = await time_until_published(clients, three, timeout=5)
    assert max(took) < 5
    status = await wait_ready(bus)
    dcs_status = status["dcs"]
    assert isinstance(dcs_status, dict)
    assert all(dcs_status[dc.name]["healthy"] for dc in dcs)
    assert all(dcs_status[dc.name]["last_reconcile"]["repairs"] == 1 for dc in dcs)

    second.signal(signal.SIGTERM)
    assert second.wait(10) == 0
    text = (tmp_path / "second.log").read_text()
    assert "Traceback" not in text, text[-2000:]
    assert dc1.running and dc3.running
