"""A fault-injecting RecordStore: wraps a real one (in memory or NATS-backed) and makes chosen calls fail
with BusError, the way a NATS hiccup does — before the call (nothing written) or after it (written, but
the reply was lost)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from libs.errors import BusError
from libs.recovery.audit import RecoveryRecord
from libs.recovery.record_store import Annotation, RecordStore


@dataclass
class Fault:
    method: str  # current, register, save, adopt, open_records, latest_records, annotate
    times: int | None = 1  # None: until healed
    landed: bool = False  # do the call, then raise (a lost reply)
    when: Callable[[RecoveryRecord], bool] | None = None  # only for these records


@dataclass
class FlakyStore:
    inner: RecordStore
    faults: list[Fault] = field(default_factory=list)
    raised: list[str] = field(default_factory=list)  # methods that failed, in order

    def inject(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def heal(self) -> None:
        self.faults.clear()

    async def _call(
        self, method: str, record: RecoveryRecord | None, call: Callable[[], Awaitable[Any]]
    ) -> Any:
        fault = next(
            (
                f
                for f in self.faults
                if f.method == method and (f.when is None or (record is not None and f.when(record)))
            ),
            None,
        )
        if fault is None:
            return await call()
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                self.faults.remove(fault)
        if fault.landed:
            await call()
        self.raised.append(method)
        raise BusError(f"injected fault: {method} timed out")

    async def current(self, alias: str) -> RecoveryRecord | None:
        return await self._call("current", None, lambda: self.inner.current(alias))  # type: ignore[no-any-return]

    async def register(self, record: RecoveryRecord) -> None:
        await self._call("register", record, lambda: self.inner.register(record))

    async def save(self, record: RecoveryRecord) -> None:
        await self._call("save", record, lambda: self.inner.save(record))

    async def adopt(self, record: RecoveryRecord) -> None:
        await self._call("adopt", record, lambda: self.inner.adopt(record))

    async def open_records(self) -> list[RecoveryRecord]:
        return await self._call("open_records", None, self.inner.open_records)  # type: ignore[no-any-return]

    async def latest_records(self) -> list[RecoveryRecord]:
        return await self._call("latest_records", None, self.inner.latest_records)  # type: ignore[no-any-return]

    async def annotate(self, alias: str, uid: str, change: Annotation) -> RecoveryRecord | None:
        return await self._call("annotate", None, lambda: self.inner.annotate(alias, uid, change))  # type: ignore[no-any-return]

    async def release(self, record: RecoveryRecord, previous: RecoveryRecord | None) -> None:
        await self._call("release", record, lambda: self.inner.release(record, previous))


def promoted(record: RecoveryRecord) -> bool:
    """`when` for faults after promotion."""
    return record.promoted_at is not None


def not_promoted(record: RecoveryRecord) -> bool:
    return record.promoted_at is None
