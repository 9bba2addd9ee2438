"""The keeper's deadline logic, against a JetStream stand-in whose requests hang or are refused."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from nats.js import JetStreamContext

from libs.bus.lease import Lease, LeaseKeeper


class _Ack:
    def __init__(self, seq: int) -> None:
        self.seq = seq


class _Broker:
    """Answers renewals at once until `hang` is set; then never answers."""

    def __init__(self) -> None:
        self.hang = False
        self.seq = 10
        self.renewals = 0

    async def publish(self, subject: str, payload: bytes = b"", **kw: Any) -> _Ack:
        if self.hang:
            await asyncio.sleep(3600)
        self.seq += 1
        self.renewals += 1
        return _Ack(self.seq)


def _lease(ttl_s: int) -> Lease:
    return Lease("baton_leader", "recovery", "me", ttl_s, 10, 10, "t", sent_at=time.monotonic())


async def test_renews_every_third_of_the_ttl() -> None:
    broker = _Broker()
    keeper = LeaseKeeper(cast(JetStreamContext, broker), _lease(1)).start()
    await asyncio.sleep(1.1)
    assert keeper.held and broker.renewals >= 3
    assert keeper.lease.revision == broker.seq and keeper.epoch == 10
    await keeper.stop(release_lease=False)


async def test_hanging_renewal_loses_the_lease_at_the_deadline() -> None:
    broker = _Broker()
    lost: list[str] = []
    keeper = LeaseKeeper(cast(JetStreamContext, broker), _lease(1), margin_s=0.2, on_lost=lost.append)
    keeper.start()
    await asyncio.sleep(0.5)
    broker.hang = True
    deadline = keeper.deadline
    await asyncio.wait_for(keeper.lost.wait(), timeout=2)
    late = time.monotonic() - deadline
    assert -0.01 <= late < 0.1
    assert not keeper.held and len(lost) == 1
    await keeper.stop(release_lease=False)
    assert len(lost) == 1  # stopping afterwards does not report again


async def test_held_turns_false_at_the_deadline_even_before_the_task_runs() -> None:
    keeper = LeaseKeeper(cast(JetStreamContext, _Broker()), _lease(1), margin_s=0.5)  # never started
    assert keeper.held
    await asyncio.sleep(0.55)
    assert not keeper.held
