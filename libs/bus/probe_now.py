"""The requester side of probe-now: fresh snapshots of some instances, from whichever workers own them.

    snapshots = await probe_now(bus.nc, [InstanceKey.parse("db1:3306")], timeout=2.0)

Scatter/gather on core NATS `baton.probe.now` (protocol: `libs/models/probe.py`): one `ProbeNowRequest`
goes out with a private reply inbox; every prober worker answers with the shards it holds and fresh
snapshots of the requested instances in them. We stop waiting as soon as the shards of all requested
instances are covered by the answers received (the owners have spoken), or at `timeout`, returning
whatever came. The requester needs no knowledge of workers or shard ownership.

Fallback (`fallback=True`, the default): the instances whose shard no answering worker holds (its holder
is cut off, or crashed, and its lease has not been seen to lapse yet — with JetStream itself disrupted
that took seconds) are asked once more with `anyone`: every worker probes them (not published, only
returned), and we wait up to `timeout` again. Overlap is harmless; a gap was not: without it an
analyzer saw the master and its replicas go stale while dc1's NATS node was cut from its peers, and
published a false DeadMasterAndReplicas (chaos tier, nats-node-isolated). Only when some worker
answered at all (no answer: no prober anywhere to ask).

Promises:
- returns `{snapshot.key: snapshot}`; a requested instance with no entry was not probed (no worker
  holds its shard, or its holder did not answer in time). The key is the instance's canonical name,
  which differs from the requested one only for an alias (see `libs/topology/naming.py`);
- never raises for a missing answer; raises BusError if the request cannot be sent;
- on a healthy loopback setup it returns in a few milliseconds (one probe round trip plus NATS hops).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import ValidationError

from libs.bus.connection import bus_errors
from libs.bus.subjects import PROBE_NOW
from libs.models import InstanceKey, InstanceSnapshot, ProbeNowReply, ProbeNowRequest
from libs.topology.shards import shard_of

DEFAULT_TIMEOUT_S = 2.0


def covered(requested: Iterable[InstanceKey], replies: Iterable[ProbeNowReply]) -> bool:
    """True when every requested instance's shard is held by a worker that answered."""
    replies = list(replies)
    if not replies:
        return False
    held: dict[int, set[int]] = {}
    for reply in replies:
        held.setdefault(reply.shard_count, set()).update(reply.shards)
    return all(any(shard_of(k, n) in shards for n, shards in held.items()) for k in requested)


async def probe_now(
    nc: Client,
    instances: Iterable[InstanceKey],
    *,
    timeout: float = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109 - the deadline is part of the protocol
    reason: str = "",
    fallback: bool = True,
) -> dict[InstanceKey, InstanceSnapshot]:
    """Ask the prober workers for fresh snapshots of `instances`; see the module doc."""
    wanted = tuple(dict.fromkeys(instances))
    if not wanted:
        return {}
    request = ProbeNowRequest(instances=wanted, reason=reason)
    replies: list[ProbeNowReply] = []
    done = asyncio.Event()
    orphans: tuple[InstanceKey, ...] = ()

    async def on_reply(msg: Msg) -> None:
        try:
            reply = ProbeNowReply.model_validate_json(msg.data)
        except ValidationError:
            return
        replies.append(reply)
        if orphans and {s.key for s in reply.snapshots} >= set(orphans):
            done.set()  # one worker probed every orphan
        elif not orphans and covered(wanted, replies):
            done.set()

    inbox = nc.new_inbox()
    with bus_errors("probe-now"):
        sub = await nc.subscribe(inbox, cb=on_reply)
    try:
        with bus_errors("probe-now"):
            await nc.publish(PROBE_NOW, request.model_dump_json().encode(), reply=inbox)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout)
        orphans = tuple(k for k in wanted if not covered([k], replies)) if fallback and replies else ()
        if orphans:  # their holders did not answer (cut off?): any worker probes them
            done.clear()
            again = ProbeNowRequest(instances=orphans, reason=reason, anyone=True)
            with bus_errors("probe-now"):
                await nc.publish(PROBE_NOW, again.model_dump_json().encode(), reply=inbox)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout)
    finally:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()
    result: dict[InstanceKey, InstanceSnapshot] = {}
    for reply in replies:
        for snap in reply.snapshots:
            known = result.get(snap.key)
            if known is None or snap.probed_at > known.probed_at:
                result[snap.key] = snap
    return result
