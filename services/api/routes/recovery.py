"""orchestrator's recovery commands, carried out by the recovery leader over `baton.cmd.recovery.<verb>`
(recover, failovers, takeovers, acknowledgements, blocked recoveries), and the global switch, which
lives in KV (`baton_settings/recoveries`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request

from libs.bus import provision as buckets
from libs.models import InstanceKey
from libs.models.operator import (
    GLOBAL_RECOVERIES_KEY,
    AckScope,
    BlockedRecovery,
    CommandRequest,
    GlobalRecoveries,
    RecoveryVerb,
)
from libs.store import queries
from services.api import deps, dispatch
from services.api.auth import admin, reader
from services.api.envelope import ApiError, not_found, ok
from services.api.shapes import key_json

router = APIRouter(prefix="/api", tags=["orchestrator: recovery"])
ADMIN = [Depends(admin)]


async def _recover(request: Request, verb: RecoveryVerb, key: InstanceKey, dest: InstanceKey | None) -> Any:
    reply = await dispatch.instance_command(
        request, verb, key, dest, known_dest=False, skip_hooks=verb is RecoveryVerb.RECOVER_LITE
    )
    details = key_json(reply.successor) if reply.successor else reply.details
    return ok(reply.message or f"Recovered: {key}", details)


@router.api_route(
    "/recover/{host}/{port}",
    methods=deps.BOTH,
    dependencies=ADMIN,
    summary="Recover a failed instance (forced: bypasses blocks and filters)",
)
async def recover(request: Request, host: str, port: str) -> Any:
    return await _recover(request, RecoveryVerb.RECOVER, deps.parse_key(host, port), None)


@router.api_route(
    "/recover/{host}/{port}/{dhost}/{dport}",
    methods=deps.BOTH,
    dependencies=ADMIN,
    summary="Recover a failed instance, promoting the given candidate",
)
async def recover_to(request: Request, host: str, port: str, dhost: str, dport: str) -> Any:
    return await _recover(
        request, RecoveryVerb.RECOVER, deps.parse_key(host, port), deps.parse_key(dhost, dport)
    )


@router.api_route(
    "/recover-lite/{host}/{port}",
    methods=deps.BOTH,
    dependencies=ADMIN,
    summary="recover, without running hooks",
)
async def recover_lite(request: Request, host: str, port: str) -> Any:
    return await _recover(request, RecoveryVerb.RECOVER_LITE, deps.parse_key(host, port), None)


async def _failover(request: Request, verb: RecoveryVerb, name: str, dest: InstanceKey | None) -> Any:
    rt = deps.runtime(request)
    view = deps.cluster(rt, name)
    if dest is not None and dest not in view.by_key:
        raise not_found(f"instance {dest} in cluster {view.name}")
    reply = await dispatch.cluster_command(request, verb, view, destination=dest)
    return ok(reply.message or f"{verb.value}: {view.name}", dispatch.recovery_details(reply))


def _failover_route(path: str, verb: RecoveryVerb, summary: str) -> None:
    """Register one cluster-level failover route; with `{dhost}/{dport}` in the path the request names
    the replica to promote. The force and graceful routes differ only in the verb and the path."""
    if "{dhost}" in path:

        async def to_candidate(request: Request, name: str, dhost: str, dport: str) -> Any:
            return await _failover(request, verb, name, deps.parse_key(dhost, dport))

        route: Any = to_candidate
    else:

        async def any_candidate(request: Request, name: str) -> Any:
            return await _failover(request, verb, name, None)

        route = any_candidate
    route.__name__ = path.strip("/").split("/")[0].replace("-", "_") + ("_to" if "{dhost}" in path else "")
    router.api_route(path, methods=deps.BOTH, dependencies=ADMIN, summary=summary)(route)


for _path, _verb, _summary in (
    (
        "/force-master-failover/{name}",
        RecoveryVerb.FORCE_MASTER_FAILOVER,
        "Fail over a cluster's master as if it were dead",
    ),
    (
        "/force-master-takeover/{name}/{dhost}/{dport}",
        RecoveryVerb.FORCE_MASTER_TAKEOVER,
        "Fail over a cluster's master as if it were dead, promoting the given direct replica",
    ),
    (
        "/graceful-master-takeover/{name}",
        RecoveryVerb.GRACEFUL_MASTER_TAKEOVER,
        "Planned master switch (old master left stopped)",
    ),
    (
        "/graceful-master-takeover/{name}/{dhost}/{dport}",
        RecoveryVerb.GRACEFUL_MASTER_TAKEOVER,
        "Planned master switch to a designated replica",
    ),
    (
        "/graceful-master-takeover-auto/{name}",
        RecoveryVerb.GRACEFUL_MASTER_TAKEOVER_AUTO,
        "Planned master switch; old master replicates from the new one",
    ),
    (
        "/graceful-master-takeover-auto/{name}/{dhost}/{dport}",
        RecoveryVerb.GRACEFUL_MASTER_TAKEOVER_AUTO,
        "Planned master switch to a designated replica; old master replicating",
    ),
):
    _failover_route(_path, _verb, _summary)


async def _ack(request: Request, scope: AckScope, comment: str | None, **target: Any) -> Any:
    rt = deps.runtime(request)
    text = deps.require_comment(comment)
    req = CommandRequest(
        verb=RecoveryVerb.ACK_RECOVERIES.value,
        requested_by=deps.principal_name(request),
        scope=scope,
        comment=text,
        **target,
    )
    reply = await dispatch.recovery_command(rt, req)
    count = len(reply.acknowledged) if reply.details is None else reply.details
    return ok(reply.message or f"Acknowledged {len(reply.acknowledged)} recoveries", count)


@router.api_route(
    "/ack-recovery/cluster/{name}",
    methods=deps.BOTH,
    dependencies=ADMIN,
    summary="Acknowledge a cluster's recoveries (clears anti-flapping blocks)",
)
async def ack_cluster(request: Request, name: str, comment: str | None = None) -> Any:
    view = deps.cluster(deps.runtime(request), name)
    return await _ack(request, AckScope.CLUSTER, comment, cluster=view.name, alias=view.alias)


@router.api_route(
    "/ack-recovery/instance/{host}/{port}",
    methods=deps.BOTH,
    dependencies=ADMIN,
    summary="Acknowledge an instance's recoveries",
)
async def ack_instance(request: Request, host: str, port: str, comment: str | None = None) -> Any:
    key = deps.parse_key(host, port)
    return await _ack(request, AckScope.INSTANCE, comment, instance=key)


@router.api_route(
    "/ack-recovery/uid/{uid}",
    methods=deps.BOTH,
    dependencies=ADMIN,
    summary="Acknowledge one recovery by uid",
)
async def ack_uid(request: Request, uid: str, comment: str | None = None) -> Any:
    return await _ack(request, AckScope.UID, comment, uid=uid)


@router.api_route(
    "/ack-all-recoveries", methods=deps.BOTH, dependencies=ADMIN, summary="Acknowledge every recovery"
)
async def ack_all(request: Request, comment: str | None = None) -> Any:
    return await _ack(request, AckScope.ALL, comment)


async def _blocked(request: Request, name: str | None) -> Any:
    rt = deps.runtime(request)
    view = deps.cluster(rt, name) if name else None
    reply = await dispatch.cluster_command(request, RecoveryVerb.BLOCKED_RECOVERIES, view)
    if not reply.blocked and isinstance(reply.details, list):
        return reply.details
    ids: dict[str, int] = {}
    for uid in {b.blocking_uid for b in reply.blocked}:
        rows = await queries.recoveries(rt.store, uid=uid, limit=1)
        ids[uid] = (rows[0].id or 0) if rows else 0
    return [blocked_json(b, ids[b.blocking_uid]) for b in reply.blocked]


def blocked_json(b: BlockedRecovery, blocking_id: int) -> dict[str, Any]:
    """orchestrator's BlockedTopologyRecovery: the refused attempt (FailedInstanceKey, ClusterName,
    Analysis, LastBlockedTimestamp) and `BlockingRecoveryId`, the blocking recovery's `Id` in
    audit-recovery (0 until the read model has it); Baton's extras after them."""

    def iso(at: datetime | None) -> str:
        return at.isoformat() if at else ""

    return {
        "FailedInstanceKey": key_json(b.instance),
        "ClusterName": b.cluster,
        "Analysis": b.analysis,
        "LastBlockedTimestamp": iso(b.last_blocked_at),
        "BlockingRecoveryId": blocking_id,
        "ClusterAlias": b.alias,
        "BlockingRecoveryUID": b.blocking_uid,
        "FirstBlockedTimestamp": iso(b.first_blocked_at),
        "BlockedCount": b.count,
        "BlockedUntil": iso(b.blocked_until),
        "Reason": b.reason,
    }


