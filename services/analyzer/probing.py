"""Probe-now for suspects: ask the probers for fresh snapshots of a failing master and its replicas.

Per suspect and failure streak: a first request at once, a confirmation `confirm_s` later, then at
most one every `throttle_s` while the suspect is still held or still looks merely unreachable (a hung
master: its replicas' verdict arrives when their `slave_net_timeout` expires, and we want it then, not
at their next poll). Apart from that schedule, `request_silence_check` probes a suspect's replicas
once at the moment their heartbeat silence crosses the threshold (`libs/topology/silence.py`). Requests
run in the background; their snapshots go to `on_snapshots`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from libs.models import InstanceKey, InstanceSnapshot

log = logging.getLogger(__name__)


class ProbeNowFn(Protocol):
    def __call__(
        self, nc: Any, instances: Sequence[InstanceKey], /, *, timeout: float
    ) -> Awaitable[dict[InstanceKey, InstanceSnapshot]]: ...


def default_probe_now() -> ProbeNowFn | None:
    """`libs.bus.probe_now.probe_now` (the prober's scatter/gather client), if installed."""
    try:
        module = importlib.import_module("libs.bus.probe_now")
    except ImportError:
        return None
    fn: ProbeNowFn | None = getattr(module, "probe_now", None)
    return fn


@dataclass
class _Streak:
    since: datetime
    rounds: int = 0
    next_at: float = 0.0


class ProbeNowScheduler:
    def __init__(
        self,
        nc: Any,
        probe_now: ProbeNowFn | None,
        on_snapshots: Callable[[dict[InstanceKey, InstanceSnapshot]], None],
        *,
        throttle_s: float = 0.5,
        confirm_s: float = 0.1,
        timeout_s: float = 0.5,
    ) -> None:
        self.nc = nc
        self.probe_now = probe_now
        self.on_snapshots = on_snapshots
        self.throttle_s = throttle_s
        self.confirm_s = confirm_s
        self.timeout_s = timeout_s
        self.requests = 0
        self._streaks: dict[InstanceKey, _Streak] = {}
        self._inflight: dict[InstanceKey, asyncio.Task[None]] = {}
        # The silence lane: one probe of a suspect's replicas at the moment their silence crosses
        # (`libs/topology/silence.py`), apart from the streak (whose round may be waiting on the hung
        # suspect's own probe). Per suspect: the check time last served.
        self._silence_served: dict[InstanceKey, datetime] = {}
        self._silence_inflight: dict[InstanceKey, asyncio.Task[None]] = {}
        self.silence_requests = 0

    @property
    def enabled(self) -> bool:
        return self.probe_now is not None

    def forget_others(self, live: set[InstanceKey]) -> None:
        """Drop the streaks of instances that are no longer suspects."""
        for key in [k for k in self._streaks if k not in live]:
            del self._streaks[key]
        for key in [k for k in self._silence_served if k not in live]:
            del self._silence_served[key]

    def due_in(self, suspect: InstanceKey) -> float | None:
        """Seconds until this suspect's next request may go (None if none is planned)."""
        streak = self._streaks.get(suspect)
        if streak is None or suspect in self._inflight:
            return None
        return max(0.0, streak.next_at - time.monotonic())

    def request(self, suspect: InstanceKey, since: datetime, targets: Sequence[InstanceKey]) -> bool:
        """Start a probe-now for `targets` on behalf of `suspect` if its schedule allows. True if sent."""
        if self.probe_now is None:
            return False
        now = time.monotonic()
        streak = self._streaks.get(suspect)
        if streak is None or streak.since != since:
            streak = self._streaks[suspect] = _Streak(since=since, next_at=now)
        if suspect in self._inflight or now < streak.next_at:
            return False
        streak.rounds += 1
        streak.next_at = now + (self.confirm_s if streak.rounds == 1 else self.throttle_s)
        self.requests += 1
        task = asyncio.create_task(self._run(tuple(targets)), name=f"probe-now {suspect}")
        self._inflight[suspect] = task
        task.add_done_callback(lambda _t: self._inflight.pop(suspect, None))
        return True

    def request_silence_check(
        self, suspect: InstanceKey, at: datetime, replicas: Sequence[InstanceKey]
    ) -> bool:
        """Probe `replicas` now for the silence check due at `at` (the caller calls once `at` has come),
        at most once per check time and one at a time per suspect. True if sent."""
        if self.probe_now is None or not replicas:
            return False
        if suspect in self._silence_inflight or self._silence_served.get(suspect) == at:
            return False
        self._silence_served[suspect] = at
        self.silence_requests += 1
        task = asyncio.create_task(self._run(tuple(replicas)), name=f"silence check {suspect}")
        self._silence_inflight[suspect] = task
        task.add_done_callback(lambda _t: self._silence_inflight.pop(suspect, None))
        return True

    async def _run(self, targets: tuple[InstanceKey, ...]) -> None:
        assert self.probe_now is not None
        try:
            snapshots = await self.probe_now(self.nc, targets, timeout=self.timeout_s)
        except Exception as exc:  # noqa: BLE001 - a failed probe-now only means "decide on the polls"
            log.warning("probe-now of %s failed: %s", ", ".join(map(str, targets)), exc)
            return
        if snapshots:
            self.on_snapshots(snapshots)

    async def close(self) -> None:
        tasks = [*self._inflight.values(), *self._silence_inflight.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
