"""One data center's queue of records still to publish: the newest record per cluster, nothing else.

Only the newest record of a cluster matters — publishing an older one first would only flash the old
master in Consul — so the queue holds at most one *waiting* record per cluster (plus the one being
published). "Newest" is decided by the fencing epoch first, then by arrival: a record with a lower
epoch than one already waiting or in flight is refused (`SUPERSEDED`: the caller reports it as stale);
an equal or higher epoch replaces the waiting one.

A failed publish goes back with its own exponential backoff (per cluster, so one bad cluster is
retried slowly while the others flow) unless a newer record arrived meanwhile. Nothing is ever
dropped while it is the newest. Pure: the clock (`now`) and randomness (`rand`) are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from libs.models.events import MasterRecord
from services.kvpublisher.backoff import Backoff


class Offer(StrEnum):
    QUEUED = "queued"  # nothing was waiting for this cluster
    REPLACED = "replaced"  # an older waiting record was replaced (coalesced)
    DUPLICATE = "duplicate"  # a record with the same keys and epoch is already waiting or in flight
    SUPERSEDED = "superseded"  # a record with a higher epoch is waiting or in flight: stale


@dataclass(frozen=True)
class Pending:
    """A record waiting (or being published) for one cluster in one data center."""

    key: str  # the cluster's key in baton_masters
    record: MasterRecord
    since: float  # when it was offered (monotonic seconds): the start of its publish latency
    trigger: str  # "watch" or "reconcile"
    seq: int  # arrival order, for fairness among entries that are ready
    attempts: int = 0  # failed publishes so far
    not_before: float = 0.0  # earliest retry time (monotonic seconds)


_NOT_PUBLISHED: set[str] = {"updated_at", "recovery_uid"}


def same_keys(a: MasterRecord, b: MasterRecord) -> bool:
    """True if both records publish exactly the same keys (the bookkeeping fields may differ)."""
    return a.model_dump(exclude=_NOT_PUBLISHED) == b.model_dump(exclude=_NOT_PUBLISHED)


def _compare(new: MasterRecord, old: MasterRecord) -> Offer:
    if same_keys(new, old):
        return Offer.DUPLICATE
    if new.epoch < old.epoch:
        return Offer.SUPERSEDED
    return Offer.REPLACED


class PendingQueue:
    """The coalescing queue of one data center. Not thread-safe; one event loop owns it."""

    def __init__(self, backoff: Backoff | None = None) -> None:
        self._backoff = backoff or Backoff()
        self._waiting: dict[str, Pending] = {}
        self._in_flight: dict[str, Pending] = {}
        self._seq = 0

    def __len__(self) -> int:
        """Clusters not yet published: waiting or in flight."""
        return len(self._waiting.keys() | self._in_flight.keys())

    def offer(self, key: str, record: MasterRecord, now: float, trigger: str = "watch") -> Offer:
        """Queue `record` unless something newer for its cluster is already waiting or in flight."""
        waiting = self._waiting.get(key)
        flying = self._in_flight.get(key)
        for other in (waiting, flying):
            if other is not None:
                verdict = _compare(record, other.record)
                if verdict in (Offer.DUPLICATE, Offer.SUPERSEDED):
                    return verdict
        self._seq += 1
        self._waiting[key] = Pending(key, record, since=now, trigger=trigger, seq=self._seq)
        return Offer.REPLACED if waiting is not None else Offer.QUEUED

    def forget(self, key: str) -> None:
        """Drop what waits for a cluster (it left baton_masters). An in-flight publish completes."""
        self._waiting.pop(key, None)

    def take(self, now: float) -> Pending | None:
        """The ready entry (its backoff over) that has waited longest, marked in flight; or None.

        A cluster whose previous record is still in flight is not handed out twice.
        """
        ready = [p for k, p in self._waiting.items() if p.not_before <= now and k not in self._in_flight]
        if not ready:
            return None
        first = min(ready, key=lambda p: (p.not_before, p.seq))
        del self._waiting[first.key]
        self._in_flight[first.key] = first
        return first

    def next_due(self, now: float) -> float | None:
        """Seconds until the next waiting entry is ready (0 if one is), None if nothing waits."""
        times = [p.not_before for k, p in self._waiting.items() if k not in self._in_flight]
        if not times:
            return None
        return max(0.0, min(times) - now)

    def done(self, entry: Pending) -> None:
        """The publish of `entry` ended for good (written, unchanged, or refused as stale)."""
        if self._in_flight.get(entry.key) is entry:
            del self._in_flight[entry.key]

    def failed(self, entry: Pending, now: float, rand: float = 0.5) -> float | None:
        """The publish of `entry` failed: retry it after its backoff, unless something newer arrived.

        Returns the delay before the retry, or None if a newer record replaced it (no retry).
        """
        self.done(entry)
        if entry.key in self._waiting:
            return None  # a newer record (or a duplicate offered meanwhile) takes its place
        attempts = entry.attempts + 1
        delay = self._backoff.delay(attempts, rand)
        self._waiting[entry.key] = replace(entry, attempts=attempts, not_before=now + delay)
        return delay

    def waiting(self, key: str) -> Pending | None:
        """What waits for a cluster (not counting an in-flight publish)."""
        return self._waiting.get(key)
