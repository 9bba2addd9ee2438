"""Every live entry of a KV bucket, read so that a short answer can never pass for "none registered".

nats-py 2.16's `kv.keys()` and `kv.watchall()` decide that the initial values are over by comparing
the consumer's server-side pending count with the client's delivered count right after subscribing:
when the server has already pushed everything but the client has not yet counted it, the end marker
comes first and the bucket reads as empty (`keys()` raised NoKeysError about once in 4,000 calls on a
bucket holding two keys; once a registered `must_not` replica was promoted that way). Their consumers
also stay on the server for five minutes after use, and the server refuses new ones at its consumer
limit. `scan` reads the bucket's stream itself instead:

1. stream info: a stream holding no message at all is an empty bucket; its `last_seq` is noted;
2. an ephemeral pull consumer (LAST_PER_SUBJECT over `$KV.<bucket>.>`, no acks, in memory); right after
   creation, before anything was pulled, its `num_pending` is the number of messages to expect (the
   last one of every key, value or tombstone);
3. pull until every expected message has arrived: the consumer delivers the last message of every
   key in stream order, then each write made since its creation, so the messages at or before
   `last_seq` are all expected ones, and once they number the expected count no key can be missing
   (no wait for `num_pending` to read 0, which a constantly written bucket may never show; counting
   every message against the expected count was the other half of that bug). Writes made meanwhile
   are applied as they come (a value, then its delete), but not waited for: a bucket written all the
   time (leases, a registry during discovery) still ends. When fewer came by `last_seq` (a write
   slipped in between the stream info and the consumer's creation, or a key was rewritten before its
   turn, so its last message now comes later), the keys the stream holds are listed (stream info
   with a subject filter) and the scan reads on until at most 64 of them have not been delivered,
   whose last messages are then read directly (a hot key may stay just ahead of the consumer);
4. the answer must hold at least the expected number of messages and reach `last_seq` (unless that
   message is gone, e.g. expired); a short answer is read again, and after `attempts` it is a BusError;
5. the consumer is deleted at once.

The time allowed (`timeout_s`, 5 s) grows with the bucket: 2 ms per expected message, at most 30 s.

Delete/purge markers and the server's markers for a key whose per-message TTL or max age ran out
(`Nats-Marker-Reason`, which nats-py's `kv.get` takes for a live value) are tombstones: absent keys.

Live copies (`scan_and_watch`) take their initial set from `scan`, then apply a watcher created after
it; the watcher's own end-of-initial-values marker (None) means nothing and is to be skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext, api
from nats.js.kv import KV_DEL, KV_MARKER_REASON, KV_OP, KV_PURGE, KeyValue

from libs.bus.connection import bus_errors
from libs.errors import BusError

log = logging.getLogger(__name__)

_FETCH_MAX = 1000  # messages per pull request
_FETCH_WAIT_S = 1.0  # one pull's wait; the scan as a whole is bounded by `scan_budget`
_PER_MESSAGE_S = 0.002  # time allowed per expected message beyond the floor...
_MAX_BUDGET_S = 30.0  # ...up to this
_MAX_SUBJECTS = 100_000  # the server lists at most this many subjects in one stream info
_DIRECT_MAX = 64  # keys still missing that are read one by one rather than waited for


@dataclass(frozen=True)
class KVEntry:
    key: str
    value: bytes
    revision: int  # the stream sequence of the value (what compare-and-set expects)


class _Short(Exception):
    """The stream answered with fewer messages than it said it holds."""


def scan_budget(expected: int, timeout_s: float) -> float:
    """Seconds a scan of `expected` messages may take: `timeout_s`, more for a big bucket (bounded)."""
    return max(timeout_s, min(expected * _PER_MESSAGE_S, _MAX_BUDGET_S))


def is_tombstone(headers: Mapping[str, str] | None) -> bool:
    """A delete/purge marker, or the server's marker for a key that expired (per-message TTL, max age)."""
    h = headers or {}
    return h.get(KV_OP) in (KV_DEL, KV_PURGE) or KV_MARKER_REASON in h


async def scan(
    js: JetStreamContext, bucket: str, *, timeout_s: float = 5.0, attempts: int = 3
) -> list[KVEntry]:
    """Every live entry of `bucket` now, sorted by key. Raises BusError rather than answer short."""
    what = f"reading every entry of {bucket}"
    problem = ""
    for attempt in range(1, attempts + 1):
        with bus_errors(what):
            try:
                return await _scan_once(js, bucket, timeout_s)
            except _Short as exc:
                problem = str(exc)
        log.warning("%s: short answer (attempt %d of %d): %s", what, attempt, attempts, problem)
    raise BusError(f"{what}: {problem} (after {attempts} attempts)")


async def scan_and_watch(js: JetStreamContext, bucket: str) -> tuple[list[KVEntry], KeyValue.KeyWatcher]:
    """The live entries now (`scan`) and a watcher started after them: its values are never older than
    the scan's, so applying them (and its tombstones) over the scan keeps a copy exact. Callers skip
    the watcher's None marker and stop the watcher."""
    entries = await scan(js, bucket)
    with bus_errors(f"watching {bucket}"):
        kv = await js.key_value(bucket)
        watcher = await kv.watchall()
    return entries, watcher


