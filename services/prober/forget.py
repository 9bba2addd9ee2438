"""UnseenInstanceForgetHours: an instance no probe has reached for that long is forgotten (removed from
`baton_instances`), as orchestrator forgets long-unseen instances.

The worker that owns an instance (its shard) keeps the time of its last reachable probe. An instance it
has never reached counts as unseen from the moment the worker took it over, so a worker restart or a
shard moving to another worker restarts the count: forgetting can come late, never early. 0 turns the
forgetting off (orchestrator would forget every instance not seen right now, a failed master included).
Forgetting is logged at WARNING with the instance and how long it went unseen; discovery re-registers
an instance that a live server still reports as its replica.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from libs.models import InstanceKey, InstanceSnapshot


def forget_after(hours: int) -> timedelta | None:
    """UnseenInstanceForgetHours as a duration; None (never) for 0."""
    return timedelta(hours=hours) if hours > 0 else None


class UnseenTracker:
    """When each owned instance was last seen (reachable), and which have been unseen too long."""

    def __init__(self, after: timedelta | None) -> None:
        self.after = after
        self.seen: dict[InstanceKey, datetime] = {}
        # nothing can be due before this: `due` (called after every probe) skips its scan until then, so
        # a worker of thousands of instances does not walk them all on each of its thousands of probes
        self._next_scan = datetime.min.replace(tzinfo=UTC)

    def observe(self, snap: InstanceSnapshot, now: datetime) -> None:
        if snap.reachable or snap.key not in self.seen:
            self.seen[snap.key] = now

    def retain(self, keys: Iterable[InstanceKey]) -> None:
        """Keep only `keys` (the owned instances); one handed back and taken again starts afresh."""
        kept = set(keys)
        for key in [k for k in self.seen if k not in kept]:
            del self.seen[key]

    def due(self, now: datetime) -> dict[InstanceKey, timedelta]:
        """Instances unseen for longer than `after`, with how long."""
        if self.after is None or now <= self._next_scan:
            return {}
        # sightings only move forward (a new one is `now`), so the oldest one now is the next to come due
        self._next_scan = min(self.seen.values(), default=now) + self.after
        return {k: now - at for k, at in self.seen.items() if now - at > self.after}

    def forgotten(self, key: InstanceKey) -> None:
        self.seen.pop(key, None)

    def restore(self, key: InstanceKey, since: datetime) -> None:
        """Put back `key` (unseen since `since`) when forgetting it failed: it is due again at once."""
        self.seen.setdefault(key, since)
        self._next_scan = datetime.min.replace(tzinfo=UTC)
