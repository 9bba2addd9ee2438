"""`ProbeNowScheduler.request_silence_check`: one probe of a suspect's replicas per crossing, one at a
time, apart from the suspect's own probe-now rounds (which may be stuck on the hung suspect)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from libs.models import InstanceKey, InstanceSnapshot
from services.analyzer.probing import ProbeNowScheduler

M, R1, R2 = (InstanceKey.parse(n) for n in ("m", "r1", "r2"))
AT = datetime(2025, 1, 1, 12, 0, 2, tzinfo=UTC)


class Prober:
    """Records each probe-now request; a request returns when `release` is set (if `hold`)."""

    def __init__(self, hold: bool = False) -> None:
        self.calls: list[tuple[InstanceKey, ...]] = []
        self.hold = hold
        self.release = asyncio.Event()

    async def __call__(
        self, nc: Any, instances: Sequence[InstanceKey], /, *, timeout: float
    ) -> dict[InstanceKey, InstanceSnapshot]:
        self.calls.append(tuple(instances))
        if self.hold:
            await self.release.wait()
        return {}


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_once_per_crossing_and_only_the_replicas() -> None:
    prober = Prober()
    scheduler = ProbeNowScheduler(None, prober, lambda _s: None)
    assert scheduler.request_silence_check(M, AT, [R1, R2])
    await _settle()
    assert not scheduler.request_silence_check(M, AT, [R1, R2]), "the same crossing is served once"
    later = AT + timedelta(seconds=1)  # a replica heard something: a new crossing
    assert scheduler.request_silence_check(M, later, [R1, R2])
    await _settle()
    assert prober.calls == [(R1, R2), (R1, R2)]
    assert scheduler.silence_requests == 2
    await scheduler.close()


async def test_one_at_a_time_and_apart_from_the_suspects_own_rounds() -> None:
    prober = Prober(hold=True)
    scheduler = ProbeNowScheduler(None, prober, lambda _s: None)
    assert scheduler.request(M, AT, [M, R1, R2])  # the suspect's round, stuck on its hung probe
    assert scheduler.request_silence_check(M, AT, [R1, R2]), "not blocked by the suspect's round"
    assert not scheduler.request_silence_check(M, AT + timedelta(seconds=1), [R1, R2]), "one in flight"
    prober.release.set()
    await _settle()
    assert scheduler.request_silence_check(M, AT + timedelta(seconds=1), [R1, R2])
    await _settle()
    assert prober.calls == [(M, R1, R2), (R1, R2), (R1, R2)]
    await scheduler.close()


async def test_nothing_without_probe_now_or_replicas_and_forgotten_with_the_suspect() -> None:
    assert not ProbeNowScheduler(None, None, lambda _s: None).request_silence_check(M, AT, [R1])
    prober = Prober()
    scheduler = ProbeNowScheduler(None, prober, lambda _s: None)
    assert not scheduler.request_silence_check(M, AT, [])
    assert scheduler.request_silence_check(M, AT, [R1])
    await _settle()
    scheduler.forget_others(set())  # no longer a suspect: a later streak starts afresh
    assert scheduler.request_silence_check(M, AT, [R1])
    await _settle()
    assert len(prober.calls) == 2
    await scheduler.close()
