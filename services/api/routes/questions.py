"""orchestrator's questions, tags, maintenance and operations routes (the rest of orchestrator-client).

- questions: `search`, `topology-tags`, `cluster-osc-replicas`, `locate-gtid-errant` (the recovery leader
  reads the binary logs), `heuristic-cluster-pool-instances` (not supported: Baton has no pools);
- tags: `tags`, `tag-value`, `tag`, `untag`, `untag-all`, `tagged` (KV `baton_tags`, libs/discovery/tags.py);
- maintenance: `begin-maintenance`, `end-maintenance`, `in-maintenance`, `maintenance` (KV
  `baton_maintenance`, libs/discovery/maintenance.py);
- `forget-cluster`, `snapshot-topologies`;
- operations: `reload-configuration` (libs/config/reload.py) and the `raft-*` routes, answered with
  Baton's equivalent of orchestrator's raft leader: the recovery leader (lease `baton_leader/recovery`).

Routes, JSON shapes and messages are orchestrator's (go/http/api.go); see docs/api.md for differences.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import nats.errors
import nats.js.errors
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from libs.bus import lease
from libs.bus.connection import bus_errors
from libs.bus.provision import LEADER
from libs.bus.subjects import cmd_subject, kv_key, kv_key_decode
from libs.config.reload import current_source
from libs.discovery import maintenance as maint
from libs.discovery import tags as tagging
from libs.errors import BatonError, ConfigError
from libs.models import InstanceKey
from libs.models.operator import RECOVERY_SERVICE, RecoveryVerb
from libs.topology.osc import osc_replicas
from libs.topology.refactor import can_replicate_from, gtid_compatible
from libs.topology.render import tree_lines
from libs.topology.view import ClusterView
from services.api import deps, dispatch
from services.api.auth import admin, reader
from services.api.envelope import ApiError, bad_request, ok
from services.api.runtime import Runtime
from services.api.shapes import key_json

log = logging.getLogger(__name__)

_read = APIRouter(prefix="/api", tags=["orchestrator: questions"], dependencies=[Depends(reader)])
_admin = APIRouter(
    prefix="/api", tags=["orchestrator: tags, maintenance, operations"], dependencies=[Depends(admin)]
)
router = APIRouter()

NOT_SUPPORTED = 404  # with the reason: like an unknown route, but saying why Baton has no such thing


def _sorted(keys: Any) -> list[InstanceKey]:
    return sorted(keys, key=lambda k: (k.host, k.port))


# -- questions -----------------------------------------------------------------------------------------


def _search(rt: Runtime, text: str) -> list[dict[str, Any]]:
    """orchestrator's SearchInstances: host:port, cluster name or alias, version, data center
    (substring, any case), or an exact server id or port."""
    needle = text.strip().lower()
    out: list[dict[str, Any]] = []
    for view in rt.views():
        for state in view.instances:
            info = state.info
            haystack = (
                str(state.key),
                view.name,
                view.alias,
                info.version,
                info.version_comment,
                info.data_center,
            )
            number_hit = needle.isdigit() and int(needle) in (info.server_id, state.key.port)
            if not needle or number_hit or any(needle in (h or "").lower() for h in haystack):
                out.append(deps.instance_doc(rt, state, view))
    return out


@_read.get("/search", summary="Instances matching ?s= (host, cluster, alias, version, data center)")
async def search(request: Request, s: str = "") -> list[dict[str, Any]]:
    return _search(deps.runtime(request), s)


@_read.get("/search/{text}", summary="Instances matching a search string")
async def search_path(request: Request, text: str) -> list[dict[str, Any]]:
    return _search(deps.runtime(request), text)


def _tags_tree(rt: Runtime, view: ClusterView) -> Any:
    """orchestrator's topology-tags: the ascii tree, each line followed by ` [tag,tag=value]`."""
    lines = tree_lines(view, rt.now(), rt.params.stale_after)
    width = max((len(ln.name) for ln in lines), default=0)
    all_tags = _all_tags(rt)
    shown = {
        k: ",".join(tagging.Tag(n, v).display() for n, v in sorted(t.items())) for k, t in all_tags.items()
    }
    text = "\n".join(f"{ln.text(width)} [{shown.get(ln.key, '')}]" for ln in lines)
    return ok(f"Topology for cluster {view.name}", text)


@_read.get("/topology-tags/{name}", summary="The ascii tree with each instance's tags")
async def topology_tags(request: Request, name: str) -> Any:
    rt = deps.runtime(request)
    return _tags_tree(rt, deps.cluster(rt, name))


