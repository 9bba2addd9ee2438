"""The leader dies in the middle of a failover; a second recovery process takes the lease and finishes.

Real NATS, real MariaDB; the detection is published the way the analyzer publishes it (no prober or
analyzer service needed)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from libs.bus import lease as leases
from libs.bus.connection import connect
from libs.bus.messages import publish_event, publish_model
from libs.bus.provision import LEADER, MASTERS, provision
from libs.bus.server import NatsServer
from libs.bus.subjects import cmd_subject, detection_subject, kv_key, snapshot_subject
from libs.config import load_settings
from libs.models import MasterRecord
from libs.recovery.audit import Outcome, RecoveryRecord, StepOutcome
from libs.recovery.record_store import RECOVERIES
from libs.sandbox import REPL_PASSWORD, REPL_USER, TOPOLOGY_PASSWORD, TOPOLOGY_USER, Sandbox
from libs.sandbox.spec import master_replicas
from libs.topology.detection_event import to_event
from services.recovery.service import RecoveryService
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.recovery.harness import (
    build,
    probe_all,
    wait_dead_master,
    wait_replicating_from,
    writable_masters,
    write_rows,
)

ROOT = Path(__file__).resolve().parents[3]


def write_config(path: Path, nats_url: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "BatonNatsURLs": [nats_url],
                "MySQLTopologyUser": TOPOLOGY_USER,
                "MySQLTopologyPassword": TOPOLOGY_PASSWORD,
                "MySQLReplicationUser": REPL_USER,
                "MySQLReplicationPassword": REPL_PASSWORD,
                "InstancePollSeconds": 1,
                "MasterFailoverLostInstancesDowntimeMinutes": 10,
                "RecoverMasterClusterFilters": ["*"],
            }
        )
    )
    return path


async def read_record(js, alias: str) -> RecoveryRecord | None:  # type: ignore[no-untyped-def]
    kv = await js.key_value(RECOVERIES)
    try:
        entry = await kv.get(kv_key(alias))
    except Exception:
        return None
    return RecoveryRecord.model_validate_json(entry.value) if entry.value else None


@pytest.mark.timeout(90)
async def test_leader_killed_mid_failover_second_process_finishes(
    sandbox_factory: SandboxFactory, nats_server: NatsServer, tmp_path: Path
) -> None:
    sb: Sandbox = await sandbox_factory(master_replicas(3))
    config = write_config(tmp_path / "baton.json", nats_server.url)
    h = build(sb)  # only for probing and building the detection
    bus = await connect(nats_server.url, "test")
    crasher = None
    second = None
    try:
        await provision(bus.js)
        pos = await write_rows(sb, "master", 100, 2, "before crash")
        for r in ("replica1", "replica2", "replica3"):
            await sb.wait_gtid(r, pos)
        before = await probe_all(sb, h.pool)
        h.known.add(before)
        for snap in before.values():  # what the prober would have published
            await publish_model(bus.js, snapshot_subject(snap.key), snap)

        crasher = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.recovery.crashing_leader", "--config", str(config),
             "--crash-after", "repoint:", "--node", "crasher"],
            cwd=ROOT,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while (info := await leases.read(bus.js, LEADER, "recovery")) is None or info.holder != "crasher":
            assert time.monotonic() < deadline, "the crashing leader never took the lease"
            assert crasher.poll() is None, "the crashing leader exited early"
            await asyncio.sleep(0.1)
        first_epoch = info.revision

        master = sb.key("master")
        sb.kill("master")
        detection = await wait_dead_master(h, master)
        await publish_event(
            bus.js,
            detection_subject(detection.finding.cluster),
            to_event(detection),
            msg_id=detection.message_id,
        )
        assert await asyncio.to_thread(crasher.wait, 30) == -9  # killed itself after the repoint step

        mid = await read_record(bus.js, detection.finding.alias)
        assert mid is not None and mid.active, mid
        done_by_first = [s.name for s in mid.steps if s.outcome is StepOutcome.DONE]
        assert any(n.startswith("repoint:") for n in done_by_first)
        assert not any(n.startswith("promote:") for n in done_by_first)
        assert await writable_masters(sb, sb.names) == []  # nobody promoted yet

        second = await RecoveryService(load_settings(str(config)), node="second").start()
        deadline = time.monotonic() + 30
        while (rec := await read_record(bus.js, detection.finding.alias)) is None or rec.active:
            assert time.monotonic() < deadline, (
                f"not finished: {rec and [(s.name, s.outcome) for s in rec.steps]}"
            )
            await asyncio.sleep(0.1)

        assert rec.outcome is Outcome.SUCCEEDED, rec.reason
        assert rec.uid == mid.uid and len(rec.epochs) == 2 and rec.epochs[0] == first_epoch
        assert rec.epoch > first_epoch
        done = [s.name for s in rec.steps if s.outcome is StepOutcome.DONE]
        assert len(done) == len(set(done)), f"a step ran twice: {done}"
        first_steps = {s.name for s in rec.steps if s.epoch == first_epoch}
        second_steps = {s.name for s in rec.steps if s.epoch == rec.epoch}
        assert first_steps.isdisjoint(second_steps), (first_steps, second_steps)
        assert any(n.startswith("promote:") for n in second_steps)
        assert rec.successor is not None
        new = sb.name_of(rec.successor)
        assert await writable_masters(sb, sb.names) == [new]
        for other in {"replica1", "replica2", "replica3"} - {new}:
            await wait_replicating_from(sb, other, rec.successor)
        kv = await bus.js.key_value(MASTERS)
        published = MasterRecord.model_validate_json((await kv.get(kv_key(rec.alias))).value or b"")
        assert published.master == rec.successor and published.epoch == rec.epoch
        assert published.recovery_uid == rec.uid
        reply = await bus.nc.request(cmd_subject("recovery", "status"), b"", timeout=5)
        status = json.loads(reply.data)
        assert status["status"] == "ok" and status["details"]["leader"] is True
        assert status["details"]["node"] == "second" and status["details"]["epoch"] == rec.epoch
        downtime = await bus.js.key_value("baton_downtime")
        entry = await downtime.get(kv_key(str(master)))
        assert entry.value is not None and b"lost-in-recovery" in entry.value
    finally:
        if crasher is not None and crasher.poll() is None:
            crasher.kill()
            crasher.wait()
        if second is not None:
            await second.stop()
        await bus.close()
