"""Liveness watch: learn that a master's process died within milliseconds, not at the next poll.

For every owned instance that has replicas (a master or an intermediate master) the watch keeps one
extra connection blocked in `SELECT SLEEP(<sleep_s>)`, re-armed whenever it returns. When the server
process dies the kernel closes that socket and the query fails at once (2013, ~5 ms after a SIGKILL on
this machine); the watch then calls `on_lost(key)`, which probes the instance immediately.

A hung server (SIGSTOP, a partition, a server that cannot even schedule a sleeping thread) keeps the
socket open and silent: the sleep is therefore bounded, and a watch whose `SLEEP(sleep_s)` has not
answered `margin_s` after it should have is a sign too (`hung` counts them): `on_hung(key, reason)`
reports the unanswered statement at once (the prober publishes it as an unreachable snapshot: a hung
master's probe, queued behind one already waiting out its read timeout, would say so up to a timeout
later), then `on_lost(key)` as for a broken one, so the probe (with its own connect/read timeouts) runs
now rather than at its next slot. A late answer costs an extra probe and one unreachable snapshot (which
the analysis weighs like any failed probe: a master whose replicas still hear from it is not dead).

It costs one idle server thread per master and one trivial statement per `sleep_s`. It is robust by
construction: a connect that fails, or a watch that breaks again quickly, backs off exponentially (up to
`max_backoff_s`), so an instance that stays down or hung costs one connection attempt per backoff period
and never a busy loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from libs.aio import cancel_all
from libs.models import InstanceKey, InstanceSnapshot
from libs.mysql import ConnectionPool, Credentials

log = logging.getLogger(__name__)


class LivenessWatch:
    def __init__(
        self,
        credentials: Credentials,
        *,
        on_lost: Callable[[InstanceKey], None],
        on_hung: Callable[[InstanceKey, str], None] | None = None,
        connect_timeout: float = 2.0,
        sleep_s: int = 5,
        margin_s: float = 1.0,
        min_backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
        healthy_after_s: float = 2.0,
    ) -> None:
        self.credentials = credentials
        self.on_lost = on_lost
        self.on_hung = on_hung
        self.sleep_s = int(sleep_s)
        self.margin_s = margin_s
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.healthy_after_s = healthy_after_s
        # Its own pool: a watch holds its connection for `sleep_s`, which must never block a probe. The
        # client read timeout is the watch's bound.
        self.pool = ConnectionPool(connect_timeout=connect_timeout, read_timeout=self.bound_s)
        self.tasks: dict[InstanceKey, asyncio.Task[None]] = {}
        self.armed: set[InstanceKey] = set()  # watches whose SLEEP is running now (tests read it)
        self.fired = 0  # watches that broke or outlived their bound
        self.hung = 0  # ... of which outlived their bound

    @property
    def bound_s(self) -> float:
        """How long a watch statement may take before its silence counts as a sign."""
        return self.sleep_s + self.margin_s

    @property
    def watched(self) -> frozenset[InstanceKey]:
        return frozenset(self.tasks)

    def update(self, snapshot: InstanceSnapshot) -> None:
        """Start a watch on an instance seen with replicas; stop it when it no longer has any."""
        key = snapshot.key
        if not snapshot.reachable:
            return  # says nothing about its role: keep whatever we had
        if snapshot.replicas and key not in self.tasks:
            self.tasks[key] = asyncio.get_running_loop().create_task(self._watch(key), name=f"liveness {key}")
        elif not snapshot.replicas and key in self.tasks:
            self._cancel(key)

    def retain(self, keys: Iterable[InstanceKey]) -> None:
        """Stop the watches of instances no longer owned."""
        keep = set(keys)
        for key in [k for k in self.tasks if k not in keep]:
            self._cancel(key)

    def _cancel(self, key: InstanceKey) -> None:
        task = self.tasks.pop(key, None)
        if task is not None:
            task.cancel()
        self.armed.discard(key)
        self.pool.discard(key)

    async def stop(self) -> None:
        tasks = list(self.tasks.values())
        for key in list(self.tasks):
            self._cancel(key)
        await cancel_all(tasks)
        self.pool.close()

    async def _watch(self, key: InstanceKey) -> None:
        loop = asyncio.get_running_loop()
        backoff = self.min_backoff_s
        while True:
            started = loop.time()
            armed = False
            try:
                async with self.pool.connection(key, self.credentials) as conn:
                    while True:
                        self.armed.add(key)
                        armed = True
                        # The read timeout bounds it; asyncio's too, whatever the driver does.
                        async with asyncio.timeout(self.bound_s + 0.5):
                            await conn.execute(f"SELECT SLEEP({self.sleep_s})")
            except asyncio.CancelledError:
                self.armed.discard(key)
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of the watch means "look now"
                self.armed.discard(key)
                if armed:
                    self.fired += 1
                    if _timed_out(exc):
                        self.hung += 1
                        log.info(
                            "liveness watch on %s: no answer within %.1fs (%s): probing it now",
                            key,
                            self.bound_s,
                            _short(exc),
                        )
                        if self.on_hung is not None:
                            self.on_hung(key, f"no answer within {self.bound_s:g}s (liveness watch)")
                    else:
                        log.info("liveness watch on %s broke (%s): probing it now", key, _short(exc))
                    self.on_lost(key)
            if loop.time() - started >= self.healthy_after_s:
                backoff = self.min_backoff_s
            await asyncio.sleep(backoff)
            backoff = min(self.max_backoff_s, backoff * 2)


def _timed_out(exc: BaseException) -> bool:
    """The watch statement outlived its bound (a silent server), rather than failing."""
    if isinstance(exc, TimeoutError):
        return True
    return "timeout" in str(getattr(exc, "message", "") or exc).lower()


def _short(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"[{code}] {message}" if code is not None else message
