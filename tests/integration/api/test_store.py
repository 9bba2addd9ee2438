"""The read model on SQLite and MariaDB: idempotent, resumable projection; the API resumes after a
restart from the stored cursors without duplicating anything."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from libs.bus.connection import connect
from libs.bus.messages import publish_event, publish_model
from libs.bus.provision import provision
from libs.bus.server import NatsServer
from libs.bus.subjects import detection_subject, recovery_subject, snapshot_subject
from libs.models import Event, InstanceKey, InstanceSnapshot, utcnow
from libs.store import open_store, queries
from libs.store import projection as proj
from libs.topology.detection_event import to_event
from tests.integration.api import builders
from tests.integration.api.conftest import start_api

M = InstanceKey(host="db-m.example", port=3306)
R = InstanceKey(host="db-r.example", port=3306)


def _snap(key: InstanceKey, reachable: bool = True, master: InstanceKey | None = None) -> InstanceSnapshot:
    from libs.models import ReplicationStatus

    repl = ReplicationStatus(master=master) if master else None
    if not reachable:
        return InstanceSnapshot.unreachable(key, utcnow(), "refused", code=2003)
    return InstanceSnapshot(key=key, probed_at=utcnow(), reachable=True, version="10.11.6", replication=repl)


def _msgs(*payloads: bytes, start: int = 1) -> list[proj.Message]:
    return [proj.Message(seq=start + i, subject="s", data=p) for i, p in enumerate(payloads)]


async def test_snapshots_fold_and_reapply_is_a_no_op(store_url: str) -> None:
    store = await open_store(store_url)
    try:
        up, down = _snap(M), _snap(M, reachable=False)
        first = await proj.apply_batch(
            store, proj.SNAPSHOTS, _msgs(up.model_dump_json().encode(), down.model_dump_json().encode())
        )
        assert first.cursor == 2 and first.skipped == 0
        states = await queries.instance_states(store)
        assert len(states) == 1 and states[0].last_probe.reachable is False
        assert states[0].last_seen is not None and states[0].last_seen.probed_at == up.probed_at
        again = await proj.apply_batch(store, proj.SNAPSHOTS, _msgs(up.model_dump_json().encode()))
        assert again.skipped == 1 and again.instances == {}
        assert (await queries.instance_states(store))[0].last_probe.reachable is False
    finally:
        await store.close()


async def test_cursor_survives_reopen_and_reset_converges(store_url: str) -> None:
    det = builders.detection(str(M), M)
    payload = to_event(det).model_dump_json().encode()
    store = await open_store(store_url)
    try:
        await proj.apply_batch(store, proj.DETECTIONS, _msgs(payload, b"not json", start=10))
    finally:
        await store.close()
    store = await open_store(store_url)
    try:
        assert await proj.get_cursor(store, proj.DETECTIONS) == 11
        await proj.set_cursor(store, proj.DETECTIONS, 0)  # a replay from the start...
        result = await proj.apply_batch(store, proj.DETECTIONS, _msgs(payload, start=10))
        assert result.events == []  # ...adds nothing: upserts by natural keys
        rows = await queries.detections(store)
        assert [r.message_id for r in rows] == [det.message_id]
        assert len(await queries.events_after(store, 0)) == 1
    finally:
        await store.close()


async def test_recovery_upsert_steps_and_ack(store_url: str) -> None:
    det = builders.detection(str(M), M)
    running = builders.recovery(det)
    done = builders.recovery(det, succeed_to=R)
    done.uid = running.uid
    store = await open_store(store_url)
    try:
        events = [builders.recovery_event(running, "registered"), builders.recovery_event(done, "completed")]
        ack = Event(
            type="recovery.acknowledged",
            cluster=str(M),
            source="recovery",
            data={"uid": running.uid, "by": "bob", "comment": "looked at it"},
        )
        await proj.apply_batch(
            store, proj.RECOVERIES, _msgs(*(e.model_dump_json().encode() for e in [*events, ack]))
        )
        # a late, older copy of the record (fewer steps, still running) must not win
        stale = builders.recovery_event(running, "planned")
        await proj.apply_batch(store, proj.RECOVERIES, _msgs(stale.model_dump_json().encode(), start=4))
        (row,) = await queries.recoveries(store)
        assert row.uid == done.uid and row.successful and not row.active
        assert row.acknowledged and row.acknowledged_by == "bob"
        steps = await queries.recovery_steps(store, row.uid)
        assert [s.name for s in steps] == ["plan", "promote"]
        assert json.loads(row.payload)["successor"] == {"host": R.host, "port": R.port}
    finally:
        await store.close()


async def test_kv_status_keeps_the_newest(store_url: str) -> None:
    store = await open_store(store_url)
    try:
        new = Event(
            type="kv.published",
            cluster="c1",
            source="kvpublisher",
            data={"dc": "dc1", "cluster": "c1", "value": "a:1", "epoch": 5, "latency_ms": 3.5},
        )
        old = Event(
            type="kv.failed",
            cluster="c1",
            source="kvpublisher",
            time=utcnow().replace(year=2020),
            data={"dc": "dc1", "cluster": "c1", "value": "b:1", "epoch": 4, "error": "down"},
        )
        await proj.apply_batch(
            store, proj.AUDIT, _msgs(new.model_dump_json().encode(), old.model_dump_json().encode())
        )
        (row,) = await queries.kv_status(store)
        assert (row.outcome, row.value, row.epoch, row.latency_ms) == ("kv.published", "a:1", 5, 3.5)
    finally:
        await store.close()


async def _publish(nats_url: str, detections: int, first_index: int) -> None:
    bus = await connect(nats_url, "t")
    try:
        await provision(bus.js)
        await publish_model(bus.js, snapshot_subject(M), _snap(M))
        for i in range(first_index, first_index + detections):
            key = InstanceKey(host=f"h{i}", port=3306)
            det = builders.detection(str(key), key)
            await publish_event(bus.js, detection_subject(str(key)), to_event(det), msg_id=det.message_id)
            rec = builders.recovery(det, succeed_to=R)
            await publish_event(
                bus.js, recovery_subject(str(key), "completed"), builders.recovery_event(rec, "completed")
            )
    finally:
        await bus.close()


def test_api_restart_resumes_from_the_cursor(store_url: str, nats_server: NatsServer, tmp_path: Path) -> None:
    backend = "sqlite" if store_url.startswith("sqlite") else "mariadb"
    asyncio.run(_publish(nats_server.url, 2, 0))
    api = start_api(tmp_path, nats_server.url, store_url, backend)
    try:
        resp = api.wait_for("audit-failure-detection", lambda r: len(r.json()) == 2)
        assert len(resp.json()) == 2
        assert len(api.wait_for("audit-recovery", lambda r: len(r.json()) == 2).json()) == 2
    finally:
        api.stop()
    asyncio.run(_publish(nats_server.url, 1, 2))
    api = start_api(tmp_path, nats_server.url, store_url, backend)
    try:
        resp = api.wait_for("audit-failure-detection", lambda r: len(r.json()) == 3)
        assert len(resp.json()) == 3, resp.json()
        assert len(api.wait_for("audit-recovery", lambda r: len(r.json()) == 3).json()) == 3
        status = api.get("baton/projection").json()
        by_stream = {s["stream"]: s for s in status["streams"]}
        # the second process applied only what was new: 1 detection, 1 recovery, 1 snapshot
        assert by_stream["BATON_DETECTIONS"]["applied"] == 1 and by_stream["BATON_DETECTIONS"]["cursor"] == 3
        assert by_stream["BATON_RECOVERIES"]["applied"] == 1
        assert status["instances"] == 1  # loaded from the store at start, not re-projected
        recs = api.get("audit-recovery").json()
        assert all(
            r["IsSuccessful"] and r["SuccessorKey"] == {"Hostname": R.host, "Port": R.port} for r in recs
        )
        uid = recs[0]["UID"]
        steps = api.get(f"audit-recovery-steps/{uid}").json()
        assert [s["Message"].split(":")[0] for s in steps] == ["plan", "promote"]
        assert api.get(f"audit-recovery/uid/{uid}").json()[0]["UID"] == uid
        assert api.get("audit-recovery-steps/nope").status_code == 404
    finally:
        api.stop()
