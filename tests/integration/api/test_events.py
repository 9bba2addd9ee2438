"""`GET /api/events` (SSE): live events as they are projected, filters by cluster and type, replay
from `Last-Event-ID` joined to the live stream without a gap or a duplicate."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from libs.bus.connection import connect
from libs.bus.messages import publish_event
from libs.bus.provision import provision
from libs.bus.subjects import audit_subject, detection_subject
from libs.models import Event, InstanceKey
from libs.topology.detection_event import to_event
from tests.integration.api import builders
from tests.integration.api.conftest import ApiProcess


async def frames(resp: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    frame: dict[str, Any] = {}
    async for line in resp.aiter_lines():
        if line == "":
            if "data" in frame:
                yield frame
            frame = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(": ")
            frame[field] = value


async def collect(
    api: ApiProcess,
    params: dict[str, Any],
    want: int,
    headers: dict[str, str] | None = None,
    started: asyncio.Event | None = None,
) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=20)) as http,
        http.stream("GET", f"{api.api}/events", params=params, headers=headers or {}) as resp,
    ):
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        if started is not None:
            started.set()
        async for frame in frames(resp):
            got.append(frame)
            if len(got) >= want:
                break
    return got


async def publish(api: ApiProcess, events: list[tuple[str, Event]]) -> None:
    bus = await connect(api.nats_url, "sse-test")
    try:
        await provision(bus.js)
        for subject, event in events:
            await publish_event(bus.js, subject, event)
    finally:
        await bus.close()


def _detection(cluster: str) -> tuple[str, Event]:
    key = InstanceKey(host=cluster, port=3306)
    return detection_subject(str(key)), to_event(builders.detection(str(key), key))


async def test_live_filter_and_replay(api: ApiProcess) -> None:
    started = asyncio.Event()
    live = asyncio.create_task(
        collect(api, {"type": "detection.", "cluster": "sse-a:3306"}, 2, started=started)
    )
    await asyncio.wait_for(started.wait(), 10)
    await asyncio.sleep(0.2)
    kv = Event(
        type="kv.published",
        cluster="sse-a:3306",
        source="kvpublisher",
        data={"dc": "dc1", "cluster": "sse-a:3306", "value": "x:1", "epoch": 1},
    )
    first, other, second = _detection("sse-a"), _detection("sse-b"), _detection("sse-a")
    await publish(api, [first, (audit_subject("kv"), kv), other, second])
    got = await asyncio.wait_for(live, 20)
    assert [json.loads(f["data"])["id"] for f in got] == [first[1].id, second[1].id]
    assert all(f["event"] == "detection.active" for f in got)
    ids = [int(f["id"]) for f in got]
    assert ids[0] < ids[1]

    # reconnect after the first: what the store holds after it is replayed (ids in order), then a new
    # event arrives live. Streams are projected concurrently, so cross-stream order is the store's.
    api.wait_for("baton/events", lambda r: any(e["id"] == kv.id for e in r.json()))
    stored = api.get("baton/events", params={"cluster": "sse-a:3306"}).json()
    missed = sorted((e["sse_id"], e["id"]) for e in stored if e["sse_id"] > ids[0])
    assert {i for _, i in missed} >= {second[1].id}
    started = asyncio.Event()
    resumed = asyncio.create_task(
        collect(
            api,
            {"cluster": "sse-a:3306"},
            len(missed) + 1,
            headers={"Last-Event-ID": str(ids[0])},
            started=started,
        )
    )
    await asyncio.wait_for(started.wait(), 10)
    third = _detection("sse-a")
    await asyncio.sleep(0.2)
    await publish(api, [third])
    got2 = await asyncio.wait_for(resumed, 20)
    received = [(int(f["id"]), json.loads(f["data"])["id"]) for f in got2]
    assert received[:-1] == missed
    assert received[-1][1] == third[1].id and received[-1][0] > missed[-1][0]


async def test_bad_last_event_id_is_400(api: ApiProcess) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.get(f"{api.api}/events", headers={"Last-Event-ID": "abc"})
        assert resp.status_code == 400 and resp.json()["Code"] == "ERROR"
        resp = await http.get(f"{api.api}/events", params={"replay": "-1"})
        assert resp.status_code == 400
