"""What the analyzer tests run against: real sandboxes, a real nats-server, and something that probes.

`Probing` is either the real prober service (`services.prober`, when `BATON_TEST_PROBER=real` or
by default once it is importable) or a tiny test-only loop: one task per instance that probes it every
`poll_s` with libs.mysql.probe and publishes the snapshot, plus a direct `probe_now` for the analyzer.
Both publish exactly what the analyzer consumes: `InstanceSnapshot`s on `baton.snapshot.<token>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import nats.js.errors

from libs.bus.connection import Bus, connect
from libs.bus.messages import publish_model
from libs.bus.provision import provision
from libs.bus.subjects import snapshot_subject
from libs.config import Settings
from libs.models import InstanceKey, InstanceSnapshot
from libs.models.events import Event
from libs.mysql.connection import ConnectionPool, Credentials, ProbeSettings
from libs.mysql.probe import probe
from libs.sandbox import Sandbox
from libs.topology.detection import Detection
from libs.topology.detection_event import from_event

PROBE = ProbeSettings(connect_timeout=1.0, read_timeout=1.0)


class LoopProber:
    """Probe every instance every `poll_s` and publish its snapshot (test-only stand-in for the prober)."""

    def __init__(self, bus: Bus, keys: Iterable[InstanceKey], creds: Credentials, poll_s: float) -> None:
        self.bus = bus
        self.keys = list(keys)
        self.creds = creds
        self.poll_s = poll_s
        self.pool = ConnectionPool(connect_timeout=PROBE.connect_timeout, read_timeout=PROBE.read_timeout)
        self.now_pool = ConnectionPool(connect_timeout=PROBE.connect_timeout, read_timeout=PROBE.read_timeout)
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> LoopProber:
        self.tasks = [asyncio.create_task(self._run(k)) for k in self.keys]
        return self

    async def _run(self, key: InstanceKey) -> None:
        while True:
            started = time.monotonic()
            snap = await probe(key, self.creds, PROBE, pool=self.pool, prober="test-loop")
            with contextlib.suppress(Exception):
                await publish_model(self.bus.js, snapshot_subject(key), snap)
            await asyncio.sleep(max(0.0, self.poll_s - (time.monotonic() - started)))

    async def probe_now(
        self, _nc: Any, instances: Sequence[InstanceKey], *, timeout: float
    ) -> dict[InstanceKey, InstanceSnapshot]:
        async def one(key: InstanceKey) -> InstanceSnapshot:
            snap = await probe(key, self.creds, PROBE, pool=self.now_pool, prober="test-probe-now")
            with contextlib.suppress(Exception):
                await publish_model(self.bus.js, snapshot_subject(key), snap)
            return snap

        tasks = [asyncio.create_task(one(k)) for k in instances]
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        return {t.result().key: t.result() for t in done if t.exception() is None}

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.pool.close()
        self.now_pool.close()


class RealProber:
    """The prober service (`services.prober`), one worker, seeded with the sandbox's master."""

    def __init__(self, url: str, sandbox: Sandbox, poll_s: float, *, liveness: bool = True) -> None:
        self.url = url
        self.sandbox = sandbox
        self.poll_s = poll_s
        self.liveness = liveness
        self.worker: Any = None
        self.bus: Bus | None = None

    async def start(self) -> RealProber:
        from services.prober.config import ProberConfig
        from services.prober.service import ProberWorker

        config = ProberConfig.model_validate(
            {
                "worker_id": f"test-prober-{self.sandbox.key(self.sandbox.master).port}",
                "poll_s": self.poll_s,
                "probe": ProbeSettings(
                    connect_timeout=1.0, read_timeout=1.0, discover_by_show_slave_hosts=True
                ),
                "credentials": self.sandbox.topology_creds,
                "lease_ttl_s": 2,
                "round_s": 0.5,
                "mysql_hostname_method": "@@report_host",
                "liveness_watch": self.liveness,
                "seeds": tuple(str(k) for k in keys_of(self.sandbox)),
            }
        )
        self.bus = await connect(self.url, "analyzer-test-prober")
        await provision(self.bus.js)
        self.worker = await ProberWorker(config, self.bus).start()
        return self

    async def wait_probing(self, keys: Iterable[InstanceKey], timeout_s: float = 15.0) -> None:
        """Until every instance has a snapshot in the stream (the shards are claimed, probes run)."""
        assert self.bus is not None
        bus = self.bus

        async def all_there() -> bool:
            for key in keys:
                try:
                    await bus.js.get_msg("BATON_SNAPSHOTS", subject=snapshot_subject(key))
                except nats.js.errors.NotFoundError:
                    return False
            return True

        await wait_for(all_there, timeout_s, "the prober to probe every instance")

    probe_now: Any = None  # the analyzer uses libs.bus.probe_now (its default)

    async def stop(self) -> None:
        if self.worker is not None:
            await self.worker.stop(release=True)
        if self.bus is not None:
            await self.bus.close()


def use_real_prober() -> bool:
    """BATON_TEST_PROBER=loop forces the test-only loop; otherwise the real prober when present."""
    if os.environ.get("BATON_TEST_PROBER", "real") == "loop":
        return False
    try:
        importlib.import_module("services.prober.service")
        importlib.import_module("libs.bus.probe_now")
    except ImportError:
        return False
    return True


def analyzer_settings(url: str, poll_s: int = 1, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "BatonNatsURLs": [url],
        "InstancePollSeconds": poll_s,
        "ReasonableInstanceCheckSeconds": 1,
        "MySQLTopologyUser": "baton",
        "MySQLTopologyPassword": "baton-sandbox",
        "MySQLConnectTimeoutSeconds": 1,
        "MySQLDiscoveryReadTimeoutSeconds": 1,
        "MySQLHostnameResolveMethod": "@@report_host",
        "BatonHookTimeoutSeconds": 10,
    }
    values.update(extra)
    return Settings.model_validate(values)


async def bus_for(url: str) -> Bus:
    bus = await connect(url, "analyzer-test")
    await provision(bus.js)
    return bus


async def stored_detections(bus: Bus) -> list[Detection]:
    """Every detection stored in BATON_DETECTIONS, in stream order."""
    info = await bus.js.stream_info("BATON_DETECTIONS")
    out: list[Detection] = []
    for seq in range(int(info.state.first_seq or 1), int(info.state.last_seq or 0) + 1):
        try:
            raw = await bus.js.get_msg("BATON_DETECTIONS", seq=seq)
        except nats.js.errors.NotFoundError:
            continue
        out.append(from_event(Event.model_validate_json(raw.data or b"")))
    return out


async def stored_audit(bus: Bus, subject: str) -> list[Event]:
    info = await bus.js.stream_info("BATON_AUDIT")
    out: list[Event] = []
    for seq in range(int(info.state.first_seq or 1), int(info.state.last_seq or 0) + 1):
        with contextlib.suppress(nats.js.errors.NotFoundError):
            raw = await bus.js.get_msg("BATON_AUDIT", seq=seq)
            if raw.subject == subject:
                out.append(Event.model_validate_json(raw.data or b""))
    return out


async def wait_for(
    check: Callable[[], Awaitable[Any]], timeout_s: float, what: str, interval_s: float = 0.05
) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what} (last: {last!r})")


def keys_of(sandbox: Sandbox) -> list[InstanceKey]:
    return [sandbox.key(n) for n in sandbox.names]
