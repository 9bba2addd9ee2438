"""health, status, leader-check, lb-check, _ping: open to everyone (load balancers do not log in).

Any API node can serve every route (they all read the same streams), so `leader-check` answers 200
whenever this node is connected to NATS; the recovery *leader* (which acts) is shown in `status`.
"""

from __future__ import annotations

import socket
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from libs.bus import lease
from libs.bus.provision import LEADER
from libs.errors import BusError
from services.api import deps
from services.api.envelope import error_response, ok
from services.api.numbers import is_number

router = APIRouter(prefix="/api", tags=["health"])
HOSTNAME = socket.gethostname()


async def _health(request: Request) -> dict[str, Any]:
    rt = deps.runtime(request)
    leader_name = ""
    if rt.healthy():
        try:
            info = await lease.read(rt.bus.js, LEADER, "recovery")
            leader_name = info.holder if info else ""
        except BusError:
            leader_name = ""
    projection = rt.projector.status() if rt.projector else []
    return {
        "Healthy": rt.healthy(),
        "Hostname": HOSTNAME,
        "Token": rt.settings.BatonNodeName,
        "IsActiveNode": rt.healthy(),
        "ActiveNode": {
            "Hostname": leader_name,
            "Token": "",
            "AppVersion": "",
            "FirstSeenActive": "",
            "LastSeenActive": "",
            "ExtraInfo": "",
            "Command": "",
            "DBBackend": rt.store.dialect,
            "LastReported": "",
        },
        "Error": None if rt.healthy() else "NATS disconnected",
        "AvailableNodes": [],
        "RaftLeader": leader_name,
        "IsRaftLeader": False,
        "RaftLeaderURI": "",
        "RaftAdvertise": "",
        "RaftHealthyMembers": [],
        "RecoveryLeader": leader_name,
        "Projection": projection,
        "UptimeSeconds": round(rt.now().timestamp() - rt.started_at.timestamp(), 3),
    }


@router.get("/health", summary="Health (envelope, Details = health object)")
async def health(request: Request) -> Any:
    details = await _health(request)
    if not details["Healthy"]:
        return error_response(503, "Application node is unhealthy", details)
    return ok("Application node is healthy", details)


@router.get("/status", summary="Status (envelope, Details = health object)")
async def status(request: Request) -> Any:
    return await health(request)


@router.get("/leader-check", summary='200 "OK" when this node can serve, else 404')
async def leader_check(request: Request) -> Any:
    if deps.runtime(request).healthy():
        return JSONResponse("OK")
    return JSONResponse("Not leader", status_code=404)


@router.get("/leader-check/{status_code}", summary="leader-check with a custom failure status")
async def leader_check_status(request: Request, status_code: str) -> Any:
    if deps.runtime(request).healthy():
        return JSONResponse("OK")
    code = int(status_code) if is_number(status_code) and 400 <= int(status_code) <= 599 else 404
    return JSONResponse("Not leader", status_code=code)


@router.get("/lb-check", summary="Load-balancer check")
async def lb_check() -> Any:
    return JSONResponse("OK")


@router.get("/_ping", summary="Liveness")
async def ping() -> Any:
    return JSONResponse("OK")
