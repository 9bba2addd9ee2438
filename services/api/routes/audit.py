"""orchestrator's audit routes, served from the read model: audit-failure-detection, audit-recovery
(all, by page, id, uid, cluster, alias), audit-recovery-steps."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from libs.store import from_db_time, queries
from libs.store.tables import DetectionRow, RecoveryRow
from libs.topology.detection import Detection
from services.api import deps
from services.api.auth import reader
from services.api.envelope import bad_request, not_found
from services.api.numbers import is_number

router = APIRouter(prefix="/api", tags=["orchestrator: audit"], dependencies=[Depends(reader)])
log = logging.getLogger(__name__)


def _iso(value: Any) -> str:
    return from_db_time(value).isoformat() if value else ""


def detection_doc(row: DetectionRow) -> dict[str, Any]:
    try:
        from libs.topology.detection_event import failure_detection

        return failure_detection(Detection.model_validate_json(row.payload), row.id or 0)
    except (ValidationError, ImportError, ValueError) as exc:
        log.debug("detection %s: falling back to a summary (%s)", row.message_id, type(exc).__name__)
    return {
        "Id": row.id,
        "UID": row.incident,
        "IsActive": row.state != "cleared",
        "AnalysisEntry": {
            "Analysis": row.code,
            "ClusterDetails": {"ClusterName": row.cluster, "ClusterAlias": row.alias},
        },
        "RecoveryStartTimestamp": _iso(row.detected_at),
    }


def recovery_doc(row: RecoveryRow) -> dict[str, Any]:
    record = json.loads(row.payload)
    try:
        from libs.recovery.audit import RecoveryRecord

        doc = RecoveryRecord.model_validate(record).to_orchestrator()
    except (ValidationError, ImportError, ValueError) as exc:
        log.debug("recovery %s: falling back to a summary (%s)", row.uid, type(exc).__name__)
        doc = {
            "UID": row.uid,
            "AnalysisEntry": {
                "Analysis": row.code,
                "ClusterDetails": {"ClusterName": row.cluster, "ClusterAlias": row.alias},
            },
            "IsActive": row.active,
            "IsSuccessful": row.successful,
            "RecoveryStartTimestamp": _iso(row.started_at),
            "RecoveryEndTimestamp": _iso(row.ended_at),
        }
        successor = record.get("successor")
        doc["SuccessorKey"] = successor and {"Hostname": successor.get("host"), "Port": successor.get("port")}
    doc["Id"] = row.id
    doc["Acknowledged"] = row.acknowledged
    doc["AcknowledgedAt"] = _iso(row.acknowledged_at)
    doc["AcknowledgedBy"] = row.acknowledged_by
    doc["AcknowledgedComment"] = row.acknowledged_comment
    return doc


def _page(page: str) -> int:
    if not is_number(page):
        raise bad_request(f"bad page {page!r}: expected a number")
    return int(page)


async def _detections(request: Request, cluster: list[str], page: int) -> list[dict[str, Any]]:
    rows = await queries.detections(deps.runtime(request).store, cluster=cluster, page=page)
    return [detection_doc(r) for r in rows]


@router.get("/audit-failure-detection", summary="Detections, newest first")
async def audit_failure_detection(request: Request) -> list[dict[str, Any]]:
    return await _detections(request, [], 0)


@router.get("/audit-failure-detection/{page}", summary="Detections, a page")
async def audit_failure_detection_page(request: Request, page: str) -> list[dict[str, Any]]:
    return await _detections(request, [], _page(page))


@router.get("/audit-failure-detection/alias/{alias}", summary="Detections of a cluster alias")
async def audit_failure_detection_alias(request: Request, alias: str) -> list[dict[str, Any]]:
    return await _detections(request, [alias], 0)


async def _recoveries(
    request: Request, *, cluster: list[str] | None = None, uid: str | None = None, page: int = 0
) -> list[dict[str, Any]]:
    rows = await queries.recoveries(deps.runtime(request).store, cluster=cluster or [], uid=uid, page=page)
    return [recovery_doc(r) for r in rows]


@router.get("/audit-recovery", summary="Recoveries, newest first")
async def audit_recovery(request: Request) -> list[dict[str, Any]]:
    return await _recoveries(request)


@router.get("/audit-recovery/{page}", summary="Recoveries, a page")
async def audit_recovery_page(request: Request, page: str) -> list[dict[str, Any]]:
    return await _recoveries(request, page=_page(page))


@router.get("/audit-recovery/id/{recovery_id}", summary="One recovery by numeric id")
async def audit_recovery_id(request: Request, recovery_id: str) -> list[dict[str, Any]]:
    row = await queries.recovery_by_id(deps.runtime(request).store, _page(recovery_id))
    if row is None:
        raise not_found(f"recovery {recovery_id}")
    return [recovery_doc(row)]


@router.get("/audit-recovery/uid/{uid}", summary="One recovery by uid")
async def audit_recovery_uid(request: Request, uid: str) -> list[dict[str, Any]]:
    found = await _recoveries(request, uid=uid)
    if not found:
        raise not_found(f"recovery {uid}")
    return found


def _cluster_names(request: Request, name: str) -> list[str]:
    """Every name a cluster answers to (name, alias, names before failovers); for a cluster no longer
    in the fleet, the given text itself."""
    directory = deps.runtime(request).directory()
    view = directory.find(name)
    return directory.names_of(view) if view else [name]


@router.get("/audit-recovery/cluster/{name}", summary="A cluster's recoveries")
async def audit_recovery_cluster(request: Request, name: str) -> list[dict[str, Any]]:
    return await _recoveries(request, cluster=_cluster_names(request, name))


@router.get("/audit-recovery/cluster/{name}/{page}", summary="A cluster's recoveries, a page")
async def audit_recovery_cluster_page(request: Request, name: str, page: str) -> list[dict[str, Any]]:
    return await _recoveries(request, cluster=_cluster_names(request, name), page=_page(page))


@router.get("/audit-recovery/alias/{alias}", summary="Recoveries of a cluster alias")
async def audit_recovery_alias(request: Request, alias: str) -> list[dict[str, Any]]:
    return await _recoveries(request, cluster=_cluster_names(request, alias))


@router.get("/audit-recovery-steps/{uid}", summary="The steps of one recovery")
async def audit_recovery_steps(request: Request, uid: str) -> list[dict[str, Any]]:
    store = deps.runtime(request).store
    if not await queries.recoveries(store, uid=uid, limit=1):
        raise not_found(f"recovery {uid}")
    rows = await queries.recovery_steps(store, uid)
    out = []
    for row in rows:
        text = f"{row.name}: {row.outcome}" + (f" ({row.detail})" if row.detail else "")
        text += f": {row.error}" if row.error else ""
        out.append(
            {
                "Id": row.id,
                "RecoveryUID": uid,
                "AuditAt": _iso(row.ended_at or row.started_at),
                "Message": text,
            }
        )
    return out