@_read.get("/topology-tags/{host}/{port}", summary="The ascii tree with tags, of an instance's cluster")
async def topology_tags_of_instance(request: Request, host: str, port: str) -> Any:
    rt = deps.runtime(request)
    return _tags_tree(rt, deps.known(rt, deps.parse_key(host, port))[1])


def _can_replicate(request: Request, host: str, port: str, below_host: str, below_port: str) -> Any:
    """orchestrator's CanReplicateFrom (and -gtid, which Baton answers alike: every move is by GTID):
    `Message` "true" with the source's key in `Details`; a reason that rules the move out is the ERROR
    envelope (HTTP 409) in orchestrator's words."""
    rt = deps.runtime(request)
    replica, _ = deps.known(rt, deps.parse_key(host, port))
    source, _ = deps.known(rt, deps.parse_key(below_host, below_port))
    why = can_replicate_from(replica.info, source.info)
    if why is None:
        why = gtid_compatible(replica.info, source.info)
    if why is not None:
        raise ApiError(409, why)
    return ok("true", key_json(source.key))


@_read.get(
    "/can-replicate-from/{host}/{port}/{below_host}/{below_port}",
    summary="Can the instance replicate from the other one (binlogs, versions, GTID)?",
)
async def can_replicate_from_route(
    request: Request, host: str, port: str, below_host: str, below_port: str
) -> Any:
    return _can_replicate(request, host, port, below_host, below_port)


@_read.get(
    "/can-replicate-from-gtid/{host}/{port}/{below_host}/{below_port}",
    summary="Can the instance replicate from the other one by GTID?",
)
async def can_replicate_from_gtid_route(
    request: Request, host: str, port: str, below_host: str, below_port: str
) -> Any:
    return _can_replicate(request, host, port, below_host, below_port)


@_read.get("/locate-gtid-errant/{host}/{port}", summary="Binary logs holding an instance's errant GTIDs")
async def locate_gtid_errant(request: Request, host: str, port: str) -> Any:
    reply = await dispatch.instance_command(
        request, RecoveryVerb.LOCATE_GTID_ERRANT, deps.parse_key(host, port)
    )
    return ok(reply.message or "located errant GTID", reply.details or [])


async def _osc(request: Request, name: str) -> list[dict[str, Any]]:
    rt = deps.runtime(request)
    view = deps.cluster(rt, name)
    return [deps.instance_doc(rt, s, view) for s in osc_replicas(view, rt.now(), rt.params.stale_after)]


@_read.get("/cluster-osc-replicas/{name}", summary="Replicas fit to control an online schema change")
async def cluster_osc_replicas(request: Request, name: str) -> list[dict[str, Any]]:
    return await _osc(request, name)


@_read.get("/cluster-osc-slaves/{name}", summary="cluster-osc-replicas (orchestrator's older name)")
async def cluster_osc_slaves(request: Request, name: str) -> list[dict[str, Any]]:
    return await _osc(request, name)


def _no_pools(what: str) -> ApiError:
    return ApiError(
        NOT_SUPPORTED,
        f"{what}: not supported: Baton has no instance pools (no submit-pool-instances); "
        "use tags (tag, tagged) to group instances",
    )


@_read.get("/heuristic-cluster-pool-instances/{name}", summary="Not supported (Baton has no pools)")
async def heuristic_pool(name: str) -> Any:
    raise _no_pools("heuristic-cluster-pool-instances")


@_read.get("/heuristic-cluster-pool-instances/{name}/{pool}", summary="Not supported (Baton has no pools)")
async def heuristic_pool_named(name: str, pool: str) -> Any:
    raise _no_pools("heuristic-cluster-pool-instances")


@_admin.api_route("/submit-pool-instances/{pool}", methods=deps.BOTH, summary="Not supported (no pools)")
async def submit_pool_instances(pool: str) -> Any:
    raise _no_pools("submit-pool-instances")


@_read.get("/last-pseudo-gtid/{host}/{port}", summary="Not supported (Baton uses GTID, never Pseudo-GTID)")
async def last_pseudo_gtid(host: str, port: str) -> Any:
    raise ApiError(
        NOT_SUPPORTED,
        "last-pseudo-gtid: not supported: Baton relies on GTID (MySQL or MariaDB), never Pseudo-GTID",
    )


def _no_unresolve(what: str) -> ApiError:
    return ApiError(
        NOT_SUPPORTED,
        f"{what}: not supported: Baton names an instance as MySQLHostnameResolveMethod says and keeps its "
        "other names as aliases in the discovery registry; there are no virtual (unresolved) names",
    )


