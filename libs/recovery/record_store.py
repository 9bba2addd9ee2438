"""Open and recent recovery records in the KV bucket `baton_recoveries`, one key per cluster.

The key (the cluster alias, KV-encoded) holds the cluster's latest recovery record. The write rules are
what keep "at most one recovery per cluster at a time" true across processes and leaders, and what
keep two leaders apart; both implementations (`KVRecordStore`, `MemoryRecordStore`) follow them and pass
one contract suite (tests/integration/recovery/test_store_contract.py):
- `register(r)`: the key is empty → created; its record is closed → replaced (and returned: the record
  `r` displaced, read at the revision the write replaced); its record is open → ClusterBusy, whoever
  wrote it — unless it is `r` itself under the same epoch (a registration whose reply was lost, tried
  again): then there is nothing to do;
- `adopt(r)` (a new leader takes an open record over; the caller bumped `r.epoch`): written only over
  the same recovery, still open, held by an epoch not above `r.epoch`; otherwise LeadershipLost;
- `save(r)`: written only over the same recovery held by the same epoch: a record adopted by a newer
  leader, replaced by another recovery, or closed already refuses (LeadershipLost), so a deposed
  leader learns at its next write that it must stop. Saving a closed record over the same closed
  record (a final write whose reply was lost, tried again) writes nothing;
- `release(r, previous)` (a refactoring's lock, libs/recovery/refactoring.py): written only over `r`
  itself under the same epoch; it puts back `previous`, the closed record `r` displaced (None: the
  closed `r` stays), so the cluster's latest record is again its latest recovery;
- `annotate`: changes a *closed* record only (an open one belongs to its leader);
- `open_records` is what a leader reads to resume what nobody drives any more.

The KV implementation writes by compare-and-set on a revision whose content it knows satisfies the rule
(the one it last wrote or read, whichever is newer); when someone wrote in between, it reads the key
again and applies the rule to what is there. So a reply lost after a write landed, or a scan that read
an older revision while a write was in flight, never passes for "another leader took it".

The bucket is provisioned with the others by `libs.bus.provision.provision`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from libs.bus import kvread
from libs.bus.connection import bus_errors
from libs.bus.provision import RECOVERIES
from libs.bus.subjects import kv_key
from libs.errors import BatonError, BusError, LeadershipLost
from libs.recovery.audit import RecoveryRecord

Annotation = Callable[[RecoveryRecord], bool]
"""Changes a closed record in place (acknowledged, fenced_at); returns False when there was nothing to do."""

_ATTEMPTS = 5  # compare-and-set attempts under contention


class ClusterBusy(BatonError):
    """Another recovery of the same cluster is open."""

    def __init__(self, current: RecoveryRecord) -> None:
        super().__init__(
            f"recovery {current.uid} of {current.alias} is still open (epoch {current.epoch}, "
            f"started {current.started_at.isoformat()})"
        )
        self.current = current


class RecordStore(Protocol):
    async def current(self, alias: str) -> RecoveryRecord | None: ...
    async def register(self, record: RecoveryRecord) -> RecoveryRecord | None: ...
    async def save(self, record: RecoveryRecord) -> None: ...
    async def adopt(self, record: RecoveryRecord) -> None: ...
    async def open_records(self) -> list[RecoveryRecord]: ...
    async def latest_records(self) -> list[RecoveryRecord]: ...
    async def annotate(self, alias: str, uid: str, change: Annotation) -> RecoveryRecord | None: ...
    async def release(self, record: RecoveryRecord, previous: RecoveryRecord | None) -> None: ...


@dataclass(frozen=True)
class Stored:
    """What a key held at one revision: enough to apply the write rules without the whole record."""

    uid: str
    epoch: int
    active: bool
    revision: int = 0

    @classmethod
    def of(cls, record: RecoveryRecord, revision: int = 0) -> Stored:
        return cls(record.uid, record.epoch, record.active, revision)


# The rules. Each returns True (write), False (nothing to write: done already) or raises.
def may_register(stored: Stored | None, record: RecoveryRecord, current: RecoveryRecord | None) -> bool:
    if stored is None or not stored.active:
        return True
    if stored.uid == record.uid and stored.epoch == record.epoch:
        return False  # our own registration already landed
    assert current is not None
    raise ClusterBusy(current)


def may_adopt(stored: Stored | None, record: RecoveryRecord) -> bool:
    if stored is None or stored.uid != record.uid:
        raise LeadershipLost(f"recovery {record.uid} is no longer the latest of {record.alias}: not adopted")
    if not stored.active:
        raise LeadershipLost(f"recovery {record.uid} is closed already: not adopted")
    if stored.epoch > record.epoch:
        raise LeadershipLost(
            f"recovery {record.uid} is held by epoch {stored.epoch} > {record.epoch}: not adopted"
        )
    return True


def may_release(stored: Stored | None, record: RecoveryRecord) -> bool:
    if stored is None or stored.uid != record.uid or stored.epoch != record.epoch:
        raise LeadershipLost(f"operation {record.uid} no longer holds {record.alias}: not released")
    return True


def may_save(stored: Stored | None, record: RecoveryRecord) -> bool:
    if stored is None or stored.uid != record.uid:
        raise LeadershipLost(f"recovery {record.uid} is no longer the latest of {record.alias}: not saved")
    if stored.epoch != record.epoch:
        newer = "a newer leader took it over" if stored.epoch > record.epoch else "never adopted"
        raise LeadershipLost(
            f"recovery {record.uid} is held by epoch {stored.epoch}, not {record.epoch} ({newer}): not saved"
        )
    if not stored.active:
        if record.active:
            raise LeadershipLost(f"recovery {record.uid} is closed already: not saved")
        return False  # our own final write already landed
    return True


class KVRecordStore:
    """RecordStore over `baton_recoveries`. Remembers, per recovery, the newest revision it wrote or read
    and what the key held there."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self._known: dict[str, Stored] = {}  # record uid -> newest revision seen (written or read)

    def _note(self, record: RecoveryRecord, revision: int) -> None:
        seen = self._known.get(record.uid)
        if seen is None or revision >= seen.revision:  # a slow read never rewinds a newer write
            self._known[record.uid] = Stored.of(record, revision)

    async def _kv(self) -> KeyValue:
        with bus_errors(f"opening KV {RECOVERIES}"):
            return await self.js.key_value(RECOVERIES)

    async def _get(self, alias: str) -> tuple[RecoveryRecord, int] | None:
        kv = await self._kv()
        with bus_errors(f"reading {RECOVERIES}/{alias}"):
            try:
                entry = await kv.get(kv_key(alias))
            except nats.js.errors.KeyNotFoundError:
                return None
        if entry.value is None:
            return None
        record, revision = RecoveryRecord.model_validate_json(entry.value), int(entry.revision or 0)
        self._note(record, revision)
        return record, revision

    async def current(self, alias: str) -> RecoveryRecord | None:
        found = await self._get(alias)
        return None if found is None else found[0]

    async def register(self, record: RecoveryRecord) -> RecoveryRecord | None:
        """Make `record` the cluster's open recovery and return the closed record it displaced (None:
        the key was empty). Raises ClusterBusy if another one is open. The displaced record is the one
        the compare-and-set replaced, not an earlier read: a recovery closed between a read and the
        write is returned closed."""
        kv = await self._kv()
        key, value = kv_key(record.alias), record.model_dump_json().encode()
        displaced: RecoveryRecord | None = None  # what an earlier attempt wrote over (its reply lost)
        for _ in range(_ATTEMPTS):
            found = await self._get(record.alias)
            current = found[0] if found else None
            stored = Stored.of(*found) if found else None
            if not may_register(stored, record, current):
                return displaced
            displaced = current
            with bus_errors(f"registering recovery {record.uid}"):
                try:
                    if stored is None:
                        revision = await kv.create(key, value)
                    else:
                        revision = await kv.update(key, value, last=stored.revision)
                except nats.js.errors.KeyWrongLastSequenceError:
                    continue  # someone wrote meanwhile: look again
            self._note(record, revision)
            return displaced
        raise BusError(f"could not register recovery {record.uid} of {record.alias}: too much contention")

    async def save(self, record: RecoveryRecord) -> None:
        """Write the record (rules above). LeadershipLost if it is not ours to write any more."""
        await self._write(record, may_save, "saving")

    async def adopt(self, record: RecoveryRecord) -> None:
        """Take over an open record (the caller has bumped its epoch). LeadershipLost if it is closed,
        replaced, or held by a newer epoch."""
        await self._write(record, may_adopt, "adopting")

    async def _write(
        self, record: RecoveryRecord, rule: Callable[[Stored | None, RecoveryRecord], bool], what: str
    ) -> None:
        kv = await self._kv()
        key, value = kv_key(record.alias), record.model_dump_json().encode()
        stored = self._known.get(record.uid)
        fresh = stored is None
        for _ in range(_ATTEMPTS):
            if stored is None:
                found = await self._get(record.alias)
                stored, fresh = (Stored.of(*found) if found else None), True
            if not rule(stored, record):
                if fresh:
                    return
                stored = None  # "written already" is only believed from the key itself
                continue
            assert stored is not None  # every rule refuses an empty key
            with bus_errors(f"{what} recovery {record.uid}"):
                try:
                    revision = await kv.update(key, value, last=stored.revision)
                except nats.js.errors.KeyWrongLastSequenceError:
                    stored = None  # someone wrote since: read what is there and apply the rule to it
                    continue
            self._note(record, revision)
            return
        raise BusError(f"{what} recovery {record.uid} of {record.alias}: too much contention")

    async def release(self, record: RecoveryRecord, previous: RecoveryRecord | None) -> None:
        """Put `previous` (else the closed `record`) over `record` by compare-and-set (rules above)."""
        kv = await self._kv()
        value = (previous or record).model_dump_json().encode()
        for _ in range(_ATTEMPTS):
            found = await self._get(record.alias)
            may_release(Stored.of(*found) if found else None, record)
            assert found is not None
            with bus_errors(f"releasing operation {record.uid}"):
                try:
                    await kv.update(kv_key(record.alias), value, last=found[1])
                except nats.js.errors.KeyWrongLastSequenceError:
                    continue
            self._known.pop(record.uid, None)
            return
        raise BusError(f"releasing operation {record.uid} of {record.alias}: too much contention")

    async def open_records(self) -> list[RecoveryRecord]:
        return [r for r in await self.latest_records() if r.active]

    async def annotate(self, alias: str, uid: str, change: Annotation) -> RecoveryRecord | None:
        """Apply `change` to the cluster's latest record if it is recovery `uid` and closed (an open one
        belongs to its leader), by compare-and-set. Returns the record written, or None."""
        kv = await self._kv()
        for _ in range(_ATTEMPTS):
            found = await self._get(alias)
            if found is None:
                return None
            record, revision = found
            if record.uid != uid or record.active or not change(record):
                return None
            with bus_errors(f"annotating recovery {uid}"):
                try:
                    written = await kv.update(kv_key(alias), record.model_dump_json().encode(), last=revision)
                except nats.js.errors.KeyWrongLastSequenceError:
                    continue
            self._note(record, written)
            return record
        return None

    async def latest_records(self) -> list[RecoveryRecord]:
        """The latest record of every cluster, open or closed (`kvread.scan`: a short answer would
        make a leader forget an open recovery)."""
        out = []
        for entry in await kvread.scan(self.js, RECOVERIES):
            if not entry.value:
                continue
            record = RecoveryRecord.model_validate_json(entry.value)
            self._note(record, entry.revision)
            out.append(record)
        return out


