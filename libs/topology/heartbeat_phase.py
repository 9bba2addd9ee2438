"""Poll a replica just after its master's heartbeats arrive, so its silence is measured tightly.

The heartbeat rule (`context.py`) measures a replica's silence from the first probe that saw its latest
received mark: the later bound, so a silence is never overstated. With polls at arbitrary moments that
bound lags the real arrival by anything up to one poll interval (0.47 s on average at a 1 s poll against
1 s heartbeats), and a hung master's DeadMaster waited for it. When the master is idle its heartbeats
are periodic (the dump thread sends one each `heartbeat_period` without an event), so the prober can
move each replica's poll to land just after the arrival: the measurement stays the same observation
(the first probe that saw the mark), only the probe is better placed.

`HeartbeatPhase` is a small controller per replica, fed the replica's heartbeat count after each regular
poll; it returns how far to move the next poll (seconds; negative = earlier):
- a poll that saw this period's heartbeat came *after* it: move earlier — while converging by a step
  that doubles (up to a tenth of a period), once locked by a hair (`CREEP`; the master's period is a
  little longer than nominal, which by itself drifts the arrival later);
- a poll that did not see it came *before* it: after a converging step, go back half of that step
  (bisection); once locked, go later by `CATCH_UP`;
- anything else received (an event: it resets the master's heartbeat timer, so the phase is new), the
  heartbeats off, or a count that went back (restart, CHANGE MASTER): start converging again.
It only applies when the poll and the heartbeat period are the same (poll 1 s with 1 s heartbeats): with
several heartbeats per poll the last one before a hang is any of them, whatever the phase, and with
fewer (MySQL's and orchestrator's usual period is half `slave_net_timeout`, 30 s) a poll seldom brackets
one; then nothing is moved. The average poll rate is unchanged. Simulated
(tests/unit/topology/test_heartbeat_phase.py): the lag from an arrival to the poll that sees it falls
from 0.47 s on average to under 0.1 s (median ~0.02 s).

Pure: the caller passes its own monotonic clock readings.
"""

from __future__ import annotations

from dataclasses import dataclass

from libs.models import InstanceSnapshot

FIRST_STEP = 0.05  # of a period: the first converging move
MAX_STEP = 0.1  # of a period: the largest converging move (a poll stays within 10 % of its cadence)
CREEP = 0.001  # of a period: the locked move earlier after a poll that came after the arrival
CATCH_UP = 0.04  # of a period: the locked move later after a poll that came before it
SAME = 0.02  # poll / period must be within this of 1


@dataclass(slots=True)
class _Seen:
    count: int
    rest: tuple[object, ...]  # the received mark without the heartbeat count
    at: float  # the poll's start (caller's monotonic clock)
    period: float


def locks(poll_s: float, period_s: float) -> bool:
    """Whether a poll of `poll_s` is worth keeping just after heartbeats every `period_s`."""
    return period_s > 0 and abs(poll_s / period_s - 1) <= SAME


class HeartbeatPhase:
    """One replica's poll-phase controller (see the module docstring)."""

    __slots__ = ("_last_shift", "_locked", "_seen", "_step", "poll_s")

    def __init__(self, poll_s: float) -> None:
        self.poll_s = poll_s
        self._seen: _Seen | None = None
        self._step = 0.0
        self._locked = False
        self._last_shift = 0.0

    @property
    def locked(self) -> bool:
        return self._locked

    def _reset(self, seen: _Seen | None) -> float:
        self._seen = seen
        self._step = FIRST_STEP * seen.period if seen is not None else 0.0
        self._locked = False
        self._last_shift = 0.0
        return 0.0

    def after_poll(self, snapshot: InstanceSnapshot, started_at: float) -> float:
        """Feed a regular poll's snapshot (`started_at`: when the poll began, caller's clock); return the
        move of the next poll in seconds (negative: earlier)."""
        replication = snapshot.replication if snapshot.reachable else None
        if replication is None or replication.received_heartbeats is None:
            return self._reset(None)
        period = replication.heartbeat_period
        if not locks(self.poll_s, period):  # also: heartbeats off
            return self._reset(None)
        seen = _Seen(replication.received_heartbeats, replication.received_events, started_at, period)
        last = self._seen
        if last is None or last.rest != seen.rest or last.period != period or seen.count < last.count:
            return self._reset(seen)  # first look, an event (a new phase), a new period, or a restart
        self._seen = seen
        beats = seen.count - last.count
        expected = max(1, round((seen.at - last.at) / period))
        if beats >= expected:  # this period's heartbeat had arrived: the poll came after it
            if self._locked:
                shift = -CREEP * period
            else:
                shift = -self._step
                self._step = min(2 * self._step, MAX_STEP * period)
        else:  # it had not: the poll came before it
            overshot = not self._locked and self._last_shift < 0
            shift = -self._last_shift / 2 if overshot else CATCH_UP * period  # back half the overshoot
            self._locked = True
        self._last_shift = shift
        return shift
