"""How the API carries out commands: KV writes (downtime, candidates, global switch), registry changes
(discover, forget) and request/reply to the recovery leader (`baton.cmd.recovery.<verb>`)."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import nats.errors
from fastapi import Request
from pydantic import ValidationError

from libs.bus.connection import bus_errors
from libs.bus.messages import publish_event
from libs.bus.subjects import audit_subject, cmd_subject, kv_key
from libs.models import Event, InstanceKey, InstanceSnapshot
from libs.models.operator import (
    RECOVERY_SERVICE,
    CommandReply,
    CommandRequest,
    CommandStatus,
    RecoveryVerb,
    RefactorVerb,
)
from libs.store.projection import FORGOTTEN
from libs.topology.view import ClusterView, fold
from services.api import deps
from services.api.envelope import ApiError
from services.api.runtime import Runtime
from services.api.shapes import key_json

log = logging.getLogger(__name__)

_STATUS = {
    CommandStatus.OK: 200,
    CommandStatus.FAILED: 500,
    CommandStatus.REFUSED: 409,
    CommandStatus.NOT_FOUND: 404,
    CommandStatus.BAD_REQUEST: 400,
    CommandStatus.BUSY: 409,
}
_FROM_HTTP = {
    400: CommandStatus.BAD_REQUEST,
    404: CommandStatus.NOT_FOUND,
    409: CommandStatus.REFUSED,
    500: CommandStatus.FAILED,
}


async def kv_put(rt: Runtime, bucket: str, name: str, value: bytes, ttl_s: float | None = None) -> None:
    """Put `value` at `name` (encoded as a KV key), with a per-message TTL when given."""
    key = kv_key(name)
    subject = f"$KV.{bucket}.{key}"
    with bus_errors(f"writing {bucket}/{name}"):
        ttl = max(1, math.ceil(ttl_s)) if ttl_s is not None else None
        await rt.bus.js.publish(subject, value, msg_ttl=ttl)
    mirror = rt.mirrors.get(bucket)
    if mirror is not None:
        mirror.apply(key, value)


async def kv_delete(rt: Runtime, bucket: str, name: str) -> None:
    key = kv_key(name)
    with bus_errors(f"deleting {bucket}/{name}"):
        kv = await rt.bus.js.key_value(bucket)
        await kv.delete(key)
    mirror = rt.mirrors.get(bucket)
    if mirror is not None:
        mirror.apply(key, None)


async def audit(
    rt: Runtime,
    kind: str,
    event_type: str,
    *,
    by: str,
    instance: InstanceKey | None = None,
    cluster: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Record an operator action on `baton.audit.<kind>` (who, what; never a secret)."""
    if cluster is None and instance is not None:
        view = rt.directory().containing(instance)
        cluster = view.name if view else None
    event = Event(
        type=event_type,
        source="api",
        node=rt.settings.BatonNodeName,
        cluster=cluster,
        instance=str(instance) if instance else None,
        data={"by": by, **(data or {})},
    )
    await publish_event(rt.bus.js, audit_subject(kind), event)


async def forget(rt: Runtime, key: InstanceKey, by: str) -> bool:
    from libs.discovery.registry import forget as registry_forget

    was_registered = await registry_forget(rt.bus.js, key)
    was_known = rt.fleet.forget(key)
    if was_registered or was_known:
        await audit(rt, "instance", FORGOTTEN, by=by, instance=key)
    return was_registered or was_known


async def register(rt: Runtime, key: InstanceKey, by: str) -> bool:
    from libs.discovery.registry import register as registry_register

    return await registry_register(rt.bus.js, key, source="api", added_by=by)


async def fresh_snapshot(rt: Runtime, key: InstanceKey, timeout_s: float = 2.0) -> InstanceSnapshot | None:
    """A fresh snapshot of `key`: from the prober (probe-now), else by probing it here when topology
    credentials are configured (the snapshot is then published like a prober's). None if neither."""
    from libs.bus.probe_now import probe_now

    found = await probe_now(rt.bus.nc, [key], timeout=timeout_s, reason="api discover")
    snap = found.get(key) or next(iter(found.values()), None)
    if snap is None and rt.settings.MySQLTopologyUser:
        from libs.bus.messages import publish_model
        from libs.bus.subjects import snapshot_subject
        from libs.config.derive import probe_settings, topology_credentials
        from libs.mysql.probe import probe

        snap = await probe(key, topology_credentials(rt.settings), probe_settings(rt.settings), prober="api")
        await publish_model(rt.bus.js, snapshot_subject(key), snap)
    if snap is not None:
        rt.fleet.update({snap.key: fold(rt.fleet.states.get(snap.key), snap)})
    return snap


