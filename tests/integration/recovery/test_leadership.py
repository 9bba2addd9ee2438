"""Leadership over a real nats-server: one leader at a time, handover on clean stop, and a leader whose
lease is taken stops acting at once."""

from __future__ import annotations

import asyncio
import contextlib
import time

from libs.bus.connection import connect
from libs.bus.provision import LEADER, provision
from libs.bus.server import NatsServer
from libs.errors import LeadershipLost
from libs.recovery.fence import LeaseFence
from libs.recovery.leadership import Leadership


async def wait_until(cond, within: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not cond():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


async def test_one_leader_clean_handover_and_stolen_lease(nats_server: NatsServer) -> None:
    bus = await connect(nats_server.url, "leadership-test")
    await provision(bus.js)
    terms: list[tuple[str, int]] = []
    cancelled: list[str] = []

    def work(leadership: Leadership):  # type: ignore[no-untyped-def]
        async def lead(fence: LeaseFence) -> None:
            terms.append((leadership.holder, fence.epoch))
            try:
                await leadership.stopping.wait()  # a clean stop: finish and return
            except asyncio.CancelledError:
                cancelled.append(leadership.holder)
                raise

        return lead

    a, b = Leadership(bus.js, "a", ttl_s=2), Leadership(bus.js, "b", ttl_s=2)
    ta, tb = asyncio.create_task(a.run(work(a))), asyncio.create_task(b.run(work(b)))
    try:
        await wait_until(lambda: a.is_leader or b.is_leader, 5, "nobody became leader")
        await asyncio.sleep(1.5)  # renewals keep it; the other never gets it
        assert sum([a.is_leader, b.is_leader]) == 1 and len(terms) == 1
        first, other = (a, b) if a.is_leader else (b, a)
        first_epoch = terms[0][1]

        # Clean stop: the lease is released and the other takes over within its poll interval.
        started = time.monotonic()
        first.stop()
        await wait_until(lambda: other.is_leader, 3, "no handover after a clean stop")
        assert time.monotonic() - started < 1.5
        assert terms[-1][0] == other.holder and terms[-1][1] > first_epoch

        # Someone else writes the key: the leader's next renewal is refused; it stops acting.
        fence = other.fence
        assert fence is not None
        await bus.js.publish(f"$KV.{LEADER}.recovery", b'{"holder": "thief", "token": "x", "ttl_s": 2}')
        await wait_until(lambda: not fence.held, 3, "a leader kept acting after its lease was taken")
        try:
            fence.check()
            raise AssertionError("check() passed without the lease")
        except LeadershipLost:
            pass
        await wait_until(lambda: other.holder in cancelled, 2, "the leader's work was not cancelled")
    finally:
        a.stop()
        b.stop()
        for t in (ta, tb):
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(t, 10)
        await bus.close()