@_admin.api_route(
    "/register-hostname-unresolve/{host}/{port}/{name}",
    methods=deps.BOTH,
    summary="Not supported (see message)",
)
async def register_hostname_unresolve(host: str, port: str, name: str) -> Any:
    raise _no_unresolve("register-hostname-unresolve")


@_admin.api_route("/deregister-hostname-unresolve/{host}/{port}", methods=deps.BOTH, summary="Not supported")
async def deregister_hostname_unresolve(host: str, port: str) -> Any:
    raise _no_unresolve("deregister-hostname-unresolve")


# -- tags ----------------------------------------------------------------------------------------------


def _all_tags(rt: Runtime) -> dict[InstanceKey, dict[str, str]]:
    mirror = rt.mirrors.get(tagging.BUCKET)
    out: dict[InstanceKey, dict[str, str]] = {}
    for name, raw in (mirror.entries if mirror else {}).items():
        try:
            value = json.loads(raw)
            key = InstanceKey.parse(kv_key_decode(name))
        except ValueError:
            log.warning("baton_tags/%s: undecodable entry ignored", name)
            continue
        if isinstance(value, dict) and value:
            out[key] = {str(k): str(v) for k, v in value.items()}
    return out


def _tag_of(request: Request, name: str | None = None, value: str | None = None) -> tagging.Tag:
    """orchestrator's getTag: `?tag=` if given, else the path's name (and value)."""
    text = request.query_params.get("tag", "")
    try:
        if text:
            return tagging.parse_tag(text)
        return tagging.new_tag(name or "", value or "")
    except tagging.TagError as exc:
        raise bad_request(str(exc)) from None


async def _change_tags(
    rt: Runtime, key: InstanceKey, change: Callable[[dict[str, str]], dict[str, str]]
) -> None:
    """Compare-and-set the instance's tags (two API nodes tagging one instance never lose a tag)."""
    name = kv_key(str(key))
    with bus_errors(f"writing {tagging.BUCKET}/{key}"):
        kv = await rt.bus.js.key_value(tagging.BUCKET)
        for _ in range(10):
            revision: int | None = None
            current: dict[str, str] = {}
            try:
                entry = await kv.get(name)
                revision = entry.revision
                current = json.loads(entry.value or b"{}") if entry.value else {}
            except nats.js.errors.KeyNotFoundError:
                revision = None
            except ValueError:
                current = {}
            new = change(dict(current))
            if new == current and revision is not None:
                return
            raw = json.dumps(new, sort_keys=True).encode()
            try:
                if not new:
                    if revision is not None:
                        await kv.delete(name, last=revision)
                elif revision is None:
                    await kv.create(name, raw)
                else:
                    await kv.update(name, raw, last=revision)
            except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.BadRequestError):
                continue  # lost a race: read again
            mirror = rt.mirrors.get(tagging.BUCKET)
            if mirror is not None:
                mirror.apply(name, raw if new else None)
            return
    raise ApiError(409, f"tags of {key}: changed concurrently too often; try again")


@_read.get("/tags/{host}/{port}", summary="An instance's tags (name=value)")
async def tags(request: Request, host: str, port: str) -> list[str]:
    key = deps.parse_key(host, port)
    return tagging.tag_strings(_all_tags(deps.runtime(request)).get(key, {}))


async def _tag_value(request: Request, host: str, port: str, name: str | None) -> Any:
    key = deps.parse_key(host, port)
    tag = _tag_of(request, name)
    found = _all_tags(deps.runtime(request)).get(key, {})
    if tag.name not in found:
        raise ApiError(404, f"tag {tag.name} not found for {key}")
    return JSONResponse(found[tag.name])


@_read.get("/tag-value/{host}/{port}", summary="The value of ?tag= on an instance (a JSON string)")
async def tag_value(request: Request, host: str, port: str) -> Any:
    return await _tag_value(request, host, port, None)


@_read.get("/tag-value/{host}/{port}/{name}", summary="The value of a tag on an instance")
async def tag_value_named(request: Request, host: str, port: str, name: str) -> Any:
    return await _tag_value(request, host, port, name)


@_read.get("/tagged/{host}/{port}", summary="As `tagged` (orchestrator-client adds -i when given)")
async def tagged_with_instance(request: Request, host: str, port: str, tag: str = "") -> list[dict[str, Any]]:
    return await tagged(request, tag)