@router.get(
    "/blocked-recoveries",
    dependencies=[Depends(reader)],
    summary="Automated recoveries refused by an anti-flapping block (orchestrator's BlockedTopologyRecovery)",
)
async def blocked(request: Request) -> Any:
    return await _blocked(request, None)


@router.get(
    "/blocked-recoveries/cluster/{name}",
    dependencies=[Depends(reader)],
    summary="A cluster's blocked recoveries",
)
async def blocked_cluster(request: Request, name: str) -> Any:
    return await _blocked(request, name)


async def _submit_masters(request: Request, hint: str | None) -> Any:
    """orchestrator's SubmitMastersToKvStores: the recovery leader makes baton_masters hold every
    cluster's (or the hinted cluster's) live master and has the kvpublishers reconcile; Details are the
    KV pairs of the submitted masters."""
    rt = deps.runtime(request)
    view = None
    if hint:
        try:
            view = deps.cluster(rt, hint)
        except ApiError as exc:
            if exc.status != 404:
                raise
            raise ApiError(404, f"Unable to determine cluster name. clusterHint={hint}") from None
    reply = await dispatch.cluster_command(request, RecoveryVerb.SUBMIT_MASTERS_TO_KV_STORES, view)
    return ok(reply.message or "Submitted 0 masters", reply.details if reply.details is not None else [])


