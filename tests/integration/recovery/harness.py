"""A recovery pipeline wired to a real sandbox with in-memory NATS stand-ins (store, events, masters),
plus helpers to break the sandbox and to build the detection the analyzer would publish."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from libs.hooks import HookContext, HookKind, HookResult
from libs.models import InstanceKey, InstanceSnapshot, MasterRecord, utcnow
from libs.mysql import ConnectionPool, probe
from libs.recovery.executor import MySQLExecutor
from libs.recovery.pipeline import Collaborators, HookRunner, RecoveryPipeline
from libs.recovery.record_store import MemoryRecordStore
from libs.recovery.recovery_events import MemoryEventSink
from libs.recovery.steps import ExecutionOptions
from libs.sandbox import SANDBOX_DB, Sandbox
from libs.topology.analysis import Finding, analyze
from libs.topology.codes import Analysis
from libs.topology.detection import Detection, DetectionState, incident_id
from libs.topology.plan import CandidateRules
from libs.topology.view import ClusterView, InstanceState, fold, group_clusters


@dataclass
class Known:
    """last_seen memory, as the service keeps it from BATON_SNAPSHOTS."""

    states: dict[InstanceKey, InstanceState] = field(default_factory=dict)

    def add(self, snapshots: Mapping[InstanceKey, InstanceSnapshot]) -> None:
        for key, snap in snapshots.items():
            self.states[key] = fold(self.states.get(key), snap)

    def __call__(self) -> Mapping[InstanceKey, InstanceState]:
        return self.states


@dataclass
class MasterSink:
    written: list[MasterRecord] = field(default_factory=list)

    async def __call__(self, record: MasterRecord) -> None:
        self.written.append(record)


async def probe_all(
    sb: Sandbox, pool: ConnectionPool, keys: Sequence[InstanceKey] | None = None
) -> dict[InstanceKey, InstanceSnapshot]:
    targets = list(keys) if keys is not None else [sb.key(n) for n in sb.names]
    snaps = await asyncio.gather(*(probe(k, sb.topology_creds, pool=pool) for k in targets))
    return {s.key: s for s in snaps}


def no_hooks() -> HookRunner:
    async def run(kind: HookKind, ctx: HookContext) -> list[HookResult]:
        return []

    return run


@dataclass
class Harness:
    sb: Sandbox
    pool: ConnectionPool
    known: Known
    store: MemoryRecordStore
    events: MemoryEventSink
    masters: MasterSink
    pipeline: RecoveryPipeline
    collab: Collaborators


def build(
    sb: Sandbox,
    *,
    options: ExecutionOptions | None = None,
    rules: CandidateRules | None = None,
    hooks: HookRunner | None = None,
) -> Harness:
    pool = ConnectionPool(connect_timeout=1.0, read_timeout=5.0)
    known = Known()
    store, events, masters = MemoryRecordStore(), MemoryEventSink(), MasterSink()
    opts = options or ExecutionOptions(lost_downtime_minutes=0)

    async def do_probe(keys: Sequence[InstanceKey]) -> Mapping[InstanceKey, InstanceSnapshot]:
        return await probe_all(sb, pool, keys)

    async def get_rules() -> CandidateRules:
        return rules or CandidateRules()

    collab = Collaborators(
        probe=do_probe,
        analyze=lambda view, now: analyze(view, now),
        rules=get_rules,
        executor=MySQLExecutor(pool, sb.topology_creds, sb.repl_creds, opts),
        hooks=hooks or no_hooks(),
        events=events,
        store=store,
        masters=masters,
        options=opts,
        known=known,
    )
    return Harness(sb, pool, known, store, events, masters, RecoveryPipeline(collab, "test-node"), collab)


def cluster_view(known: Known) -> ClusterView:
    views = group_clusters(known.states.values())
    assert len(views) == 1, [v.name for v in views]
    return views[0]


async def wait_dead_master(
    h: Harness,
    master: InstanceKey,
    within: float = 10.0,
    codes: Collection[Analysis] = (Analysis.DEAD_MASTER, Analysis.DEAD_MASTER_AND_SOME_REPLICAS),
) -> Detection:
    """Probe until analysis says the master is dead (one of `codes`); the Detection the analyzer would
    publish."""
    deadline = time.monotonic() + within
    first: datetime | None = None
    while True:
        h.known.add(await probe_all(h.sb, h.pool))
        now = utcnow()
        first = first or now
        findings = analyze(cluster_view(h.known), now)
        dead: Finding | None = next(
            (f for f in findings if f.instance == master and f.code in codes),
            None,
        )
        if dead is not None:
            return Detection(
                incident=incident_id(dead, first),
                state=DetectionState.ACTIVE,
                finding=dead,
                first_evidence_at=first,
                evidence_at=now,
                detected_at=utcnow(),
            )
        assert time.monotonic() < deadline, f"no {list(codes)} for {master}: {[f.code for f in findings]}"
        await asyncio.sleep(0.05)


async def write_rows(sb: Sandbox, name: str, first: int, count: int, note: str) -> str:
    """Insert marker rows on `name`; returns its gtid_binlog_pos after the writes."""
    for i in range(first, first + count):
        await sb.sql(name, f"INSERT INTO {SANDBOX_DB}.marker VALUES (%s, %s)", (i, note))
    rows = await sb.sql(name, "SELECT @@gtid_binlog_pos AS p")
    return str(rows[0]["p"])


async def writable_masters(sb: Sandbox, names: Sequence[str]) -> list[str]:
    out = []
    for name in names:
        if not sb.is_running(name):
            continue
        ro = await sb.sql(name, "SELECT @@read_only AS r")
        status = await sb.sql(name, "SHOW SLAVE STATUS")
        if int(ro[0]["r"]) == 0 and not status:
            out.append(name)
    return out


async def wait_replicating_from(sb: Sandbox, name: str, master: InstanceKey, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while True:
        rows = await sb.sql(name, "SHOW SLAVE STATUS")
        if rows:
            r = rows[0]
            if (
                int(r["Master_Port"]) == master.port
                and r["Slave_IO_Running"] == "Yes"
                and r["Slave_SQL_Running"] == "Yes"
            ):
                return
        assert time.monotonic() < deadline, f"{name} does not replicate from {master}: {rows and rows[0]}"
        await asyncio.sleep(0.05)
