"""orchestrator's instance commands: discover, async-discover, forget, begin/end-downtime,
register-candidate. Mutating: admin only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request

from libs.bus import provision as buckets
from libs.models import PromotionRule
from libs.models.operator import CandidateRecord
from libs.recovery.downtime import Downtime
from services.api import deps, dispatch
from services.api.auth import admin
from services.api.envelope import ApiError, bad_request, not_found, ok
from services.api.shapes import key_json

router = APIRouter(prefix="/api", tags=["orchestrator: instances"], dependencies=[Depends(admin)])


@router.api_route(
    "/discover/{host}/{port}", methods=deps.BOTH, summary="Register an instance and probe it now"
)
async def discover(request: Request, host: str, port: str) -> Any:
    rt = deps.runtime(request)
    key = deps.parse_key(host, port)
    await dispatch.register(rt, key, deps.principal_name(request))
    snap = await dispatch.fresh_snapshot(rt, key)
    if snap is None:
        return ok(f"Registered {key}; no prober answered yet", {"Key": key_json(key)})
    if not snap.reachable:
        raise ApiError(502, f"cannot probe {key}: {snap.error}", {"Key": key_json(key)})
    view = rt.directory().containing(snap.key)
    state = view.get(snap.key) if view else None
    if view is None or state is None:
        return ok(f"Instance discovered: {snap.key}", {"Key": key_json(snap.key)})
    return ok(f"Instance discovered: {snap.key}", deps.instance_doc(rt, state, view))


@router.api_route(
    "/async-discover/{host}/{port}", methods=deps.BOTH, summary="Register an instance; probe later"
)
async def async_discover(request: Request, host: str, port: str) -> Any:
    rt = deps.runtime(request)
    key = deps.parse_key(host, port)
    created = await dispatch.register(rt, key, deps.principal_name(request))
    return ok(
        f"Asynchronous discovery initiated for {key}" + ("" if created else " (already known)"),
        {"Key": key_json(key)},
    )


@router.api_route("/forget/{host}/{port}", methods=deps.BOTH, summary="Forget an instance")
async def forget(request: Request, host: str, port: str) -> Any:
    rt = deps.runtime(request)
    key = deps.parse_key(host, port)
    if not await dispatch.forget(rt, key, deps.principal_name(request)):
        raise not_found(f"instance {key}")
    return ok(f"Instance forgotten: {key}", key_json(key))


@router.api_route(
    "/begin-downtime/{host}/{port}/{owner}/{reason}/{duration}",
    methods=deps.BOTH,
    summary="Downtime an instance (no automated recovery while downtimed)",
)
async def begin_downtime(
    request: Request, host: str, port: str, owner: str, reason: str, duration: str
) -> Any:
    rt = deps.runtime(request)
    key = deps.parse_key(host, port)
    deps.known(rt, key)
    length = deps.parse_duration(duration, timedelta(minutes=60))
    if not owner.strip() or not reason.strip():
        raise bad_request("owner and reason are mandatory")
    now = rt.now()
    downtime = Downtime(instance=str(key), reason=reason, owner=owner, started_at=now, ends_at=now + length)
    await dispatch.kv_put(
        rt, buckets.DOWNTIME, str(key), downtime.model_dump_json().encode(), length.total_seconds()
    )
    await dispatch.audit(
        rt,
        "downtime",
        "downtime.begin",
        by=deps.principal_name(request),
        instance=key,
        data={"owner": owner, "reason": reason, "ends_at": downtime.ends_at.isoformat()},
    )
    return ok(f"Downtime begun: {key}", key_json(key))


@router.api_route("/end-downtime/{host}/{port}", methods=deps.BOTH, summary="End an instance's downtime")
async def end_downtime(request: Request, host: str, port: str) -> Any:
    rt = deps.runtime(request)
    key = deps.parse_key(host, port)
    was_down = key in rt.downtimes()
    if not was_down:
        deps.known(rt, key)  # 404 for an instance Baton never heard of
        return ok(f"Instance was not downtimed: {key}", key_json(key))
    await dispatch.kv_delete(rt, buckets.DOWNTIME, str(key))
    await dispatch.audit(rt, "downtime", "downtime.end", by=deps.principal_name(request), instance=key)
    return ok(f"Downtime ended: {key}", key_json(key))


@router.api_route(
    "/register-candidate/{host}/{port}/{rule}",
    methods=deps.BOTH,
    summary="Register a promotion rule for an instance (expires)",
)
async def register_candidate(request: Request, host: str, port: str, rule: str) -> Any:
    rt = deps.runtime(request)
    key = deps.parse_key(host, port)
    try:
        promotion = PromotionRule(rule.replace("-", "_"))
    except ValueError:
        raise bad_request(
            f"bad promotion rule {rule!r}: one of {', '.join(r.value for r in PromotionRule)}"
        ) from None
    deps.known(rt, key)
    now = rt.now()
    ttl = timedelta(minutes=rt.settings.CandidateInstanceExpireMinutes or 60)
    record = CandidateRecord(
        instance=str(key),
        rule=promotion,
        registered_at=now,
        expires_at=now + ttl,
        by=deps.principal_name(request),
    )
    await dispatch.kv_put(
        rt, buckets.CANDIDATES, str(key), record.model_dump_json().encode(), ttl.total_seconds()
    )
    await dispatch.audit(
        rt,
        "candidate",
        "candidate.registered",
        by=record.by,
        instance=key,
        data={"rule": promotion.value, "expires_at": record.expires_at.isoformat()},
    )
    return ok(f"Registered candidate: {key} ({promotion.value})", key_json(key))
