from __future__ import annotations

import json
from datetime import UTC, datetime

from libs.kv.base import PublishOutcome, PublishResult
from services.kvpublisher import audit_events
from services.kvpublisher.status import DCStatus
from tests.unit.kvpublisher.helpers import rec

FIELDS = {"dc", "cluster", "alias", "value", "epoch", "key", "latency_ms", "trigger"}


def test_published_event_carries_the_fields() -> None:
    record = rec("db-2.example.com", 4, port=3307)
    result = PublishResult(
        outcome=PublishOutcome.WRITTEN,
        key="mysql/master/shop",
        value="db-2.example.com:3307",
        epoch=4,
        index=12,
        previous_value="db-1:3306",
        previous_epoch=3,
        attempts=1,
    )
    ev = audit_events.published_event(
        "dc2", record, result, prefix="mysql/master", latency_ms=1.23456, trigger="watch", node="n1"
    )
    assert ev.type == "kv.published" and ev.source == "kvpublisher" and ev.epoch == 4
    assert ev.cluster == "db-1:3306" and ev.instance == "db-2.example.com:3307"
    assert ev.data.keys() >= FIELDS
    assert ev.data["dc"] == "dc2" and ev.data["value"] == "db-2.example.com:3307"
    assert ev.data["alias"] == "shop" and ev.data["key"] == "mysql/master/shop"
    assert ev.data["latency_ms"] == 1.235 and ev.data["previous_epoch"] == 3
    json.loads(ev.model_dump_json())  # JSON-ready


def test_failed_and_stale_events() -> None:
    record = rec("h", 2)
    failed = audit_events.failed_event(
        "dc1",
        record,
        "cannot connect",
        prefix="mysql/master",
        latency_ms=5,
        trigger="watch",
        node="n",
        attempt=3,
        retry_in_s=0.4,
    )
    assert failed.type == "kv.failed" and failed.data["error"] == "cannot connect"
    assert failed.data["attempt"] == 3 and failed.data.keys() >= FIELDS
    stale = audit_events.stale_event(
        "dc1",
        record,
        "held by 5",
        prefix="mysql/master",
        latency_ms=0,
        trigger="reconcile",
        node="n",
        newer_epoch=5,
    )
    assert stale.type == "kv.stale" and stale.data["newer_epoch"] == 5
    assert stale.data.keys() >= FIELDS


def test_bad_alias_still_makes_an_event() -> None:
    record = rec("h", 1, alias="a/b")
    ev = audit_events.failed_event(
        "dc1",
        record,
        "bad alias",
        prefix="p",
        latency_ms=0,
        trigger="watch",
        node="n",
        attempt=1,
        retry_in_s=None,
    )
    assert ev.data["key"] is None


def test_status_tracks_health() -> None:
    at = datetime(2025, 1, 1, tzinfo=UTC)
    st = DCStatus(dc="dc1", store="ConsulKVStore(consul dc1 at http://127.0.0.1:1)")
    assert st.healthy
    st.failure(at, "c", "down")
    st.failure(at, "c", "down")
    assert not st.healthy and st.consecutive_failures == 2 and st.failed == 2
    st.success(at, "c", "h:1", 3, written=True)
    assert st.healthy and st.published == 1 and st.last_error is not None
    st.reconciled(at, checked=2, repairs=1, ahead=["x"], error="1 read(s) failed")
    out = st.as_dict()
    assert not out["healthy"] and out["last_reconcile"]["repairs"] == 1 and out["ahead"] == ["x"]
    json.dumps(out)