@_read.get("/tagged", summary="Instances tagged by ?tag= (name, name=value, ~name; comma = all of them)")
async def tagged(request: Request, tag: str = "") -> list[dict[str, Any]]:
    rt = deps.runtime(request)
    known = [s.key for v in rt.views() for s in v.instances]
    try:
        return [key_json(k) for k in tagging.tagged(_all_tags(rt), tag, known)]
    except tagging.TagError as exc:
        raise bad_request(str(exc)) from None


async def _tag(request: Request, host: str, port: str, name: str | None, value: str | None) -> Any:
    rt = deps.runtime(request)
    key = deps.known(rt, deps.parse_key(host, port))[0].key
    tag = _tag_of(request, name, value)
    if tag.negate:
        raise bad_request(f"Unable to tag with a negation: {request.query_params.get('tag', '')}")
    await _change_tags(rt, key, lambda t: {**t, tag.name: tag.value})
    by = deps.principal_name(request)
    await dispatch.audit(
        rt, "tag", "tag.added", by=by, instance=key, data={"tag": tag.name, "value": tag.value}
    )
    return ok(f"{key} tagged with {tag}", key_json(key))


@_admin.api_route("/tag/{host}/{port}", methods=deps.BOTH, summary="Tag an instance (?tag=name[=value])")
async def tag_instance(request: Request, host: str, port: str) -> Any:
    return await _tag(request, host, port, None, None)


@_admin.api_route("/tag/{host}/{port}/{name}/{value}", methods=deps.BOTH, summary="Tag an instance")
async def tag_instance_named(request: Request, host: str, port: str, name: str, value: str) -> Any:
    return await _tag(request, host, port, name, value)


async def _untag(request: Request, instance: InstanceKey | None, tag: tagging.Tag) -> Any:
    rt = deps.runtime(request)
    try:
        targets = tagging.untag_targets(_all_tags(rt), tag, instance)
    except tagging.TagError as exc:
        raise bad_request(str(exc)) from None
    for key in targets:
        await _change_tags(rt, key, lambda t: {n: v for n, v in t.items() if n != tag.name})
    by = deps.principal_name(request)
    for key in targets:
        await dispatch.audit(rt, "tag", "tag.removed", by=by, instance=key, data={"tag": tag.name})
    return ok(f"{tag.name} removed from {len(targets)} instances", [key_json(k) for k in targets])


@_admin.api_route("/untag/{host}/{port}", methods=deps.BOTH, summary="Remove ?tag= from an instance")
async def untag(request: Request, host: str, port: str) -> Any:
    tag = _tag_of(request)
    return await _untag(request, deps.parse_key(host, port), tag)


@_admin.api_route("/untag/{host}/{port}/{name}", methods=deps.BOTH, summary="Remove a tag from an instance")
async def untag_named(request: Request, host: str, port: str, name: str) -> Any:
    tag = _tag_of(request, name)
    return await _untag(request, deps.parse_key(host, port), tagging.Tag(tag.name))


@_admin.api_route("/untag-all", methods=deps.BOTH, summary="Remove ?tag=name=value from every instance")
async def untag_all(request: Request) -> Any:
    return await _untag(request, None, _tag_of(request))


@_admin.api_route("/untag-all/{name}/{value}", methods=deps.BOTH, summary="Remove a tag=value everywhere")
async def untag_all_named(request: Request, name: str, value: str) -> Any:
    return await _untag(request, None, _tag_of(request, name, value))


# -- maintenance ---------------------------------------------------------------------------------------


def _locks(rt: Runtime) -> dict[InstanceKey, maint.Maintenance]:
    mirror = rt.mirrors.get(maint.BUCKET)
    now = rt.now()
    out: dict[InstanceKey, maint.Maintenance] = {}
    for name, raw in (mirror.entries if mirror else {}).items():
        try:
            key = InstanceKey.parse(kv_key_decode(name))
        except ValueError:
            continue
        lock = maint.in_maintenance(raw, now, key)
        if lock is not None:
            out[key] = lock
    return out


