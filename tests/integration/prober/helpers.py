"""Helpers for the prober's integration tests: worker configs, a snapshot recorder, waits."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from libs.bus.connection import Bus, connect
from libs.bus.provision import provision
from libs.bus.subjects import SNAPSHOTS_ALL
from libs.models import InstanceKey, InstanceSnapshot
from libs.mysql import ProbeSettings
from libs.sandbox import Sandbox
from services.prober.config import ProberConfig
from services.prober.service import ProberWorker


def worker_config(sandbox: Sandbox, worker_id: str, **overrides: object) -> ProberConfig:
    values: dict[str, object] = {
        "worker_id": worker_id,
        "poll_s": 1.0,
        "probe": ProbeSettings(connect_timeout=1.0, read_timeout=1.0, discover_by_show_slave_hosts=True),
        "credentials": sandbox.topology_creds,
        "lease_ttl_s": 2,
        "round_s": 0.5,
        "mysql_hostname_method": "@@report_host",
        "liveness_watch": False,
    }
    values |= overrides
    return ProberConfig.model_validate(values)


async def start_worker(url: str, config: ProberConfig) -> ProberWorker:
    bus = await connect(url, f"test-{config.worker_id}")
    await provision(bus.js)
    return await ProberWorker(config, bus).start()


async def stop_worker(worker: ProberWorker, *, release: bool = True) -> None:
    await worker.stop(release=release)
    await worker.bus.close()


@dataclass
class Seen:
    at: float  # monotonic time the message arrived
    snap: InstanceSnapshot


@dataclass
class Recorder:
    """Every snapshot published on `baton.snapshot.>`, as it arrives (core NATS subscription)."""

    seen: list[Seen] = field(default_factory=list)
    sub: Subscription | None = None

    async def _on(self, msg: Msg) -> None:
        self.seen.append(Seen(time.monotonic(), InstanceSnapshot.model_validate_json(msg.data)))

    async def start(self, bus: Bus) -> Recorder:
        self.sub = await bus.nc.subscribe(SNAPSHOTS_ALL, cb=self._on)
        return self

    def of(self, key: InstanceKey, since: float = 0.0) -> list[Seen]:
        return [s for s in self.seen if s.snap.key == key and s.at >= since]

    def keys(self, since: float = 0.0) -> set[InstanceKey]:
        return {s.snap.key for s in self.seen if s.at >= since}


async def wait_for(
    what: str, check: Callable[[], bool | Awaitable[bool]], within: float, step: float = 0.05
) -> float:
    """Wait until `check()` is true; returns the seconds it took; fails the test after `within`."""
    start = time.monotonic()
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return time.monotonic() - start
        if time.monotonic() - start > within:
            raise AssertionError(f"timed out after {within:g}s waiting for {what}")
        await asyncio.sleep(step)


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]
