"""orchestrator's topology refactoring and replication-control routes (admin only), carried out by the
recovery leader under the cluster's recovery lock (`baton.cmd.recovery.<verb>`,
libs/recovery/refactoring.py).

Routes and parameters are orchestrator's (go/http/api.go), with both `-replica` and `-slave` spellings:
`/api/<verb>/:host/:port` (replication control, move-up, take-master, make-co-master, ...),
`/api/<verb>/:host/:port/:belowHost/:belowPort` (relocate, move-below, move-gtid, ...; optional for
repoint, repoint-replicas, move-up-replicas, match-up-replicas), `delay-replication/:host/:port/:seconds`,
`purge-binary-logs/:host/:port/:logFile`, `restart-replica-statements/:host/:port?q=` (statements only:
answered here from the read model, nothing runs), and `?pattern=` for the bulk moves. The answer is
orchestrator's envelope: `Details` is the instance (bulk moves: the replicas moved), probed again after
the move so `orchestrator-client` prints the new topology at once. Refusals are HTTP 409 with the reason
in orchestrator's words, a busy cluster (a recovery or another operation holds it) 409 too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request

from libs.bus.probe_now import probe_now
from libs.models import InstanceKey
from libs.models.operator import RefactorVerb
from libs.mysql.dialect import dialect_for
from libs.topology.refactor import restart_statements
from libs.topology.view import fold
from services.api import deps, dispatch
from services.api.auth import admin
from services.api.envelope import ok

router = APIRouter(prefix="/api", tags=["orchestrator: refactoring"], dependencies=[Depends(admin)])
V = RefactorVerb

# verb -> its spellings on orchestrator's API
SINGLE: dict[RefactorVerb, tuple[str, ...]] = {
    V.STOP_REPLICA: ("stop-replica", "stop-slave"),
    V.STOP_REPLICA_NICE: ("stop-replica-nice", "stop-slave-nice"),
    V.START_REPLICA: ("start-replica", "start-slave"),
    V.RESTART_REPLICA: ("restart-replica", "restart-slave"),
    V.RESET_REPLICA: ("reset-replica", "reset-slave"),
    V.DETACH_REPLICA: ("detach-replica", "detach-slave"),
    V.REATTACH_REPLICA: ("reattach-replica", "reattach-slave"),
    V.DETACH_REPLICA_MASTER_HOST: ("detach-replica-master-host", "detach-slave-master-host"),
    V.REATTACH_REPLICA_MASTER_HOST: ("reattach-replica-master-host", "reattach-slave-master-host"),
    V.SKIP_QUERY: ("skip-query",),
    V.SET_READ_ONLY: ("set-read-only",),
    V.SET_WRITEABLE: ("set-writeable",),
    V.FLUSH_BINARY_LOGS: ("flush-binary-logs",),
    V.ENABLE_SEMI_SYNC_MASTER: ("enable-semi-sync-master",),
    V.DISABLE_SEMI_SYNC_MASTER: ("disable-semi-sync-master",),
    V.ENABLE_SEMI_SYNC_REPLICA: ("enable-semi-sync-replica", "enable-semi-sync-slave"),
    V.DISABLE_SEMI_SYNC_REPLICA: ("disable-semi-sync-replica", "disable-semi-sync-slave"),
    V.GTID_ERRANT_RESET_MASTER: ("gtid-errant-reset-master",),
    V.GTID_ERRANT_INJECT_EMPTY: ("gtid-errant-inject-empty",),
    V.MOVE_UP: ("move-up",),
    V.MATCH_UP: ("match-up",),
    V.TAKE_SIBLINGS: ("take-siblings",),
    V.TAKE_MASTER: ("take-master",),
    V.MAKE_CO_MASTER: ("make-co-master",),
    V.REGROUP_REPLICAS: ("regroup-replicas", "regroup-slaves"),
    # the destination is optional for these
    V.REPOINT: ("repoint",),
    V.REPOINT_REPLICAS: ("repoint-replicas", "repoint-slaves"),
    V.MOVE_UP_REPLICAS: ("move-up-replicas", "move-up-slaves"),
    V.MATCH_UP_REPLICAS: ("match-up-replicas", "match-up-slaves"),
}
WITH_DESTINATION: dict[RefactorVerb, tuple[str, ...]] = {
    V.RELOCATE: ("relocate",),
    V.RELOCATE_REPLICAS: ("relocate-replicas", "relocate-slaves"),
    V.MATCH: ("match", "match-below"),
    V.MOVE_BELOW: ("move-below",),
    V.MOVE_EQUIVALENT: ("move-equivalent",),
    V.MOVE_GTID: ("move-gtid",),
    V.MOVE_REPLICAS_GTID: ("move-replicas-gtid", "move-slaves-gtid"),
    V.REPOINT: ("repoint",),
    V.REPOINT_REPLICAS: ("repoint-replicas", "repoint-slaves"),
    V.MOVE_UP_REPLICAS: ("move-up-replicas", "move-up-slaves"),
    V.MATCH_UP_REPLICAS: ("match-up-replicas", "match-up-slaves"),
}
# answered with the replicas moved (take-siblings: with the instance, as orchestrator does)
BULK = {
    V.RELOCATE_REPLICAS,
    V.MOVE_REPLICAS_GTID,
    V.REPOINT_REPLICAS,
    V.MOVE_UP_REPLICAS,
    V.MATCH_UP_REPLICAS,
}


async def run_verb(
    request: Request,
    verb: RefactorVerb,
    key: InstanceKey,
    dest: InstanceKey | None = None,
    argument: str = "",
) -> Any:
    """Send the verb to the recovery leader; answer orchestrator's envelope with fresh instance JSON."""
    rt = deps.runtime(request)
    reply = await dispatch.instance_command(request, verb, key, dest, argument=argument)
    details = reply.details if isinstance(reply.details, dict) else {}
    subject = InstanceKey.parse(details.get("instance") or str(key))
    moved = [InstanceKey.parse(k) for k in details.get("moved", [])]
    await _refresh(rt, [subject, key, *moved, *([dest] if dest else [])])
    if verb in BULK:
        docs = [_instance(rt, k) for k in moved]
        return ok(reply.message, [d for d in docs if d is not None])
    return ok(reply.message, _instance(rt, subject))