@_admin.api_route(
    "/begin-maintenance/{host}/{port}/{owner}/{reason}",
    methods=deps.BOTH,
    summary="Lock an instance for maintenance (no refactoring on it; expires after 10 minutes)",
)
async def begin_maintenance(request: Request, host: str, port: str, owner: str, reason: str) -> Any:
    rt = deps.runtime(request)
    key = deps.known(rt, deps.parse_key(host, port))[0].key
    if not owner.strip() or not reason.strip():
        raise bad_request("owner and reason are mandatory")
    now = rt.now()
    lock = maint.Maintenance(
        instance=str(key), owner=owner, reason=reason, begin=now, end=now + maint.DEFAULT_DURATION
    )
    raw = lock.model_dump_json(exclude={"undecodable"}).encode()
    name = kv_key(str(key))
    refused = f"Cannot begin maintenance for instance: {key}; maintenance reason: {reason}"  # orchestrator's
    with bus_errors(f"writing {maint.BUCKET}/{key}"):
        kv = await rt.bus.js.key_value(maint.BUCKET)
        try:
            await kv.create(name, raw, msg_ttl=maint.DEFAULT_DURATION.total_seconds())
        except nats.js.errors.KeyWrongLastSequenceError:
            entry = await kv.get(name)  # present: still active, or past its end but not yet expired
            if maint.in_maintenance(entry.value, now, key) is not None:
                raise ApiError(409, refused, key_json(key)) from None
            try:  # an ended lock the TTL has not removed yet: replace it (unless someone else just did)
                await kv.delete(name, last=entry.revision)
                await kv.create(name, raw, msg_ttl=maint.DEFAULT_DURATION.total_seconds())
            except nats.js.errors.KeyWrongLastSequenceError:
                raise ApiError(409, refused, key_json(key)) from None
    mirror = rt.mirrors.get(maint.BUCKET)
    if mirror is not None:
        mirror.apply(name, raw)
    by = deps.principal_name(request)
    data = {"owner": owner, "reason": reason, "ends_at": lock.end.isoformat()}
    await dispatch.audit(rt, "maintenance", "maintenance.begin", by=by, instance=key, data=data)
    return ok(f"Maintenance begun: {key}", key_json(key))


@_admin.api_route(
    "/end-maintenance/{host}/{port}", methods=deps.BOTH, summary="End an instance's maintenance"
)
async def end_maintenance(request: Request, host: str, port: str) -> Any:
    rt = deps.runtime(request)
    key = deps.parse_key(host, port)
    was = key in _locks(rt)
    if was:
        await dispatch.kv_delete(rt, maint.BUCKET, str(key))
        await dispatch.audit(
            rt, "maintenance", "maintenance.end", by=deps.principal_name(request), instance=key
        )
    return ok(f"Maintenance ended: {key}", key_json(key))


@_read.get(
    "/in-maintenance/{host}/{port}", summary='Message "true"/"false": is the instance under maintenance'
)
async def in_maintenance(request: Request, host: str, port: str) -> Any:
    key = deps.parse_key(host, port)
    locked = key in _locks(deps.runtime(request))
    return ok("true" if locked else "false", str(key) if locked else "")


@_read.get("/maintenance", summary="Active maintenance locks")
async def maintenance_list(request: Request) -> list[dict[str, Any]]:
    rt = deps.runtime(request)
    now = rt.now()
    return [
        {
            "MaintenanceId": 0,
            "Key": key_json(key),
            "BeginTimestamp": lock.begin.isoformat(),
            "SecondsElapsed": max(0, int((now - lock.begin).total_seconds())),
            "IsActive": True,
            "Owner": lock.owner,
            "Reason": lock.reason,
            "BatonEndTimestamp": lock.end.isoformat(),
        }
        for key, lock in sorted(_locks(rt).items(), key=lambda kv: (kv[0].host, kv[0].port))
    ]


# -- forget-cluster, snapshot-topologies ---------------------------------------------------------------


@_admin.api_route("/forget-cluster/{name}", methods=deps.BOTH, summary="Forget every instance of a cluster")
async def forget_cluster(request: Request, name: str) -> Any:
    rt = deps.runtime(request)
    view = deps.cluster(rt, name)
    by = deps.principal_name(request)
    for state in view.instances:
        await dispatch.forget(rt, state.key, by)
    return ok(f"Cluster forgotten: {view.name}")


@_read.get("/snapshot-topologies", summary="Record every instance's master now (event topology.snapshot)")
async def snapshot_topologies(request: Request) -> Any:
    rt = deps.runtime(request)
    started = time.monotonic()
    rows = [
        {
            "instance": str(s.key),
            "master": str(s.master_key) if s.master_key else "",
            "cluster": v.name,
            "alias": v.alias,
            "data_center": s.info.data_center,
        }
        for v in rt.views()
        for s in v.instances
    ]
    await dispatch.audit(
        rt, "topology", "topology.snapshot", by=deps.principal_name(request), data={"instances": rows}
    )
    return ok("Topology Snapshot completed", f"Took {(time.monotonic() - started) * 1000:.1f}ms")