async def _scan_once(js: JetStreamContext, bucket: str, timeout_s: float) -> list[KVEntry]:
    stream, prefix = f"KV_{bucket}", f"$KV.{bucket}."
    info = await js.stream_info(stream)
    if not info.state.messages:
        return []
    name = f"scan-{uuid.uuid4().hex}"
    config = api.ConsumerConfig(
        name=name,
        deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
        ack_policy=api.AckPolicy.NONE,
        filter_subject=f"{prefix}>",
        mem_storage=True,
        num_replicas=1,
        inactive_threshold=max(10.0, 2 * timeout_s),  # the server's cleanup if our delete never arrives
    )
    created = await js.add_consumer(stream, config)
    try:
        return await _drain(
            js, stream, name, prefix, int(created.num_pending or 0), info.state.last_seq, timeout_s
        )
    finally:
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await js.delete_consumer(stream, name)


async def _drain(
    js: JetStreamContext, stream: str, name: str, prefix: str, expected: int, last_seq: int, timeout_s: float
) -> list[KVEntry]:
    loop = asyncio.get_running_loop()
    budget = scan_budget(expected, timeout_s)
    deadline = loop.time() + budget
    live: dict[str, KVEntry] = {}
    delivered: set[str] = set()
    missing: set[str] | None = None  # once past last_seq short: keys the stream holds, not delivered yet
    seen = top = early = 0  # early: those at or before last_seq, all expected ones (see the docstring)
    remaining = expected
    sub = await js.pull_subscribe_bind(consumer=name, stream=stream)
    try:
        while early < expected:
            if missing is None and (top > last_seq or remaining <= 0):
                missing = await _keys_held(js, stream, prefix) - delivered
            if missing is not None and (len(missing) <= _DIRECT_MAX or remaining <= 0):
                break
            left = deadline - loop.time()
            if left <= 0:
                raise _Short(
                    f"{early} of the {expected} messages expected arrived within {budget:g}s"
                    f" (and {seen - early} written since"
                    + (f"; {len(missing)} keys still to come)" if missing is not None else ")")
                )
            try:
                msgs = await sub.fetch(min(max(remaining, 1), _FETCH_MAX), timeout=min(left, _FETCH_WAIT_S))
            except TimeoutError:  # nothing came: the server says whether anything is still to come
                remaining = int((await js.consumer_info(stream, name)).num_pending or 0)
                continue
            for msg in msgs:
                meta = msg.metadata
                seq = int(meta.sequence.stream)
                seen, top, remaining = seen + 1, max(top, seq), int(meta.num_pending or 0)
                early += seq <= last_seq
                key = msg.subject[len(prefix) :]
                delivered.add(key)
                if missing is not None:
                    missing.discard(key)
                _apply(live, key, msg.headers, msg.data, seq)
    finally:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()
    if missing is not None:  # keys rewritten before their turn: the last few are read directly
        await _read_directly(js, stream, prefix, live, missing, deadline)
    elif top < last_seq and await _exists(js, stream, last_seq):
        raise _Short(f"the answer stopped at sequence {top}, before the stream's last ({last_seq})")
    return sorted(live.values(), key=lambda e: e.key)


def _apply(
    live: dict[str, KVEntry], key: str, headers: Mapping[str, str] | None, data: bytes | None, seq: int
) -> None:
    if is_tombstone(headers):
        live.pop(key, None)
    else:
        live[key] = KVEntry(key, data or b"", seq)


async def _keys_held(js: JetStreamContext, stream: str, prefix: str) -> set[str]:
    """Every key the stream holds a message for now (stream info with a subject filter)."""
    subjects = (await js.stream_info(stream, subjects_filter=f"{prefix}>")).state.subjects or {}
    if len(subjects) >= _MAX_SUBJECTS:
        raise _Short(f"the stream lists {len(subjects)} keys, maybe not all of them")
    return {subject[len(prefix) :] for subject in subjects}


async def _read_directly(
    js: JetStreamContext, stream: str, prefix: str, live: dict[str, KVEntry], keys: set[str], deadline: float
) -> None:
    """The last message of each of `keys`, read one by one."""
    loop = asyncio.get_running_loop()
    for key in sorted(keys):
        if loop.time() > deadline:
            raise _Short(f"out of time reading {len(keys)} keys rewritten during the scan")
        try:
            raw = await js.get_msg(stream, subject=prefix + key)
        except nats.js.errors.NotFoundError:
            continue  # gone since (expired, purged): absent
        _apply(live, key, raw.headers, raw.data, int(raw.seq or 0))


async def _exists(js: JetStreamContext, stream: str, seq: int) -> bool:
    try:
        await js.get_msg(stream, seq=seq)
    except nats.js.errors.NotFoundError:
        return False
    return True
