"""A lease in a JetStream KV bucket: first writer wins, kept alive by compare-and-set, gone by TTL.

Used for the recovery leader (`baton_leader/recovery`) and the prober shard leases (`baton_shards`).

- `acquire` creates the key with a per-message TTL; only one contender can create it.
- `renew` republishes the value with `Nats-Expected-Last-Subject-Sequence: <our revision>` and a fresh
  TTL; if anyone else wrote the key, or it expired, the server refuses and we raise LeadershipLost.
- `release` deletes the key, again only if our revision is still the last one.

`Lease.epoch` (the stream sequence of the acquiring write) is the fencing epoch: stream sequences only
grow, so every new term has a higher epoch than any write of an earlier term.

`LeaseKeeper` renews every ttl/3 and declares the lease lost the moment a renewal is refused *or* the
deadline `last successful renewal sent + ttl - margin` passes (monotonic clock), even while a request
hangs on an unreachable broker: the server may have expired our key by then, so we must stop acting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

import nats.js.errors
from nats.js import JetStreamContext, api
from nats.js.api import RawStreamMsg
from nats.js.kv import KV_DEL, KV_OP

from libs.aio import cancel_and_wait, checkpoint
from libs.bus.connection import bus_errors
from libs.bus.kvread import is_tombstone
from libs.errors import BusError, LeadershipLost

log = logging.getLogger(__name__)
_WRONG_LAST = (10071, 10164)  # JSStreamWrongLastSequence(Constant)Err


@dataclass(frozen=True)
class Lease:
    bucket: str
    key: str
    holder: str
    ttl_s: int
    epoch: int  # revision of the acquiring write: the fencing epoch of this term
    revision: int  # revision of our latest write: what the next compare-and-set expects
    token: str  # unique per term, so we can recognise our own write after a lost reply
    sent_at: float = 0.0  # monotonic time our latest write was sent: the server's TTL ran from later


@dataclass(frozen=True)
class LeaseInfo:
    holder: str
    revision: int
    token: str


def _subject(bucket: str, key: str) -> str:
    return f"$KV.{bucket}.{key}"


def _value(holder: str, token: str, ttl_s: int) -> bytes:
    return json.dumps({"holder": holder, "token": token, "ttl_s": ttl_s}).encode()


def _check_ttl(ttl_s: int) -> None:
    if ttl_s < 1 or int(ttl_s) != ttl_s:
        raise ValueError(f"lease TTL must be a whole number of seconds >= 1, not {ttl_s}")


def _is_tombstone(msg: RawStreamMsg) -> bool:
    """nats-py 2.16's `kv.get`/`kv.create` only know the `KV-Operation` header and mistake an expiry
    marker (`Nats-Marker-Reason`) for a live value, so leases read the raw message themselves."""
    return is_tombstone(msg.headers)


async def _last(js: JetStreamContext, bucket: str, key: str) -> RawStreamMsg | None:
    """The key's latest message; None if there is none or it is a tombstone."""
    msg = await _last_raw(js, bucket, key)
    return None if msg is None or _is_tombstone(msg) else msg


async def _last_raw(js: JetStreamContext, bucket: str, key: str) -> RawStreamMsg | None:
    try:
        return await js.get_msg(f"KV_{bucket}", subject=_subject(bucket, key), direct=False)
    except nats.js.errors.NotFoundError:
        return None


async def read(js: JetStreamContext, bucket: str, key: str) -> LeaseInfo | None:
    """Who holds the lease now (None when free)."""
    with bus_errors(f"reading lease {bucket}/{key}"):
        msg = await _last(js, bucket, key)
    if msg is None:
        return None
    try:
        data = json.loads(msg.data or b"{}")
        return LeaseInfo(str(data["holder"]), int(msg.seq or 0), str(data.get("token", "")))
    except (ValueError, KeyError, TypeError):
        return LeaseInfo("?", int(msg.seq or 0), "")


async def acquire(js: JetStreamContext, bucket: str, key: str, holder: str, ttl_s: int) -> Lease | None:
    """Take the lease if nobody holds it. Returns the Lease, or None when someone else holds it."""
    _check_ttl(ttl_s)
    token = uuid.uuid4().hex
    lease = Lease(bucket, key, holder, ttl_s, epoch=0, revision=0, token=token)
    expected = 0
    with bus_errors(f"acquiring lease {bucket}/{key}"):
        for _ in range(3):
            sent = time.monotonic()
            try:
                rev = await _cas(js, lease, expected, None)
            except nats.js.errors.APIError as exc:
                if exc.err_code not in _WRONG_LAST:
                    raise
            else:
                return replace(lease, epoch=rev, revision=rev, sent_at=sent)
            # Taken, or only a tombstone (released / expired) sits on the key: then create over it.
            raw = await _last_raw(js, bucket, key)
            if raw is not None and not _is_tombstone(raw):
                return None
            expected = int(raw.seq or 0) if raw is not None else 0
    return None


async def _cas(js: JetStreamContext, lease: Lease, expected: int, request_timeout_s: float | None) -> int:
    ack = await js.publish(
        _subject(lease.bucket, lease.key),
        _value(lease.holder, lease.token, lease.ttl_s),
        headers={api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE: str(expected)},
        msg_ttl=lease.ttl_s,
        timeout=request_timeout_s,
    )
    return int(ack.seq)


