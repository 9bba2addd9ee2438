"""Command requests on `baton.cmd.recovery.<verb>` (core NATS request/reply, leader only).

Only the leader subscribes (queue group `baton-recovery`), so a request reaches whoever may act. The
reply is orchestrator's envelope: `{"Code": "OK"|"ERROR", "Message": str, "Details": any}`. Verbs are a
registry; issue 6 adds `recover`, `force-master-failover`, `graceful-master-takeover`, acks, downtime,
the global switch, each one more entry in `VERBS`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from libs.bus.subjects import cmd_subject

log = logging.getLogger(__name__)
QUEUE = "baton-recovery"


class LeaderState(Protocol):
    def status(self) -> dict[str, Any]: ...


Handler = Callable[[LeaderState, dict[str, Any]], Awaitable[Any]]


async def _status(state: LeaderState, _args: dict[str, Any]) -> Any:
    return state.status()


VERBS: dict[str, Handler] = {"status": _status}


def envelope(ok: bool, message: str, details: Any = None) -> bytes:
    return json.dumps({"Code": "OK" if ok else "ERROR", "Message": message, "Details": details}).encode()


async def serve(nc: Client, state: LeaderState) -> list[Subscription]:
    """Subscribe every verb; returns the subscriptions (unsubscribe when leadership ends)."""
    subs = []
    for verb, handler in VERBS.items():

        async def on_request(msg: Msg, verb: str = verb, handler: Handler = handler) -> None:
            try:
                args = json.loads(msg.data) if msg.data else {}
                details = await handler(state, args if isinstance(args, dict) else {})
                reply = envelope(True, verb, details)
            except Exception as exc:  # noqa: BLE001 - every failure is an ERROR envelope
                log.warning("command %s failed: %s", verb, exc)
                reply = envelope(False, str(exc))
            if msg.reply:
                await msg.respond(reply)

        subs.append(await nc.subscribe(cmd_subject("recovery", verb), queue=QUEUE, cb=on_request))
    return subs
