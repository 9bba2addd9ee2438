"""Command requests on `baton.cmd.recovery.<verb>` (core NATS request/reply, leader only).

Only the leader subscribes (queue group `baton-recovery`), so a request reaches whoever may act and
"no responders" means "no leader" (the API answers 503). The request is a `CommandRequest`, the reply a
`CommandReply` (`libs/models/operator.py`); the work is `libs/recovery/manual.py`'s. A leader whose
lease ended but whose subscription is not gone yet answers `refused` ("not the leader"). Verbs are a
registry: one entry per orchestrator command (`RecoveryVerb`), plus `status`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from libs.bus.subjects import cmd_subject
from libs.models.operator import CommandReply, CommandRequest, CommandStatus, RecoveryVerb, RefactorVerb
from libs.recovery.errant_binlogs import locate_command
from libs.recovery.manual import Operations

log = logging.getLogger(__name__)
QUEUE = "baton-recovery"


class LeaderState(Protocol):
    def status(self) -> dict[str, Any]: ...


Handler = Callable[[Operations, CommandRequest], Awaitable[CommandReply]]

VERBS: dict[str, Handler] = {
    RecoveryVerb.RECOVER.value: lambda ops, req: ops.recover(req),
    RecoveryVerb.RECOVER_LITE.value: lambda ops, req: ops.recover(
        req.model_copy(update={"skip_hooks": True})
    ),
    RecoveryVerb.FORCE_MASTER_FAILOVER.value: lambda ops, req: ops.force_master_failover(req),
    RecoveryVerb.FORCE_MASTER_TAKEOVER.value: lambda ops, req: ops.force_master_failover(req, takeover=True),
    RecoveryVerb.GRACEFUL_MASTER_TAKEOVER.value: lambda ops, req: ops.graceful_takeover(req, auto=False),
    RecoveryVerb.GRACEFUL_MASTER_TAKEOVER_AUTO.value: lambda ops, req: ops.graceful_takeover(req, auto=True),
    RecoveryVerb.ACK_RECOVERIES.value: lambda ops, req: ops.ack(req),
    RecoveryVerb.BLOCKED_RECOVERIES.value: lambda ops, req: ops.blocked(req),
    RecoveryVerb.SUBMIT_MASTERS_TO_KV_STORES.value: lambda ops, req: ops.submit_masters(req),
    RecoveryVerb.LOCATE_GTID_ERRANT.value: locate_command,
    # topology refactoring and replication control, under the cluster's recovery lock
    **{verb.value: (lambda ops, req: ops.refactor(req)) for verb in RefactorVerb},
}


async def answer(ops: Operations, state: LeaderState, verb: str, data: bytes) -> CommandReply:
    """The reply to one request (never raises)."""
    if verb == "status":
        return CommandReply(status=CommandStatus.OK, message="status", details=state.status())
    if not ops.fence.held:
        return CommandReply(
            status=CommandStatus.REFUSED, message=f"{verb}: not the recovery leader any more; retry"
        )
    try:
        request = CommandRequest.model_validate_json(data) if data else CommandRequest(verb=verb)
    except ValidationError as exc:
        return CommandReply(
            status=CommandStatus.BAD_REQUEST, message=f"{verb}: bad request: {exc.errors()[:1]}"
        )
    try:
        return await VERBS[verb](ops, request)
    except Exception as exc:  # noqa: BLE001 - every failure is a reply
        log.warning("command %s failed: %s", verb, exc)
        return CommandReply(status=CommandStatus.FAILED, message=f"{verb}: {type(exc).__name__}: {exc}")


async def serve(nc: Client, ops: Operations, state: LeaderState) -> list[Subscription]:
    """Subscribe every verb; returns the subscriptions (unsubscribe when leadership ends)."""
    subs = []
    for verb in ("status", *VERBS):

        async def on_request(msg: Msg, verb: str = verb) -> None:
            reply = await answer(ops, state, verb, msg.data)
            if msg.reply:
                await msg.respond(reply.model_dump_json().encode())

        subs.append(await nc.subscribe(cmd_subject("recovery", verb), queue=QUEUE, cb=on_request))
    return subs
