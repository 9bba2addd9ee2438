"""`GET /api/events`: Server-Sent Events of everything Baton does (detections, recoveries, KV
publishes, operator actions), filtered by cluster and type.

Ids are the read model's event ids. A client that reconnects with `Last-Event-ID` (or `?last_event_id=`)
first gets what it missed, replayed from the store, then live events as the projector stores them:
the hub subscription starts *before* the replay, and live events at or below the last replayed id are
skipped, so nothing is lost or repeated at the seam. Without an id, the stream starts with live events
(`?replay=N` replays the last N first). A comment line every 15 s keeps proxies from closing it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from libs.store import queries
from services.api import deps
from services.api.auth import reader
from services.api.envelope import bad_request
from services.api.hub import LiveEvent
from services.api.numbers import is_number

router = APIRouter(prefix="/api", tags=["events"], dependencies=[Depends(reader)])
KEEPALIVE_S = 15.0
REPLAY_PAGE = 500


def _frame(event_id: int, event_type: str, payload: str) -> str:
    return f"id: {event_id}\nevent: {event_type}\ndata: {payload}\n\n"


@router.get(
    "/events",
    summary="Server-Sent Events (text/event-stream); replay with Last-Event-ID",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "an event stream"}},
)
async def events(
    request: Request,
    cluster: list[str] | None = Query(default=None, description="cluster name or alias (repeatable)"),
    type: list[str] | None = Query(default=None, description="event types; `recovery.` matches a prefix"),
    last_event_id: str | None = Query(default=None, description="replay events after this id"),
    replay: int = Query(default=0, ge=0, le=10_000, description="without an id: replay the last N events"),
    last_event_id_header: str | None = Header(default=None, alias="Last-Event-ID"),
) -> StreamingResponse:
    rt = deps.runtime(request)
    raw_id = last_event_id_header or last_event_id
    if raw_id is not None and not is_number(raw_id.strip()):
        raise bad_request(f"bad Last-Event-ID {raw_id!r}: expected a number")
    types = [t.strip() for item in type or [] for t in item.split(",") if t.strip()]
    directory = rt.directory()
    names: list[str] = []
    for name in cluster or []:
        view = directory.find(name)
        names.extend(directory.names_of(view) if view else [name])
    sub = rt.hub.subscribe()
    if raw_id is not None:
        after = int(raw_id)
    else:
        after = max(0, await queries.last_event_id(rt.store) - replay) if replay else None  # type: ignore[assignment]

    def wanted(event: LiveEvent) -> bool:
        return (not names or event.cluster in names) and queries.type_matches(event.type, types)

    async def stream() -> AsyncIterator[str]:
        last = 0
        try:
            yield ": baton events\n\n"
            if after is not None:
                last = after
                while True:
                    rows = await queries.events_after(rt.store, last, cluster=names, limit=REPLAY_PAGE)
                    if not rows:
                        break
                    for row in rows:
                        last = max(last, row.id or 0)
                        if queries.type_matches(row.type, types):
                            yield _frame(row.id or 0, row.type, row.payload)
                    if len(rows) < REPLAY_PAGE:
                        break
            while not sub.dropped:
                if await request.is_disconnected():
                    break
                live = await sub.get(KEEPALIVE_S)
                if live is None:
                    yield ": keepalive\n\n"
                    continue
                if live.id <= last or not wanted(live):
                    continue
                last = live.id
                yield _frame(live.id, live.type, live.payload)
        finally:
            sub.close()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