# -- operations: reload-configuration, raft-* ----------------------------------------------------------


@_admin.api_route("/reload-configuration", methods=deps.BOTH, summary="Re-read the config file (as SIGHUP)")
async def reload_configuration(request: Request) -> Any:
    rt = deps.runtime(request)
    if request.query_params.get("config"):
        raise bad_request(
            "reload-configuration: ?config= (an extra file) is not supported; edit the config file"
        )
    source = current_source()
    if source is None:
        raise ApiError(
            409,
            "reload-configuration: this API was not started by `python -m services.api`; nothing to re-read",
        )
    try:
        result = source.reload()
    except ConfigError as exc:
        raise ApiError(400, f"Config not reloaded: {exc}") from None
    await dispatch.audit(
        rt,
        "config",
        "config.reloaded",
        by=deps.principal_name(request),
        data={"applied": list(result.applied), "restart": list(result.restart), "file": source.path or ""},
    )
    details = {
        "ConfigFile": source.path or "",
        "Applied": list(result.applied),
        "RestartNeeded": list(result.restart),
    }
    return ok(f"Config reloaded: {result.summary()}", details)


async def _leader(rt: Runtime) -> tuple[str, dict[str, Any] | None]:
    """The lease holder of `baton_leader/recovery` ("" when none) and its `status` answer (None when
    it does not answer within 2 s)."""
    try:
        info = await lease.read(rt.bus.js, LEADER, "recovery")
    except BatonError:
        return "", None
    if info is None:
        return "", None
    try:
        msg = await rt.bus.nc.request(cmd_subject(RECOVERY_SERVICE, "status"), b"", timeout=2.0)
        reply = json.loads(msg.data)
    except (TimeoutError, nats.errors.Error, ValueError):
        return info.holder, None
    details = reply.get("details") if isinstance(reply, dict) else None
    return info.holder, details if isinstance(details, dict) else None


def _healthy(status: dict[str, Any] | None) -> bool:
    return bool(status and status.get("leader"))


@_read.get("/raft-state", summary='"Leader" while a recovery leader holds the lease, else "Candidate"')
async def raft_state(request: Request) -> Any:
    holder, _ = await _leader(deps.runtime(request))
    return JSONResponse("Leader" if holder else "Candidate")


@_read.get("/raft-leader", summary="The recovery leader (lease holder of baton_leader/recovery)")
async def raft_leader(request: Request) -> Any:
    holder, _ = await _leader(deps.runtime(request))
    if not holder:
        raise ApiError(
            503, "raft-leader: no recovery leader holds the lease (is a recovery service running?)"
        )
    return JSONResponse(holder)


@_read.get("/raft-health", summary='"healthy" when the recovery leader holds the lease and answers')
async def raft_health(request: Request) -> Any:
    holder, status = await _leader(deps.runtime(request))
    if not holder or not _healthy(status):
        raise ApiError(503, "unhealthy")
    return JSONResponse("healthy")


@_read.get("/raft-status", summary="The recovery leadership: leader, epoch, health")
async def raft_status(request: Request) -> Any:
    holder, status = await _leader(deps.runtime(request))
    return {
        "RaftBind": "",
        "RaftAdvertise": "",
        "State": "Leader" if holder else "Candidate",
        "Healthy": _healthy(status),
        "IsPartOfQuorum": bool(holder),
        "Leader": holder,
        "LeaderURI": "",
        "Peers": [holder] if holder else [],
        "BatonEpoch": (status or {}).get("epoch"),
        "BatonLeaderNode": (status or {}).get("node", ""),
    }


def _no_yield(what: str) -> ApiError:
    return ApiError(
        NOT_SUPPORTED,
        f"{what}: not supported: the Baton recovery leader holds a lease in NATS KV (baton_leader); "
        "to move it, stop (SIGTERM) the leading recovery process: it releases the lease and a standby "
        "takes over at once",
    )


@_admin.api_route("/raft-yield-hint/{hint}", methods=deps.BOTH, summary="Not supported (see message)")
async def raft_yield_hint(hint: str) -> Any:
    raise _no_yield("raft-yield-hint")


@_admin.api_route("/raft-yield/{node}", methods=deps.BOTH, summary="Not supported (see message)")
async def raft_yield(node: str) -> Any:
    raise _no_yield("raft-yield")


router.include_router(_read)
router.include_router(_admin)