class MemoryRecordStore:
    """RecordStore in memory, same rules (unit tests, tools)."""

    def __init__(self) -> None:
        self.records: dict[str, RecoveryRecord] = {}
        self.writes: list[tuple[str, str]] = []  # (uid, step names done) per write, for tests

    def _stored(self, alias: str) -> Stored | None:
        found = self.records.get(alias)
        return None if found is None else Stored.of(found)

    async def current(self, alias: str) -> RecoveryRecord | None:
        found = self.records.get(alias)
        return found.model_copy(deep=True) if found else None

    async def register(self, record: RecoveryRecord) -> RecoveryRecord | None:
        displaced = self.records.get(record.alias)
        if may_register(self._stored(record.alias), record, displaced):
            await self._write(record)
            return None if displaced is None else displaced.model_copy(deep=True)
        return None

    async def save(self, record: RecoveryRecord) -> None:
        if may_save(self._stored(record.alias), record):
            await self._write(record)

    async def adopt(self, record: RecoveryRecord) -> None:
        if may_adopt(self._stored(record.alias), record):
            await self._write(record)

    async def release(self, record: RecoveryRecord, previous: RecoveryRecord | None) -> None:
        if may_release(self._stored(record.alias), record):
            await self._write(previous or record)

    async def open_records(self) -> list[RecoveryRecord]:
        return [r.model_copy(deep=True) for r in self.records.values() if r.active]

    async def latest_records(self) -> list[RecoveryRecord]:
        return [r.model_copy(deep=True) for r in self.records.values()]

    async def annotate(self, alias: str, uid: str, change: Annotation) -> RecoveryRecord | None:
        current = self.records.get(alias)
        if current is None or current.uid != uid or current.active:
            return None
        record = current.model_copy(deep=True)
        if not change(record):
            return None
        await self._write(record)
        return record

    async def _write(self, record: RecoveryRecord) -> None:
        self.records[record.alias] = record.model_copy(deep=True)
        self.writes.append((record.uid, ",".join(s.name for s in record.steps)))