@router.api_route(
    "/submit-masters-to-kv-stores",
    methods=deps.BOTH,
    dependencies=ADMIN,
    summary="Write every cluster's master to baton_masters and the KV stores",
)
# orchestrator-client asks `submit-masters-to-kv-stores/` (empty alias): served as is, not redirected
@router.api_route(
    "/submit-masters-to-kv-stores/", methods=deps.BOTH, dependencies=ADMIN, include_in_schema=False
)
async def submit_masters(request: Request) -> Any:
    return await _submit_masters(request, None)


@router.api_route(
    "/submit-masters-to-kv-stores/{hint}",
    methods=deps.BOTH,
    dependencies=ADMIN,
    summary="Write a cluster's master (by alias, name or instance) to baton_masters and the KV stores",
)
async def submit_cluster_master(request: Request, hint: str) -> Any:
    return await _submit_masters(request, hint)


async def _switch(request: Request, enabled: bool) -> Any:
    rt = deps.runtime(request)
    value = GlobalRecoveries(enabled=enabled, changed_at=rt.now(), by=deps.principal_name(request))
    await dispatch.kv_put(rt, buckets.SETTINGS, GLOBAL_RECOVERIES_KEY, value.model_dump_json().encode())
    await dispatch.audit(
        rt, "settings", "recoveries.enabled" if enabled else "recoveries.disabled", by=value.by
    )
    return ok(
        f"Global recoveries {'enabled' if enabled else 'disabled'}", "enabled" if enabled else "disabled"
    )


@router.api_route(
    "/disable-global-recoveries",
    methods=deps.BOTH,
    dependencies=ADMIN,
    summary="Stop all automated recoveries",
)
async def disable_global(request: Request) -> Any:
    return await _switch(request, False)


@router.api_route(
    "/enable-global-recoveries",
    methods=deps.BOTH,
    dependencies=ADMIN,
    summary="Allow automated recoveries again",
)
async def enable_global(request: Request) -> Any:
    return await _switch(request, True)


@router.get("/check-global-recoveries", dependencies=[Depends(reader)], summary="enabled or disabled")
async def check_global(request: Request) -> Any:
    state = deps.runtime(request).global_recoveries()
    enabled = state is None or state.enabled
    return ok(
        "Global recoveries " + ("enabled" if enabled else "disabled"), "enabled" if enabled else "disabled"
    )