async def _refresh(rt: Any, keys: list[InstanceKey]) -> None:
    """Fresh snapshots (probe-now) folded into the read model, so the answer shows the new topology."""
    found = await probe_now(rt.bus.nc, list(dict.fromkeys(keys)), timeout=3.0, reason="api refactor")
    rt.fleet.update({k: fold(rt.fleet.states.get(k), snap) for k, snap in found.items()})


def _instance(rt: Any, key: InstanceKey) -> dict[str, object] | None:
    view = rt.directory().containing(key)
    state = view.get(key) if view else None
    return deps.instance_doc(rt, state, view) if view is not None and state is not None else None


Handler = Callable[..., Awaitable[Any]]


def _single(verb: RefactorVerb) -> Handler:
    async def handler(request: Request, host: str, port: str, pattern: str = "") -> Any:
        return await run_verb(request, verb, deps.parse_key(host, port), argument=pattern)

    return handler


def _with_destination(verb: RefactorVerb) -> Handler:
    async def handler(
        request: Request, host: str, port: str, dhost: str, dport: str, pattern: str = ""
    ) -> Any:
        key, dest = deps.parse_key(host, port), deps.parse_key(dhost, dport)
        return await run_verb(request, verb, key, dest, argument=pattern)

    return handler


OPTIONAL_DESTINATION = {V.REPOINT_REPLICAS, V.MOVE_UP_REPLICAS, V.MATCH_UP_REPLICAS, V.REGROUP_REPLICAS}


def _add(path: str, handler: Handler, summary: str, *, documented: bool) -> None:
    """GET and POST, as orchestrator serves them; the OpenAPI schema lists the POST of the canonical
    spelling only (the `-slave` spellings and the trailing-slash forms are the same operation)."""
    router.add_api_route(path, handler, methods=["POST"], summary=summary, include_in_schema=documented)
    router.add_api_route(path, handler, methods=["GET"], summary=summary, include_in_schema=False)


for _verb, _names in SINGLE.items():
    for _i, _name in enumerate(_names):
        _add(f"/{_name}/{{host}}/{{port}}", _single(_verb), f"orchestrator {_name}", documented=_i == 0)
        if _verb in OPTIONAL_DESTINATION:  # orchestrator-client sends `<verb>/host/port/` without one
            _add(f"/{_name}/{{host}}/{{port}}/", _single(_verb), f"orchestrator {_name}", documented=False)
for _verb, _names in WITH_DESTINATION.items():
    for _i, _name in enumerate(_names):
        _add(
            f"/{_name}/{{host}}/{{port}}/{{dhost}}/{{dport}}",
            _with_destination(_verb),
            f"orchestrator {_name} (below the destination)",
            documented=_i == 0,
        )


async def delay_replication(request: Request, host: str, port: str, seconds: str) -> Any:
    return await run_verb(request, V.DELAY_REPLICATION, deps.parse_key(host, port), argument=seconds)


async def purge_binary_logs(request: Request, host: str, port: str, log_file: str) -> Any:
    return await run_verb(request, V.PURGE_BINARY_LOGS, deps.parse_key(host, port), argument=log_file)


async def restart_replica_statements(request: Request, host: str, port: str, q: str = "") -> Any:
    rt = deps.runtime(request)
    state, _ = deps.known(rt, deps.parse_key(host, port))
    info = state.info
    terms = False
    if info.version:
        try:
            terms = dialect_for(info.version).replica_terms
        except ValueError:
            terms = False
    return ok(f"statements for: {info.key}", restart_statements(info, q, replica_terms=terms))


_add(
    "/delay-replication/{host}/{port}/{seconds}",
    delay_replication,
    "Set the replica's MASTER_DELAY (seconds)",
    documented=True,
)
_add(
    "/purge-binary-logs/{host}/{port}/{log_file}",
    purge_binary_logs,
    "PURGE BINARY LOGS TO the given log (refused while a replica still reads an earlier one)",
    documented=True,
)
_add(
    "/restart-replica-statements/{host}/{port}",
    restart_replica_statements,
    "The statements that restart replication around an injected one (nothing is executed)",
    documented=True,
)
_add(
    "/restart-slave-statements/{host}/{port}",
    restart_replica_statements,
    "The statements that restart replication around an injected one (nothing is executed)",
    documented=False,
)
