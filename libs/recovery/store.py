"""Open and recent recovery records in the KV bucket `baton_recoveries`, one key per cluster.

The key (the cluster alias, KV-encoded) holds the cluster's latest recovery record. This is what makes
"at most one recovery per cluster at a time" hold across processes and leaders:
- `register` creates the key, or replaces a *closed* record by compare-and-set; an open record refuses
  (ClusterBusy), whoever wrote it;
- `save` writes by compare-and-set on the revision we last wrote, so a leader whose record was taken
  over by a newer epoch learns it on its next write (LeadershipLost) and stops;
- `open_records` is what a new leader reads to resume or close what the old one left open.

The bucket is provisioned with the others by `libs.bus.provision.provision`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from libs.bus import kvread
from libs.bus.connection import bus_errors
from libs.bus.provision import RECOVERIES
from libs.bus.subjects import kv_key
from libs.errors import BatonError, LeadershipLost
from libs.recovery.audit import RecoveryRecord

Annotation = Callable[[RecoveryRecord], bool]
"""Changes a closed record in place (acknowledged, fenced_at); returns False when there was nothing to do."""


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
    async def register(self, record: RecoveryRecord) -> None: ...
    async def save(self, record: RecoveryRecord) -> None: ...
    async def adopt(self, record: RecoveryRecord) -> None: ...
    async def open_records(self) -> list[RecoveryRecord]: ...
    async def latest_records(self) -> list[RecoveryRecord]: ...
    async def annotate(self, alias: str, uid: str, change: Annotation) -> RecoveryRecord | None: ...


class KVRecordStore:
    """RecordStore over `baton_recoveries`. Remembers the revision of each record it wrote or read."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self._revisions: dict[str, int] = {}  # record uid -> KV revision last written/read

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
        return RecoveryRecord.model_validate_json(entry.value), int(entry.revision or 0)

    async def current(self, alias: str) -> RecoveryRecord | None:
        found = await self._get(alias)
        if found is None:
            return None
        record, revision = found
        self._revisions[record.uid] = revision
        return record

    async def register(self, record: RecoveryRecord) -> None:
        """Make `record` the cluster's open recovery. Raises ClusterBusy if one is open."""
        kv = await self._kv()
        key, value = kv_key(record.alias), record.model_dump_json().encode()
        for _ in range(5):
            found = await self._get(record.alias)
            with bus_errors(f"registering recovery {record.uid}"):
                try:
                    if found is None:
                        revision = await kv.create(key, value)
                    else:
                        current, current_rev = found
                        if current.active:
                            raise ClusterBusy(current)
                        revision = await kv.update(key, value, last=current_rev)
                except nats.js.errors.KeyWrongLastSequenceError:
                    continue  # someone wrote meanwhile: look again
            self._revisions[record.uid] = revision
            return
        raise BatonError(f"could not register recovery {record.uid} of {record.alias}: too much contention")

    async def save(self, record: RecoveryRecord) -> None:
        """Write the record by compare-and-set. LeadershipLost if anyone else wrote the key since."""
        kv = await self._kv()
        last = self._revisions.get(record.uid)
        if last is None:
            raise LeadershipLost(f"recovery {record.uid} was never registered or adopted by this process")
        with bus_errors(f"saving recovery {record.uid}"):
            try:
                self._revisions[record.uid] = await kv.update(
                    kv_key(record.alias), record.model_dump_json().encode(), last=last
                )
            except nats.js.errors.KeyWrongLastSequenceError:
                raise LeadershipLost(
                    f"recovery {record.uid} was written by someone else (a newer leader took it over)"
                ) from None

    async def adopt(self, record: RecoveryRecord) -> None:
        """Take over an open record read by `open_records` (the caller has bumped its epoch)."""
        await self.save(record)

    async def open_records(self) -> list[RecoveryRecord]:
        return [r for r in await self.latest_records() if r.active]

    async def annotate(self, alias: str, uid: str, change: Annotation) -> RecoveryRecord | None:
        """Apply `change` to the cluster's latest record if it is recovery `uid` and closed (an open one
        belongs to its leader), by compare-and-set. Returns the record written, or None."""
        kv = await self._kv()
        for _ in range(5):
            found = await self._get(alias)
            if found is None:
                return None
            record, revision = found
            if record.uid != uid or record.active or not change(record):
                return None
            with bus_errors(f"annotating recovery {uid}"):
                try:
                    await kv.update(kv_key(alias), record.model_dump_json().encode(), last=revision)
                except nats.js.errors.KeyWrongLastSequenceError:
                    continue
            return record
        return None

    async def latest_records(self) -> list[RecoveryRecord]:
        """The latest record of every cluster, open or closed (`kvread.scan`: a short answer would
        make a new leader forget an open recovery)."""
        out = []
        for entry in await kvread.scan(self.js, RECOVERIES):
            if not entry.value:
                continue
            record = RecoveryRecord.model_validate_json(entry.value)
            self._revisions[record.uid] = entry.revision
            out.append(record)
        return out


class MemoryRecordStore:
    """RecordStore in memory, same rules (unit tests, tools)."""

    def __init__(self) -> None:
        self.records: dict[str, RecoveryRecord] = {}
        self.writes: list[tuple[str, str]] = []  # (uid, step names done) per write, for tests

    async def current(self, alias: str) -> RecoveryRecord | None:
        found = self.records.get(alias)
        return found.model_copy(deep=True) if found else None

    async def register(self, record: RecoveryRecord) -> None:
        current = self.records.get(record.alias)
        if current is not None and current.active:
            raise ClusterBusy(current)
        await self._write(record)

    async def save(self, record: RecoveryRecord) -> None:
        current = self.records.get(record.alias)
        if current is None or current.uid != record.uid or current.epoch > record.epoch:
            raise LeadershipLost(f"recovery {record.uid} was written by someone else")
        await self._write(record)

    async def adopt(self, record: RecoveryRecord) -> None:
        await self._write(record)

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
