"""Competing for the recovery lease (`baton_leader/recovery`) and leading while it is ours.

Every recovery process runs `Leadership.run(work)`: it tries to take the lease (first writer wins,
per-message TTL), and once it has it, keeps it alive with a `LeaseKeeper` and runs `work(fence)` until
the work returns, the lease is lost, or `stop()` is called. When the lease is lost the work task is
cancelled at once (whatever MySQL statement is in flight may still finish on the server, within its
time limit, below the TTL; nothing after it is sent) and the process goes back to campaigning. `stop()`
lets the work finish its current recoveries (it is cancelled after `grace_s`) and releases the lease so a
standby takes over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from nats.js import JetStreamContext

from libs.bus import lease as leases
from libs.bus.provision import LEADER
from libs.errors import BusError
from libs.recovery.fence import LeaseFence

log = logging.getLogger(__name__)

LEASE_KEY = "recovery"
LEASE_TTL_S = 3  # seconds; every MySQL statement of the leader is limited to less (options.statement_timeout)
Work = Callable[[LeaseFence], Coroutine[Any, Any, None]]


class Leadership:
    def __init__(
        self,
        js: JetStreamContext,
        holder: str,
        *,
        ttl_s: int = LEASE_TTL_S,
        bucket: str = LEADER,
        key: str = LEASE_KEY,
        poll_s: float = 0.25,
        grace_s: float = 30.0,
    ) -> None:
        self.js, self.holder, self.ttl_s = js, holder, ttl_s
        self.bucket, self.key = bucket, key
        self.poll_s, self.grace_s = poll_s, grace_s
        self.fence: LeaseFence | None = None
        self.terms = 0  # how many times this process became leader
        self._stop = asyncio.Event()
        self._stopping_work = asyncio.Event()

    @property
    def is_leader(self) -> bool:
        return self.fence is not None and self.fence.held

    @property
    def epoch(self) -> int | None:
        return self.fence.epoch if self.fence is not None else None

    @property
    def stopping(self) -> asyncio.Event:
        """Set when a clean shutdown asks the work to finish what it is doing and return."""
        return self._stopping_work

    def stop(self) -> None:
        self._stopping_work.set()
        self._stop.set()

    async def run(self, work: Work) -> None:
        """Campaign and lead until `stop()`."""
        while not self._stop.is_set():
            try:
                lease = await leases.acquire(self.js, self.bucket, self.key, self.holder, self.ttl_s)
            except BusError as exc:
                log.info("recovery lease: cannot campaign now: %s", exc)
                lease = None
            if lease is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=self.poll_s)
                continue
            await self._lead(lease, work)

    async def _lead(self, lease: leases.Lease, work: Work) -> None:
        keeper = leases.LeaseKeeper(self.js, lease).start()
        fence = self.fence = LeaseFence(keeper)
        self.terms += 1
        log.info("recovery leader %s: elected with epoch %d", self.holder, lease.epoch)
        task = asyncio.create_task(work(fence), name=f"recovery leader epoch {lease.epoch}")
        lost = asyncio.create_task(keeper.lost.wait())
        stop = asyncio.create_task(self._stop.wait())
        failed = False
        try:
            await asyncio.wait({task, lost, stop}, return_when=asyncio.FIRST_COMPLETED)
            if stop.done() and not task.done():
                # Clean shutdown: the work stops taking new detections and finishes running ones.
                await asyncio.wait({task, lost}, timeout=self.grace_s, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            if task.done() and not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                log.error("recovery leader work failed: %s", exc, exc_info=exc)
                failed = True
        finally:
            for t in (lost, stop):
                t.cancel()
            self.fence = None
            with contextlib.suppress(TimeoutError):  # LeaseKeeper.stop lets a slow release's timeout out
                await keeper.stop(release_lease=True)
            log.info("recovery leader %s: epoch %d ended (%s)", self.holder, lease.epoch, keeper.reason)
        if failed:  # do not spin: let a healthier contender take the lease first
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.ttl_s)
