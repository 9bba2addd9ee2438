"""`HeartbeatPhase`: the poll of a replica moves to land just after its master's heartbeats.

A simulated master sends heartbeats every `period + drift` seconds from a random phase; a replica's
count is the number that arrived by the moment the server reads it (the poll's start plus a random
execution delay). The controller moves each next poll; what is measured is the *lag*: for every
heartbeat, the start of the first poll that saw it minus its arrival — what the heartbeat rule's
"since" overstates the arrival by. Without the controller it averages half a poll."""

from __future__ import annotations

import bisect
import random
import statistics

import pytest

from libs.models import InstanceKey, InstanceSnapshot, IOThreadState, ReplicationStatus, utcnow
from libs.topology.heartbeat_phase import HeartbeatPhase, locks

KEY = InstanceKey.parse("r1:3306")
M = InstanceKey.parse("m:3306")


def snap(
    count: int | None, *, period: float = 1.0, pos: int = 100, reachable: bool = True
) -> InstanceSnapshot:
    if not reachable:
        return InstanceSnapshot.unreachable(KEY, utcnow(), "gone", code=2003)
    replication = ReplicationStatus(
        master=M, io_state=IOThreadState.YES, sql_running=True, read_master_log_file="b.000001",
        read_master_log_pos=pos, heartbeat_period=period, received_heartbeats=count,
    )  # fmt: skip
    return InstanceSnapshot(key=KEY, probed_at=utcnow(), reachable=True, replication=replication)


def lags(
    *, controlled: bool, seed: int, poll: float = 1.0, period: float = 1.0, drift: float = 0.0007,
    jitter: float = 0.005, polls: int = 2000, events_every: int = 0,
) -> list[float]:  # fmt: skip
    """Lags (seconds) over the last four fifths of a simulated run."""
    rnd = random.Random(seed)
    beats: list[float] = []
    jumps: list[float] = []  # events: each restarts the master's heartbeat timer at a new phase
    t, k = rnd.random() * period, 0
    horizon = polls * poll * 1.2 + 10
    while t < horizon:
        beats.append(t)
        k += 1
        t += period + drift
        if events_every and k % events_every == 0:
            jumps.append(t)
            t += rnd.random() * period
    phase = HeartbeatPhase(poll)
    at = rnd.random() * poll
    seen: list[float] = []
    for _ in range(polls):
        read = at + rnd.random() * jitter
        count, events = bisect.bisect_right(beats, read), bisect.bisect_right(jumps, read)
        seen.append(at)
        shift = phase.after_poll(snap(count, period=period, pos=100 + events), at) if controlled else 0.0
        at += poll + shift
    out = []
    j = 0
    warm = seen[len(seen) // 5]
    for b in beats:
        while j < len(seen) and seen[j] + jitter < b:
            j += 1
        if j >= len(seen):
            break
        if b > warm and seen[j] >= b:
            out.append(seen[j] - b)
    return out


def test_without_it_the_lag_is_half_a_poll_on_average() -> None:
    """A poll as long as the period keeps whatever offset its start gave it (drifting slowly)."""
    means = [statistics.mean(lags(controlled=False, seed=seed)) for seed in range(12)]
    assert 0.3 < statistics.mean(means) < 0.7, means


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    "poll, drift, jitter",
    [(1.0, 0.0007, 0.005), (1.0, 0.0001, 0.02), (1.0, 0.002, 0.002), (2.0, 0.0007, 0.005)],
)
def test_with_it_the_lag_is_a_few_hundredths(seed: int, poll: float, drift: float, jitter: float) -> None:
    held = lags(controlled=True, seed=seed, poll=poll, period=poll, drift=drift, jitter=jitter)
    assert statistics.mean(held) < 0.15, statistics.mean(held)
    assert statistics.median(held) < 0.05, statistics.median(held)


def test_the_average_poll_rate_is_unchanged() -> None:
    phase = HeartbeatPhase(1.0)
    rnd = random.Random(7)
    beats = [0.37 + k * 1.0007 for k in range(3000)]
    at, starts = 0.0, []
    for _ in range(2000):
        starts.append(at)
        at += 1.0 + phase.after_poll(snap(bisect.bisect_right(beats, at + rnd.random() * 0.005)), at)
    rate = (len(starts) - 1) / (starts[-1] - starts[0])
    assert rate == pytest.approx(1 / 1.0007, rel=0.01)
    assert phase.locked


@pytest.mark.parametrize(
    "poll, period, expected",
    [
        (1.0, 1.0, True),
        (2.0, 2.0, True),
        (5.0, 1.0, False),  # five heartbeats per poll: the last before a hang is any of them
        (1.0, 0.5, False),
        (5.0, 30.0, False),  # heartbeats rarer than polls (MySQL's default period: slave_net_timeout / 2)
        (5.0, 2.0, False),  # 2.5 periods per poll: the phase moves every poll
        (1.0, 0.0, False),  # heartbeats off
        (1.01, 1.0, True),
        (1.05, 1.0, False),
    ],
)
def test_only_a_poll_as_long_as_the_period_locks(poll: float, period: float, expected: bool) -> None:
    assert locks(poll, period) is expected


def test_moves() -> None:
    """Step by step: converging moves double while the poll comes after the beat, the overshoot is
    halved back, then locked moves are small; an event starts over."""
    p = HeartbeatPhase(1.0)
    assert p.after_poll(snap(10), 0.0) == 0.0  # first look
    assert p.after_poll(snap(11), 1.0) == pytest.approx(-0.05)  # after the beat: earlier
    assert p.after_poll(snap(12), 1.95) == pytest.approx(-0.10)  # still after: twice the step
    assert p.after_poll(snap(12), 2.85) == pytest.approx(0.05)  # before the beat: back half the step
    assert p.locked
    assert p.after_poll(snap(14), 3.90) == pytest.approx(-0.001)  # two beats since (the missed one): after
    assert p.after_poll(snap(14), 4.899) == pytest.approx(0.04)  # before again: catch up
    assert p.after_poll(snap(16, pos=200), 5.94) == 0.0  # an event: a new phase, start over
    assert not p.locked
    assert p.after_poll(snap(17, pos=200), 6.94) == pytest.approx(-0.05)


@pytest.mark.parametrize(
    "second",
    [
        pytest.param(snap(None), id="heartbeats not counted"),
        pytest.param(snap(11, period=0.0), id="heartbeats off"),
        pytest.param(snap(11, period=30.0), id="heartbeats rarer than polls"),
        pytest.param(snap(0, reachable=False), id="unreachable"),
        pytest.param(snap(3), id="count went back (restart)"),
        pytest.param(snap(11, period=0.5), id="a new period"),
    ],
)
def test_nothing_to_lock_on_moves_nothing_and_starts_over(second: InstanceSnapshot) -> None:
    p = HeartbeatPhase(1.0)
    p.after_poll(snap(10), 0.0)
    assert p.after_poll(second, 1.0) == 0.0
    assert not p.locked


def test_the_lag_with_events_is_no_worse() -> None:
    """Events (each restarts the master's heartbeat timer at a new phase) every five beats keep resetting
    it: no worse than not moving at all."""
    free = lags(controlled=False, seed=3, events_every=5)
    held = lags(controlled=True, seed=3, events_every=5)
    assert statistics.mean(held) <= statistics.mean(free) + 0.05
