"""`RecordStore.release` (a refactoring's lock): the same rules on the KV store and the memory store —
it writes over the operation's own record only (same uid, same epoch), putting back the recovery the
lock displaced, or leaving the closed operation when there was none."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from libs.bus.connection import connect
from libs.bus.provision import provision
from libs.bus.server import NatsServer
from libs.errors import LeadershipLost
from libs.models import InstanceKey, utcnow
from libs.recovery.audit import Outcome, RecoveryKind, RecoveryRecord
from libs.recovery.record_store import ClusterBusy, KVRecordStore, MemoryRecordStore, RecordStore


@pytest.fixture(params=["memory", "nats"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RecordStore]:
    if request.param == "memory":
        yield MemoryRecordStore()
        return
    server: NatsServer = request.getfixturevalue("nats_server_module")
    bus = await connect(server.url, "release-contract")
    try:
        await provision(bus.js)
        yield KVRecordStore(bus.js)
    finally:
        await bus.close()


def make(alias: str, *, operation: bool, epoch: int = 3) -> RecoveryRecord:
    return RecoveryRecord(
        incident=f"i-{uuid.uuid4().hex[:6]}", code="Operation" if operation else "DeadMaster", cluster=alias,
        alias=alias, failed=InstanceKey.parse(alias), command="operation:relocate" if operation else "",
        epoch=epoch, epochs=[epoch], started_at=utcnow(),
    )  # fmt: skip


async def test_release_puts_back_the_displaced_record(store: RecordStore) -> None:
    alias = f"db-{uuid.uuid4().hex[:8]}:3306"
    before = make(alias, operation=False)
    assert await store.register(before) is None  # nothing displaced
    before.close(Outcome.SUCCEEDED, "done", utcnow())
    await store.save(before)
    op = make(alias, operation=True)
    displaced = await store.register(op)  # what the write replaced: `before`, closed
    assert displaced is not None and displaced.uid == before.uid and not displaced.active
    with pytest.raises(ClusterBusy):  # the lock holds against a recovery
        await store.register(make(alias, operation=False))
    op.close(Outcome.SUCCEEDED, "moved", utcnow())
    await store.release(op, before)
    current = await store.current(alias)
    assert current is not None and current.uid == before.uid and current.kind is RecoveryKind.MASTER
    with pytest.raises(LeadershipLost):  # released already: no longer its record
        await store.release(op, before)


async def test_release_of_someone_elses_record_is_refused(store: RecordStore) -> None:
    alias = f"db-{uuid.uuid4().hex[:8]}:3306"
    op = make(alias, operation=True, epoch=3)
    await store.register(op)
    stale = op.model_copy(update={"epoch": 2})  # what a deposed leader of epoch 2 would hold
    with pytest.raises(LeadershipLost):
        await store.release(stale, None)
    op.close(Outcome.FAILED, "x", utcnow())
    await store.release(op, None)  # nothing displaced: the closed operation stays, the lock is free
    current = await store.current(alias)
    assert current is not None and current.uid == op.uid and not current.active
    await store.register(make(alias, operation=False))  # free for a recovery
