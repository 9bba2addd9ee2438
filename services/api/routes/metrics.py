"""`GET /metrics`: Baton's metrics in the Prometheus text format, when BatonTelemetryExporter is
`prometheus` (404 otherwise, saying so).

Open to everyone, like `/api/health`: a Prometheus server scrapes without logging in, and the series
carry no secret and no instance or cluster name (only analysis codes, outcomes, data centers, streams
and node names; see libs/telemetry/metrics.py). In `baton up` (every service in one process) this one
route serves the metrics of all of them.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from libs.telemetry.setup import installed
from services.api.envelope import ApiError

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    telemetry = installed()
    body = telemetry.exposition() if telemetry is not None else None
    if body is None:
        raise ApiError(404, 'metrics are not exported here: set BatonTelemetryExporter to "prometheus"')
    return Response(body, media_type=CONTENT_TYPE_LATEST)