async def cluster_command(
    request: Request, verb: RecoveryVerb | RefactorVerb, view: ClusterView | None, **fields: Any
) -> CommandReply:
    """Send a verb to the recovery leader on behalf of whoever asked, naming the cluster (and its alias)
    it is about, if any: the one way routes build a `CommandRequest`."""
    req = CommandRequest(
        verb=verb.value,
        requested_by=deps.principal_name(request),
        cluster=view.name if view else None,
        alias=view.alias if view else None,
        **fields,
    )
    return await recovery_command(deps.runtime(request), req)


async def instance_command(
    request: Request,
    verb: RecoveryVerb | RefactorVerb,
    key: InstanceKey,
    dest: InstanceKey | None = None,
    *,
    known_dest: bool = True,
    **fields: Any,
) -> CommandReply:
    """A verb about one known instance (404 otherwise) and an optional destination, which must be
    known too unless `known_dest` is off (the leader then judges it: a recovery's candidate)."""
    rt = deps.runtime(request)
    _, view = deps.known(rt, key)
    if dest is not None and known_dest:
        deps.known(rt, dest)
    return await cluster_command(request, verb, view, instance=key, destination=dest, **fields)


async def recovery_command(rt: Runtime, request: CommandRequest) -> CommandReply:
    """Send a command to the recovery leader and return its reply; a non-OK reply raises the ApiError
    of its status. No leader answering → 503; no answer in time → 504."""
    verb: RecoveryVerb | RefactorVerb = (
        RefactorVerb(request.verb)
        if request.verb in RefactorVerb.__members__.values()
        else RecoveryVerb(request.verb)
    )
    subject = cmd_subject(RECOVERY_SERVICE, verb.value)
    try:
        msg = await rt.bus.nc.request(
            subject, request.model_dump_json().encode(), timeout=verb.reply_timeout_s
        )
    except nats.errors.NoRespondersError:
        raise ApiError(
            503, f"{verb.value}: no recovery leader is answering (is the recovery service running?)"
        ) from None
    except nats.errors.TimeoutError:
        raise ApiError(
            504, f"{verb.value}: the recovery leader did not answer within {verb.reply_timeout_s:g}s"
        ) from None
    except nats.errors.Error as exc:
        raise ApiError(503, f"{verb.value}: NATS request failed: {type(exc).__name__}") from None
    reply = decode_reply(msg.data)
    if reply is None:
        raise ApiError(502, f"{verb.value}: the recovery leader answered something undecodable")
    if not reply.ok:
        details = recovery_details(reply) if reply.recovery or reply.details is not None else None
        raise ApiError(_STATUS[reply.status], reply.message or f"{verb.value} {reply.status.value}", details)
    return reply


def decode_reply(data: bytes) -> CommandReply | None:
    """A `CommandReply`, or orchestrator's envelope turned into one (see CommandReply's doc)."""
    try:
        raw = json.loads(data)
    except ValueError:
        return None
    if isinstance(raw, dict) and "Code" in raw:
        ok_ = raw.get("Code") == "OK"
        http = raw.get("Status")
        status = (
            CommandStatus.OK
            if ok_
            else _FROM_HTTP.get(http if isinstance(http, int) else 409, CommandStatus.REFUSED)
        )
        return CommandReply(status=status, message=str(raw.get("Message", "")), details=raw.get("Details"))
    try:
        return CommandReply.model_validate(raw)
    except ValidationError:
        return None


def recovery_details(reply: CommandReply) -> dict[str, Any] | None:
    """orchestrator's TopologyRecovery from a reply's recovery record (None when there is none)."""
    if reply.details is not None:
        return reply.details  # type: ignore[no-any-return]
    record = reply.recovery
    if record is None:
        return None
    try:
        from libs.recovery.audit import RecoveryRecord

        doc = RecoveryRecord.model_validate(record).to_orchestrator()
    except (ValidationError, ImportError, AttributeError) as exc:
        log.warning("recovery record in reply not decodable (%s); answering a summary", type(exc).__name__)
        doc = {"UID": record.get("uid", ""), "IsSuccessful": reply.successor is not None}
    doc["SuccessorKey"] = key_json(reply.successor) if reply.successor else doc.get("SuccessorKey")
    if reply.write_outage_ms is not None:
        doc["BatonWriteOutageMs"] = reply.write_outage_ms
    return doc
