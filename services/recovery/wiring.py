"""Builds the pipeline's collaborators from the settings and the bus (the only place that knows both)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from libs.bus import kvread
from libs.bus.connection import bus_errors
from libs.bus.provision import CANDIDATES
from libs.bus.subjects import kv_key
from libs.config import Settings
from libs.config.derive import (
    analysis_params,
    probe_settings,
    replication_credentials,
    topology_credentials,
)
from libs.models import InstanceKey, InstanceSnapshot, MasterRecord, utcnow
from libs.mysql import ConnectionPool, ProbeSettings, probe
from libs.mysql.fenced import action_pool
from libs.recovery.audit import RecoveryKind
from libs.recovery.control import ControlState
from libs.recovery.downtime import KVDowntimeWriter
from libs.recovery.executor import MySQLExecutor
from libs.recovery.fence_watch import KVFenceStore, named_masters
from libs.recovery.gates import DEFAULT_GATES, Gate
from libs.recovery.keeper import MasterKeeper, audit_emitter, request_reconcile
from libs.recovery.leadership import LEASE_TTL_S
from libs.recovery.masters import KVMasterPublisher
from libs.recovery.old_master import OldMasterFencer, fencer_pool
from libs.recovery.options import (
    SettingsHooks,
    candidate_rules,
    execution_options,
    failed_master_timeout,
    parse_registered,
)
from libs.recovery.pipeline import Collaborators, ProbeFn, RefreshFn, StepHook
from libs.recovery.policy import Policy
from libs.recovery.record_store import KVRecordStore
from libs.recovery.recovery_events import AckPublisher, NatsEventSink
from libs.recovery.refactoring import AbandonedOperation
from libs.recovery.semisync import SemiSyncRepair
from libs.recovery.writeable import NonWriteableMaster
from libs.topology.analysis import Finding, analyze
from libs.topology.plan import CandidateRules
from libs.topology.view import ClusterView
from services.recovery.snapshot_memory import SnapshotMemory


def build_collaborators(
    settings: Settings,
    js: JetStreamContext,
    memory: SnapshotMemory,
    *,
    gates: Sequence[Gate] = DEFAULT_GATES,
    after_step: StepHook | None = None,
    policy: Policy | None = None,
    control: ControlState | None = None,
    acknowledged: AckPublisher | None = None,
    refresh: RefreshFn | None = None,
    lease_ttl_s: float = LEASE_TTL_S,
) -> Collaborators:
    creds = topology_credentials(settings)
    pset = probe_settings(settings)
    probe_pool = ConnectionPool(connect_timeout=pset.connect_timeout, read_timeout=pset.read_timeout)
    options = execution_options(settings, lease_ttl_s)
    # Action connections: checked before every use; each statement limited to the statement timeout
    # (below the lease TTL), which MySQLTopologyReadTimeoutSeconds can only shorten.
    act_pool = action_pool(
        connect_timeout=pset.connect_timeout,
        statement_timeout=min(float(settings.MySQLTopologyReadTimeoutSeconds), options.statement_timeout_s),
    )
    # The failed master's connections: short connect (and probe read) timeouts, so a hung one costs
    # little (the re-check does not wait for its probe anyway, see RecoveryPipeline._probe_recheck).
    quick = failed_master_timeout(settings)
    quick_pset = pset.model_copy(
        update={"connect_timeout": quick, "read_timeout": min(pset.read_timeout, quick)}
    )
    failed_probe_pool = ConnectionPool(connect_timeout=quick, read_timeout=quick_pset.read_timeout)
    failed_act_pool = action_pool(
        connect_timeout=quick,
        statement_timeout=min(float(settings.MySQLTopologyReadTimeoutSeconds), options.statement_timeout_s),
    )
    params = analysis_params(settings)

    def prober(pool: ConnectionPool, ps: ProbeSettings) -> ProbeFn:
        async def do_probe(keys: Sequence[InstanceKey]) -> Mapping[InstanceKey, InstanceSnapshot]:
            snaps = await asyncio.gather(*(probe(k, creds, ps, pool=pool, prober="recovery") for k in keys))
            for snap in snaps:
                memory.add(snap)
            return {s.key: s for s in snaps}

        return do_probe

    def do_analyze(view: ClusterView, now: datetime) -> list[Finding]:
        return analyze(view, now, params, memory.history)

    async def rules() -> CandidateRules:
        return candidate_rules(settings, parse_registered(await _candidates(js), utcnow()))

    return Collaborators(
        probe=prober(probe_pool, pset),
        probe_failed=prober(failed_probe_pool, quick_pset),
        analyze=do_analyze,
        rules=rules,
        executor=MySQLExecutor(
            act_pool,
            creds,
            replication_credentials(settings),
            options,
            downtime=KVDowntimeWriter(js),
            failed_pool=failed_act_pool,
        ),
        hooks=SettingsHooks(settings),
        events=NatsEventSink(js),
        store=KVRecordStore(js),
        masters=KVMasterPublisher(js),
        options=options,
        known=memory,
        gates=gates,
        after_step=after_step,
        policy=policy or Policy.from_settings(settings),
        control=control,
        acknowledged=acknowledged,
        refresh=refresh,
        kinds={
            RecoveryKind.NON_WRITEABLE_MASTER: NonWriteableMaster(
                act_pool, creds, options.statement_timeout_s, fences=KVFenceStore(js)
            ),
            RecoveryKind.SEMI_SYNC: SemiSyncRepair(
                act_pool,
                creds,
                options.statement_timeout_s,
                exact=settings.EnforceExactSemiSyncReplicas,
                stale_after=params.stale_after,
            ),
            RecoveryKind.OPERATION: AbandonedOperation(),  # an operation a dead leader left: closed
        },
    )


def build_fencer(
    settings: Settings, js: JetStreamContext, collab: Collaborators, statement_timeout_s: float
) -> OldMasterFencer:
    """What keeps the failed masters of recent recoveries read-only (`libs/recovery/old_master.py`)."""
    return OldMasterFencer(
        fencer_pool(statement_timeout_s),
        topology_credentials(settings),
        collab.events,
        super_read_only=settings.UseSuperReadOnly,
        statement_timeout_s=statement_timeout_s,
        store=KVFenceStore(js),
        records=collab.store,
        named_masters=lambda: named_masters(js),
    )


def build_keeper(
    settings: Settings, js: JetStreamContext, nc: Client, node: str, *, busy: Callable[[], bool]
) -> MasterKeeper:
    """What keeps baton_masters holding every cluster's master (seeding, submit-masters-to-kv-stores)."""
    return MasterKeeper(
        KVMasterPublisher(js),
        stale_after=analysis_params(settings).stale_after,
        prefix=settings.KVClusterMasterPrefix,
        node=node,
        emit=audit_emitter(js),
        republish=lambda: request_reconcile(nc),
        busy=busy,
    )


async def _candidates(js: JetStreamContext) -> dict[str, bytes]:
    """All `baton_candidates` entries (registered promotion rules). `kvread.scan`, not `kv.keys()`:
    a short answer there once promoted a `must_not` replica; here it is a BusError (no plan)."""
    return {e.key: e.value for e in await kvread.scan(js, CANDIDATES)}


async def current_master(js: JetStreamContext, alias: str) -> InstanceKey | None:
    """The master `baton_masters` names for `alias` (None if none)."""
    with bus_errors(f"reading the master of {alias}"):
        kv = await js.key_value("baton_masters")
        try:
            entry = await kv.get(kv_key(alias))
        except nats.js.errors.KeyNotFoundError:
            return None
    return MasterRecord.model_validate_json(entry.value).master if entry.value else None
