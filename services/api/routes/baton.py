"""Baton's own routes, where it goes further than orchestrator: events, recovery plans and timings,
KV publish status, the projection's state. JSON in Baton's own (snake_case) shapes."""

from __future__ import annotations

import json
from typing import Any

import nats.errors
from fastapi import APIRouter, Depends, Query, Request

from libs.bus.subjects import cmd_subject
from libs.store import from_db_time, queries
from services.api import deps
from services.api.auth import reader
from services.api.envelope import not_found

router = APIRouter(prefix="/api/baton", tags=["baton"], dependencies=[Depends(reader)])


def _types(value: list[str] | None) -> list[str]:
    return [t.strip() for item in value or [] for t in item.split(",") if t.strip()]


@router.get("/events", summary="Recent events (newest first), filtered by cluster and type")
async def events(
    request: Request,
    cluster: list[str] | None = Query(default=None, description="cluster name or alias (repeatable)"),
    type: list[str] | None = Query(default=None, description="event type; `recovery.` matches a prefix"),
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    rt = deps.runtime(request)
    names = _cluster_names(request, cluster)
    rows = await queries.recent_events(rt.store, cluster=names, types=_types(type), limit=limit)
    return [{"sse_id": r.id, **json.loads(r.payload)} for r in rows]


def _cluster_names(request: Request, clusters: list[str] | None) -> list[str]:
    directory = deps.runtime(request).directory()
    names: list[str] = []
    for name in clusters or []:
        view = directory.find(name)
        names.extend([view.name] if view else [name])
    return names


@router.get("/recoveries", summary="Recoveries (newest first), with outcome and timings")
async def recoveries(
    request: Request,
    cluster: list[str] | None = Query(default=None),
    active: bool | None = None,
    limit: int = Query(default=50, ge=1, le=500),
) -> list[dict[str, Any]]:
    rt = deps.runtime(request)
    rows = await queries.recoveries(
        rt.store,
        cluster=_cluster_names(request, cluster) + (cluster or []),
        active=active,
        include_skipped=True,
        limit=limit,
    )
    return [
        {
            "id": r.id,
            "uid": r.uid,
            "cluster": r.cluster,
            "alias": r.alias,
            "instance": r.instance,
            "code": r.code,
            "outcome": r.outcome,
            "active": r.active,
            "successful": r.successful,
            "started_at": from_db_time(r.started_at).isoformat(),
            "ended_at": from_db_time(r.ended_at).isoformat() if r.ended_at else None,
            "acknowledged": r.acknowledged,
        }
        for r in rows
    ]


@router.get(
    "/recoveries/{uid}", summary="One recovery in full: plan, passed-over and lost replicas, steps, timings"
)
async def recovery(request: Request, uid: str) -> dict[str, Any]:
    rt = deps.runtime(request)
    rows = await queries.recoveries(rt.store, uid=uid, limit=1)
    if not rows:
        raise not_found(f"recovery {uid}")
    row = rows[0]
    record: dict[str, Any] = json.loads(row.payload)
    try:
        from libs.recovery.audit import RecoveryRecord

        record["timings"] = RecoveryRecord.model_validate(record).timings()
    except Exception:  # noqa: BLE001 - timings are a bonus; the record itself is served regardless
        record.setdefault("timings", None)
    record["id"] = row.id
    record["acknowledged"] = {
        "acknowledged": row.acknowledged,
        "by": row.acknowledged_by,
        "comment": row.acknowledged_comment,
        "at": from_db_time(row.acknowledged_at).isoformat() if row.acknowledged_at else None,
    }
    return record


@router.get("/kv-status", summary="KV publishing: last outcome per data center and cluster, and live status")
async def kv_status(request: Request) -> dict[str, Any]:
    rt = deps.runtime(request)
    rows = await queries.kv_status(rt.store)
    live: Any = None
    try:
        msg = await rt.bus.nc.request(cmd_subject("kvpublisher", "status"), b"{}", timeout=1.0)
        live = json.loads(msg.data)
    except (nats.errors.Error, ValueError):
        live = None
    return {
        "clusters": [
            {
                "dc": r.dc,
                "cluster": r.cluster,
                "alias": r.alias,
                "value": r.value,
                "epoch": r.epoch,
                "outcome": r.outcome,
                "error": r.error,
                "latency_ms": r.latency_ms,
                "at": from_db_time(r.at).isoformat(),
                "last_success_at": from_db_time(r.last_success_at).isoformat() if r.last_success_at else None,
            }
            for r in rows
        ],
        "publishers": live,
    }


@router.get("/projection", summary="The read model's projection: cursor and lag per stream")
async def projection(request: Request) -> dict[str, Any]:
    rt = deps.runtime(request)
    return {
        "backend": rt.store.dialect,
        "instances": len(rt.fleet.states),
        "streams": rt.projector.status() if rt.projector else [],
    }


@router.get("/masters", summary="baton_masters: the master record of every cluster (with epochs)")
async def masters(request: Request) -> list[dict[str, Any]]:
    from libs.bus.provision import MASTERS

    mirror = deps.runtime(request).mirrors.get(MASTERS)
    out = []
    for raw in mirror.entries.values() if mirror else []:
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue
    return sorted(out, key=lambda m: str(m.get("cluster", "")))
