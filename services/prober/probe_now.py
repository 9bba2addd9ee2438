"""The worker side of probe-now: answer every `ProbeNowRequest` on `baton.probe.now`.

Every worker answers every request (no queue group): with the shards it holds now and fresh snapshots
of the requested instances that fall in them, probed in parallel (each also published to the snapshot
stream like any probe). Instances outside its shards are left to their holders — unless the request
says `anyone` (the requester's fallback when a holder did not answer): then every worker probes them
and returns the snapshots without publishing them. The requester (`libs/bus/probe_now.py`) stops
waiting once the holders of all requested shards have answered.
Each request is handled in its own task, so a slow probe never delays the answer to another request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from libs.aio import cancel_all
from libs.bus.subjects import PROBE_NOW
from libs.models import InstanceKey, InstanceSnapshot, ProbeNowReply, ProbeNowRequest
from libs.topology.shards import shard_of

log = logging.getLogger(__name__)


class ProbeNowResponder:
    def __init__(
        self,
        nc: Client,
        worker: str,
        shard_count: int,
        *,
        held: Callable[[], frozenset[int]],
        probe: Callable[[InstanceKey], Awaitable[InstanceSnapshot]],
        probe_unowned: Callable[[InstanceKey], Awaitable[InstanceSnapshot]] | None = None,
    ) -> None:
        self.nc = nc
        self.worker = worker
        self.shard_count = shard_count
        self.held = held
        self.probe = probe
        self.probe_unowned = probe_unowned
        self.answered = 0
        self._sub: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> ProbeNowResponder:
        self._sub = await self.nc.subscribe(PROBE_NOW, cb=self._on_msg)
        return self

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
            self._sub = None
        await cancel_all(list(self._tasks))

    async def _on_msg(self, msg: Msg) -> None:
        task = asyncio.get_running_loop().create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, msg: Msg) -> None:
        if not msg.reply:
            return
        try:
            request = ProbeNowRequest.model_validate_json(msg.data)
        except ValidationError:
            log.warning("probe-now: ignoring a request that is not a ProbeNowRequest")
            return
        held = self.held()
        wanted = list(dict.fromkeys(request.instances))
        if request.anyone and self.probe_unowned is not None:  # their holders did not answer
            snapshots = list(await asyncio.gather(*(self.probe_unowned(k) for k in wanted)))
        else:
            mine = [k for k in wanted if shard_of(k, self.shard_count) in held]
            snapshots = list(await asyncio.gather(*(self.probe(k) for k in mine))) if mine else []
        reply = ProbeNowReply(
            worker=self.worker,
            shard_count=self.shard_count,
            shards=tuple(sorted(held)),
            snapshots=tuple(snapshots),
        )
        try:
            await self.nc.publish(msg.reply, reply.model_dump_json().encode())
            self.answered += 1
        except nats.errors.Error as exc:
            log.info("probe-now: could not answer: %s", exc)
