"""The audit events of the kvpublisher, built purely from what happened (no clock reads here).

Every publish attempt's outcome is one `Event` on `baton.audit.kv`:
- `kv.published` — the keys were written (`outcome: written`); a publish that found the keys already
  right is not an event (it changes nothing an operator needs to know);
- `kv.failed` — the store could not be reached or refused; `error` says why, `retry_in_s` when the
  record is tried again (it is retried for as long as it is the newest);
- `kv.stale` — the record was refused because a newer epoch holds the keys (in Consul, in
  baton_masters, or waiting in the queue); never retried.
`data` always holds dc, cluster, alias, value (`host:port`), epoch, key and latency_ms (from the moment
this process learnt of the record to the outcome) and trigger (`watch` or `reconcile`).
"""

from __future__ import annotations

from typing import Any

from libs.kv.base import PublishResult
from libs.kv.layout import cluster_master_key
from libs.models.events import Event, MasterRecord

SOURCE = "kvpublisher"
PUBLISHED = "kv.published"
FAILED = "kv.failed"
STALE = "kv.stale"
AUDIT_KIND = "kv"


def _alias(record: MasterRecord) -> str:
    return record.alias or record.cluster


def _base(dc: str, record: MasterRecord, prefix: str, latency_ms: float, trigger: str) -> dict[str, Any]:
    alias = _alias(record)
    return {
        "dc": dc,
        "cluster": record.cluster,
        "alias": alias,
        "value": f"{record.master.host}:{record.master.port}",
        "epoch": record.epoch,
        "key": cluster_master_key(prefix, alias) if alias and "/" not in alias else None,
        "latency_ms": round(latency_ms, 3),
        "trigger": trigger,
    }


def _event(kind: str, record: MasterRecord, node: str, data: dict[str, Any]) -> Event:
    return Event(
        type=kind,
        cluster=record.cluster,
        instance=f"{record.master.host}:{record.master.port}",
        source=SOURCE,
        node=node,
        epoch=record.epoch,
        data=data,
    )


def published_event(
    dc: str,
    record: MasterRecord,
    result: PublishResult,
    *,
    prefix: str,
    latency_ms: float,
    trigger: str,
    node: str,
) -> Event:
    data = _base(dc, record, prefix, latency_ms, trigger)
    data |= {
        "outcome": str(result.outcome),
        "previous_value": result.previous_value,
        "previous_epoch": result.previous_epoch,
        "index": result.index,
        "attempts": result.attempts,
    }
    return _event(PUBLISHED, record, node, data)


def failed_event(
    dc: str,
    record: MasterRecord,
    error: str,
    *,
    prefix: str,
    latency_ms: float,
    trigger: str,
    node: str,
    attempt: int,
    retry_in_s: float | None,
) -> Event:
    data = _base(dc, record, prefix, latency_ms, trigger)
    data |= {"error": error, "attempt": attempt, "retry_in_s": retry_in_s}
    return _event(FAILED, record, node, data)


def stale_event(
    dc: str,
    record: MasterRecord,
    reason: str,
    *,
    prefix: str,
    latency_ms: float,
    trigger: str,
    node: str,
    newer_epoch: int | None = None,
) -> Event:
    data = _base(dc, record, prefix, latency_ms, trigger)
    data |= {"reason": reason, "newer_epoch": newer_epoch}
    return _event(STALE, record, node, data)
