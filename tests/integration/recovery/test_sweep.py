"""Issue 11 item 6: an open recovery nobody drives is resumed by the leader's periodic sweep, mid-term —
not only when a term starts. Either left by an older epoch (a deposed leader's), or of the leader's own
term with no task driving it (an admission that registered it and then failed on the bus)."""

from __future__ import annotations

import asyncio
import time

import pytest

from libs.bus import lease as leases
from libs.bus.connection import connect
from libs.bus.messages import publish_model
from libs.bus.provision import LEADER, RECOVERIES, provision
from libs.bus.server import NatsServer
from libs.bus.subjects import kv_key, snapshot_subject
from libs.models import utcnow
from libs.recovery.audit import Outcome, RecoveryRecord, new_record
from libs.sandbox.spec import master_replicas
from services.recovery.service import RecoveryService
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.recovery.harness import build, probe_all, wait_dead_master, writable_masters
from tests.integration.recovery.stack import master_of, stack_settings


@pytest.mark.timeout(60)
@pytest.mark.parametrize("whose", ["older-epoch", "own-term"])
async def test_the_sweep_resumes_an_open_record_nobody_drives(
    whose: str, sandbox_factory: SandboxFactory, nats_server: NatsServer
) -> None:
    sb = await sandbox_factory(master_replicas(2))
    bus = await connect(nats_server.url, "sweep-test")
    h = build(sb)
    service = None
    try:
        await provision(bus.js)
        ghost = await leases.acquire(bus.js, LEADER, "recovery", "ghost", 3)  # an earlier term
        assert ghost is not None and await leases.release(bus.js, ghost)
        before = await probe_all(sb, h.pool)
        h.known.add(before)
        for snap in before.values():
            await publish_model(bus.js, snapshot_subject(snap.key), snap)
        settings = stack_settings(nats_server.url, [str(sb.key(n)) for n in sb.names])
        service = await RecoveryService(settings, node="leader", sweep_s=1.0).start()
        deadline = time.monotonic() + 20
        while service.term is None or len(service.memory.states) < len(sb.names):
            assert time.monotonic() < deadline, "not leading"
            await asyncio.sleep(0.05)
        epoch = service.term.fence.epoch
        assert epoch > ghost.epoch

        master = sb.key("master")
        sb.kill("master")
        detection = await wait_dead_master(h, master)  # not published: the record alone must do it
        left_by = ghost.epoch if whose == "older-epoch" else epoch
        orphan = new_record(detection, epoch=left_by, node="gone", now=utcnow())
        kv = await bus.js.key_value(RECOVERIES)
        await kv.create(kv_key(orphan.alias), orphan.model_dump_json().encode())

        deadline = time.monotonic() + 20
        while True:
            entry = await kv.get(kv_key(orphan.alias))
            rec = RecoveryRecord.model_validate_json(entry.value or b"")
            if not rec.active:
                break
            assert time.monotonic() < deadline, f"not resumed: {[(s.name, s.outcome) for s in rec.steps]}"
            await asyncio.sleep(0.1)
        assert rec.uid == orphan.uid and rec.outcome is Outcome.SUCCEEDED, rec.reason
        assert rec.epochs == ([ghost.epoch, epoch] if whose == "older-epoch" else [epoch])
        assert rec.successor is not None
        assert await writable_masters(sb, sb.names) == [sb.name_of(rec.successor)]
        published = await master_of(bus.js, rec.alias)
        assert published is not None and published.master == rec.successor and published.epoch == epoch
    finally:
        if service is not None:
            await service.stop()
        await bus.close()
        h.pool.close()