async def renew(js: JetStreamContext, lease: Lease, *, request_timeout_s: float | None = None) -> Lease:
    """Extend the lease by its TTL. Raises LeadershipLost if it is no longer ours, BusError if unsure."""
    sent = time.monotonic()
    with bus_errors(f"renewing lease {lease.bucket}/{lease.key}"):
        try:
            rev = await _cas(js, lease, lease.revision, request_timeout_s)
            return replace(lease, revision=rev, sent_at=sent)
        except nats.js.errors.APIError as exc:
            if exc.err_code not in _WRONG_LAST:
                raise
        # A renewal whose reply we lost may have landed: if the key still carries our token, adopt it.
        current = await read(js, lease.bucket, lease.key)
        if current is None or current.token != lease.token:
            who = current.holder if current else "nobody"
            raise LeadershipLost(f"lease {lease.bucket}/{lease.key} is no longer ours (now held by {who})")
        try:
            # This write leaves after `sent`, so `sent` is a safe (early) start for its TTL.
            rev = await _cas(js, lease, current.revision, request_timeout_s)
            return replace(lease, revision=rev, sent_at=sent)
        except nats.js.errors.APIError as exc:
            if exc.err_code in _WRONG_LAST:
                raise LeadershipLost(f"lease {lease.bucket}/{lease.key} was taken during renewal") from exc
            raise


async def release(js: JetStreamContext, lease: Lease) -> bool:
    """Delete the lease if it is still ours, so another contender can take it at once. True if deleted."""
    with bus_errors(f"releasing lease {lease.bucket}/{lease.key}"):
        try:
            await js.publish(
                _subject(lease.bucket, lease.key),
                headers={KV_OP: KV_DEL, api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE: str(lease.revision)},
            )
        except nats.js.errors.APIError as exc:
            if exc.err_code in _WRONG_LAST:
                return False
            raise
    return True


class LeaseKeeper:
    """Keeps a held lease alive in the background and says, promptly, when it is gone.

    `held` is true only while the lease is certainly ours: a refused renewal, or the deadline
    (`last good renewal sent + ttl - margin`) passing without one, sets `lost` and calls `on_lost`
    once with the reason (`stop()` sets `lost` too, without the callback). Renewal failures short of
    that are retried every `retry_s`. The deadline counts from when the acquiring/renewing write was
    *sent*, since the server's TTL started no earlier than that.
    """

    def __init__(
        self,
        js: JetStreamContext,
        lease: Lease,
        *,
        margin_s: float | None = None,
        retry_s: float = 0.25,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        self.js = js
        self.lease = lease
        self.margin_s = min(1.0, lease.ttl_s / 4) if margin_s is None else margin_s
        self.interval_s = lease.ttl_s / 3
        self.retry_s = retry_s
        self.on_lost = on_lost
        self.lost = asyncio.Event()
        self.reason: str | None = None
        self.deadline = lease.sent_at + lease.ttl_s - self.margin_s
        self._task: asyncio.Task[None] | None = None

    @property
    def held(self) -> bool:
        return not self.lost.is_set() and time.monotonic() < self.deadline

    @property
    def epoch(self) -> int:
        return self.lease.epoch

    def start(self) -> LeaseKeeper:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"lease {self.lease.bucket}/{self.lease.key}")
        return self

    async def stop(self, *, release_lease: bool = True) -> None:
        """Stop renewing; by default also release the lease if it is still ours."""
        task, self._task = self._task, None
        # Re-cancels until the renewal loop has really ended: nats-py's request can swallow one
        # cancellation (Python 3.11 wait_for, see libs/aio.py), and a plain `await task` would then wait
        # for a loop that keeps renewing forever.
        await cancel_and_wait(task)
        if release_lease and self.held:
            with contextlib.suppress(BusError, TimeoutError):
                await asyncio.wait_for(release(self.js, self.lease), timeout=max(0.1, self._remaining()))
        self._declare_lost("stopped")

    def _remaining(self) -> float:
        return self.deadline - time.monotonic()

    def _declare_lost(self, reason: str) -> None:
        if self.lost.is_set():
            return
        self.reason = reason
        self.lost.set()
        if reason == "stopped":
            return  # a deliberate stop: the caller knows, so no warning and no callback
        log.warning("lease %s/%s lost: %s", self.lease.bucket, self.lease.key, reason)
        if self.on_lost is not None:
            self.on_lost(reason)

    async def _run(self) -> None:
        next_at = self.lease.sent_at + self.interval_s
        while True:
            await asyncio.sleep(max(0.0, min(next_at, self.deadline) - time.monotonic()))
            remaining = self._remaining()
            if remaining <= 0:
                self._declare_lost("not renewed before its deadline")
                return
            try:
                async with asyncio.timeout(remaining):  # not wait_for: on 3.11 it can swallow a cancel
                    self.lease = await renew(self.js, self.lease, request_timeout_s=remaining)
                checkpoint()  # a cancel that nats-py's own wait_for swallowed is honoured here
            except LeadershipLost as exc:
                self._declare_lost(str(exc))
                return
            except (BusError, TimeoutError) as exc:
                log.info("lease %s/%s renewal failed, retrying: %s", self.lease.bucket, self.lease.key, exc)
                next_at = time.monotonic() + self.retry_s
                continue
            self.deadline = self.lease.sent_at + self.lease.ttl_s - self.margin_s
            next_at = self.lease.sent_at + self.interval_s
