"""The whole pipeline on one sandbox: prober + analyzer + recovery services in-process, one nats-server.

Used by the end-to-end test and by `bench/failover_mttr.py`. `failover()` SIGKILLs the master and
returns when `baton_masters` names a new master, with the time split from the recovery record.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nats.js.errors

from libs.bus.connection import Bus, connect
from libs.bus.provision import MASTERS, provision
from libs.bus.subjects import kv_key
from libs.config import Settings
from libs.models import InstanceKey, MasterRecord, utcnow
from libs.recovery.audit import RecoveryRecord
from libs.recovery.store import RECOVERIES
from libs.sandbox import REPL_PASSWORD, REPL_USER, TOPOLOGY_PASSWORD, TOPOLOGY_USER, Sandbox
from services.analyzer.service import Analyzer
from services.prober.config import ProberConfig
from services.prober.service import ProberWorker
from services.recovery.service import RecoveryService


def stack_settings(nats_url: str, seeds: list[str], **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "BatonNatsURLs": [nats_url],
        "DiscoverySeeds": seeds,
        "InstancePollSeconds": 1,
        "ReasonableInstanceCheckSeconds": 1,
        "MySQLTopologyUser": TOPOLOGY_USER,
        "MySQLTopologyPassword": TOPOLOGY_PASSWORD,
        "MySQLReplicationUser": REPL_USER,
        "MySQLReplicationPassword": REPL_PASSWORD,
        "MySQLConnectTimeoutSeconds": 1,
        "MySQLDiscoveryReadTimeoutSeconds": 1,
        "MySQLHostnameResolveMethod": "@@report_host",
        "RecoverMasterClusterFilters": ["*"],
    }
    values.update(extra)
    return Settings.model_validate(values)


@dataclass
class FailoverTiming:
    killed_at: datetime
    seen_at: datetime  # baton_masters named the new master (watcher's clock)
    record: RecoveryRecord
    published: MasterRecord

    def split(self) -> dict[str, float]:
        r = self.record

        def s(a: datetime | None, b: datetime | None) -> float:
            return round((b - a).total_seconds(), 6) if a is not None and b is not None else float("nan")

        plan = r.step("plan")
        decided = plan.ended_at if plan else None
        return {
            "detection": s(self.killed_at, r.detected_at),  # kill -> analyzer decided DeadMaster
            "handoff": s(r.detected_at, r.started_at),  # detection published -> recovery leader started
            "decision": s(r.started_at, decided),  # gates, registration, re-check, plan
            "execution": s(decided, r.promoted_at),  # hooks + MySQL steps until the successor is writable
            "publication": s(r.promoted_at, r.published_at),  # -> baton_masters written
            "total": s(self.killed_at, self.seen_at),
        }


class Stack:
    def __init__(self, sb: Sandbox, nats_url: str, **extra: Any) -> None:
        self.sb = sb
        self.settings = stack_settings(nats_url, [str(sb.key(n)) for n in sb.names], **extra)
        self.bus: Bus | None = None
        self.prober: ProberWorker | None = None
        self.analyzer: Analyzer | None = None
        self.recovery: RecoveryService | None = None

    async def start(self, ready_within: float = 30.0) -> Stack:
        try:
            return await self._start(ready_within)
        except BaseException:
            await self.stop()
            raise

    async def _start(self, ready_within: float) -> Stack:
        self.bus = await connect(self.settings.BatonNatsURLs, "stack")
        await provision(self.bus.js)
        self.prober = await ProberWorker(
            ProberConfig.from_settings(self.settings, worker_id="p1"), self.bus
        ).start()
        self.analyzer = Analyzer(self.settings, node="a1")
        await self.analyzer.start()
        self.recovery = await RecoveryService(self.settings, node="r1").start()
        keys = {self.sb.key(n) for n in self.sb.names}
        deadline = time.monotonic() + ready_within
        while True:
            known = self.recovery.memory.states
            ready = all(k in known and known[k].last_probe.reachable for k in keys)
            if ready and self.recovery.is_leader:
                return self
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"stack not ready: known {sorted(map(str, known))}, leader {self.recovery.is_leader}"
                )
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self.recovery is not None:
            await self.recovery.stop()
        if self.analyzer is not None:
            await self.analyzer.stop()
        if self.prober is not None:
            await self.prober.stop()
        if self.bus is not None:
            await self.bus.close()

    async def failover(self, within: float = 15.0) -> FailoverTiming:
        """SIGKILL the master; wait until baton_masters names another master; return the timings."""
        assert self.bus is not None
        js = self.bus.js
        master = self.sb.key(self.sb.master)
        alias = str(master)
        kv = await js.key_value(MASTERS)
        watcher = await kv.watch(kv_key(alias))
        try:
            killed_at = utcnow()
            self.sb.kill(self.sb.master)
            published, seen_at = await _next_master(watcher, master, within)
        finally:
            await watcher.stop()
        record = await _record(js, alias, published.recovery_uid or "", within)
        return FailoverTiming(killed_at, seen_at, record, published)


async def _next_master(watcher: Any, old: InstanceKey, within: float) -> tuple[MasterRecord, datetime]:
    deadline = time.monotonic() + within
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no new master in baton_masters within {within:g}s")
        try:
            entry = await watcher.updates(timeout=remaining)
        except (TimeoutError, nats.errors.TimeoutError):
            continue
        if entry is None or not entry.value:
            continue
        record = MasterRecord.model_validate_json(entry.value)
        if record.master != old and record.recovery_uid:
            return record, utcnow()


async def _record(js: Any, alias: str, uid: str, within: float) -> RecoveryRecord:
    kv = await js.key_value(RECOVERIES)
    deadline = time.monotonic() + within
    while True:
        try:
            entry = await kv.get(kv_key(alias))
            record = RecoveryRecord.model_validate_json(entry.value)
            if record.uid == uid and not record.active:
                return record
        except nats.js.errors.KeyNotFoundError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"recovery {uid} not closed within {within:g}s")
        await asyncio.sleep(0.05)
