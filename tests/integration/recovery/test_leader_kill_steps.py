"""Issue 11 item 6, "no stuck cluster": the recovery leader dies (SIGKILL) or freezes past its lease
(SIGSTOP, then SIGCONT) right after each step of a dead-master failover and of a graceful takeover; a
standby takes the lease, resumes the open record and finishes it. At the end there is exactly one
writable master, the record is closed (succeeded) and `baton_masters` names the new master; no step ran
twice, the promotion happened once; a frozen leader that is continued notices it lost the lease and
changes nothing.

Real nats-server and mariadbd, one of each for the whole module (a master and two replicas: the cases
rotate the master; a failover's dead master is restarted and rejoined as a replica afterwards). The
dying leader is a subprocess (`crashing_leader.py`), started ahead of its case so Python's imports
overlap the previous case; the survivor runs in the test process as a standby from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nats.js.errors
import pytest

from libs.bus import lease as leases
from libs.bus.connection import Bus, connect
from libs.bus.messages import publish_event, publish_model
from libs.bus.provision import FENCES, LEADER, MASTERS, RECOVERIES, provision
from libs.bus.server import NatsServer
from libs.bus.subjects import cmd_subject, detection_subject, kv_key, snapshot_subject
from libs.config import load_settings
from libs.models import InstanceKey, MasterRecord
from libs.models.operator import CommandRequest
from libs.mysql.dialect import dialect_for
from libs.recovery.audit import Outcome, RecoveryRecord, StepOutcome
from libs.sandbox import REPL_PASSWORD, REPL_USER, TOPOLOGY_PASSWORD, TOPOLOGY_USER, Sandbox
from libs.sandbox.spec import master_replicas
from libs.topology.detection_event import to_event
from services.recovery.service import RecoveryService
from tests.integration.recovery.harness import build, probe_all, wait_dead_master

ROOT = Path(__file__).resolve().parents[3]

# The steps, in order, of a failover of a dead master with two replicas (no lost replicas, no lost
# downtime) and of a graceful takeover with two replicas (by name prefix).
STEPS = {
    "failover": [
        "recheck", "plan", "pre-failover-hooks", "stop-io", "drain", "rank", "wait-applied:", "repoint:",
        "promote:", "publish-master", "post-hooks",
    ],
    "takeover": [
        "plan", "pre-graceful-takeover-hooks", "wait-caught-up:", "switch:", "repoint:", "demote:",
        "publish-master", "post-hooks",
    ],
}  # fmt: skip
CASES = [
    pytest.param(kind, step, how, id=f"{kind}-{step.rstrip(':')}-{how}")
    for kind, steps in STEPS.items()
    for step in steps
    for how in ("KILL", "STOP")
]
PROMOTING = ("promote:", "switch:")


@dataclass
class Crasher:
    """One leader process that acts (KILL or STOP) after a step; it waits for its plan file to start."""

    node: str
    proc: subprocess.Popen[bytes]
    plan: Path
    log: Path

    def go(self, after: str, how: str) -> None:
        tmp = self.plan.with_suffix(".tmp")
        tmp.write_text(json.dumps({"after": after, "signal": how}))
        tmp.rename(self.plan)

    @property
    def stopped(self) -> bool:
        with contextlib.suppress(OSError):
            return Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
        return False

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.send_signal(signal.SIGCONT)  # a stopped process dies only once continued
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class World:
    """What the module's cases share: the servers, the config, and the next leader process."""

    sb: Sandbox
    nats_url: str
    config: Path
    workdir: Path
    ahead: Crasher | None = None
    spawned: list[Crasher] = field(default_factory=list)

    def spawn(self) -> Crasher:
        node = f"crasher-{len(self.spawned)}"
        plan, log = self.workdir / f"{node}.plan", self.workdir / f"{node}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.recovery.crashing_leader", "--config",
                 str(self.config), "--plan", str(plan), "--node", node],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        crasher = Crasher(node, proc, plan, log)
        self.spawned.append(crasher)
        return crasher

    def next(self) -> Crasher:
        crasher, self.ahead = self.ahead or self.spawn(), None
        return crasher

    def prepare_next(self) -> None:
        if self.ahead is None:
            self.ahead = self.spawn()


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, sandbox_template: Path, nats_server_module: NatsServer
) -> Iterator[World]:
    workdir = tmp_path_factory.mktemp("leader-kill")
    config = workdir / "baton.json"
    config.write_text(
        json.dumps(
            {
                "BatonNatsURLs": [nats_server_module.url],
                "MySQLTopologyUser": TOPOLOGY_USER,
                "MySQLTopologyPassword": TOPOLOGY_PASSWORD,
                "MySQLReplicationUser": REPL_USER,
                "MySQLReplicationPassword": REPL_PASSWORD,
                "MySQLConnectTimeoutSeconds": 1,
                "InstancePollSeconds": 1,
                "RecoverMasterClusterFilters": ["*"],
                "RecoveryPeriodBlockSeconds": 0,  # cases rotate the master of one cluster
            }
        )
    )
    sb = Sandbox(tmp_path_factory.mktemp("sandbox3"), master_replicas(2), template_dir=sandbox_template)
    w = World(sb, nats_server_module.url, config, workdir)
    try:
        asyncio.run(sb.start())
        w.prepare_next()
        yield w
    finally:
        for crasher in w.spawned:
            crasher.kill()
        asyncio.run(sb.stop())


# -- the topology ----------------------------------------------------------------------------------
async def writable_roots(sb: Sandbox) -> list[str]:
    out = []
    for name in sb.names:
        if not sb.is_running(name):
            continue
        ro = await sb.sql(name, "SELECT @@read_only AS r")
        if int(ro[0]["r"]) == 0 and not await sb.sql(name, "SHOW SLAVE STATUS"):
            out.append(name)
    return out


async def replicates_from(sb: Sandbox, name: str, master: InstanceKey) -> bool:
    rows = await sb.sql(name, "SHOW SLAVE STATUS")
    return bool(rows) and (
        int(rows[0]["Master_Port"]) == master.port
        and rows[0]["Slave_IO_Running"] == "Yes"
        and rows[0]["Slave_SQL_Running"] == "Yes"
    )


async def wait_replicating(sb: Sandbox, name: str, master: InstanceKey, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not await replicates_from(sb, name, master):
        assert time.monotonic() < deadline, f"{name} does not replicate from {master}"
        await asyncio.sleep(0.05)


async def rejoin(sb: Sandbox, name: str, master: InstanceKey) -> None:
    """`name` (a former master) becomes a read-only replica of `master`, from its own last transaction."""
    if not sb.is_running(name):
        await sb.restart(name)
    dialect = dialect_for("10.11.0-MariaDB")
    await sb.script(
        name,
        [
            "SET GLOBAL read_only = 1",
            "STOP SLAVE",
            "SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos",
            dialect.change_master_gtid(master, REPL_USER, REPL_PASSWORD),
            dialect.start_replica(),
        ],
    )
    await wait_replicating(sb, name, master)


async def healthy(sb: Sandbox) -> str:
    """One writable master, every other node a running replica of it. Returns the master's name."""
    masters = await writable_roots(sb)
    assert len(masters) == 1, f"writable masters: {masters}"
    (master,) = masters
    for name in sb.names:
        if name != master and not await replicates_from(sb, name, sb.key(master)):
            await rejoin(sb, name, sb.key(master))
    return master


# -- the bus ---------------------------------------------------------------------------------------
async def forget_recoveries(bus: Bus) -> None:
    """Earlier cases' records and fence watches: a new leader would watch the rejoined old masters."""
    for bucket in (RECOVERIES, FENCES):
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await bus.js.purge_stream(f"KV_{bucket}")


async def read_record(bus: Bus, alias: str) -> tuple[RecoveryRecord, int] | None:
    kv = await bus.js.key_value(RECOVERIES)
    try:
        entry = await kv.get(kv_key(alias))
    except nats.js.errors.KeyNotFoundError:
        return None
    if not entry.value:
        return None
    return RecoveryRecord.model_validate_json(entry.value), int(entry.revision or 0)


async def wait_for(what: str, within: float, check):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, what() if callable(what) else what
        await asyncio.sleep(0.05)


# -- the test --------------------------------------------------------------------------------------
@pytest.mark.timeout(90)
@pytest.mark.parametrize(("kind", "step", "how"), CASES)
async def test_leader_dies_or_freezes_after_each_step(kind: str, step: str, how: str, world: World) -> None:
    sb = world.sb
    h = build(sb)  # probes, and the detection the analyzer would publish
    bus = await connect(world.nats_url, "leader-kill-test")
    survivor: RecoveryService | None = None
    crasher = world.next()
    try:
        await provision(bus.js)
        master = await healthy(sb)
        master_key = sb.key(master)
        await forget_recoveries(bus)
        before = await probe_all(sb, h.pool)
        h.known.add(before)
        for snap in before.values():  # what the prober would publish
            await publish_model(bus.js, snapshot_subject(snap.key), snap)

        crasher.go(step, how)

        async def crasher_leads() -> int | None:
            assert crasher.proc.poll() is None, f"{crasher.node} exited early:\n{crasher.output()[-3000:]}"
            info = await leases.read(bus.js, LEADER, "recovery")
            return info.revision if info is not None and info.holder == crasher.node else None

        first_epoch = await wait_for(f"{crasher.node} never took the lease", 20, crasher_leads)
        survivor = await RecoveryService(
            load_settings(str(world.config)), node=f"survivor-{uuid.uuid4().hex[:4]}"
        ).start()
        world.prepare_next()  # the next case's leader imports meanwhile

        alias = str(master_key)
        if kind == "failover":
            sb.kill(master)
            detection = await wait_dead_master(h, master_key)
            await publish_event(bus.js, detection_subject(detection.finding.cluster), to_event(detection),
                                msg_id=detection.message_id)  # fmt: skip
        else:
            target = next(n for n in sb.names if n != master)
            request = CommandRequest(verb="graceful-master-takeover-auto", requested_by="test",
                                     cluster=alias, alias=alias, destination=sb.key(target))  # fmt: skip
            await bus.nc.publish(cmd_subject("recovery", request.verb), request.model_dump_json().encode())

        async def crasher_acted() -> bool:
            if how == "KILL":
                code = crasher.proc.poll()
                assert code in (None, -9), f"{crasher.node} exited {code}:\n{crasher.output()[-3000:]}"
                return code == -9
            return crasher.stopped

        await wait_for(lambda: f"{crasher.node} never reached {step}:\n{crasher.output()[-3000:]}", 30,
                       crasher_acted)  # fmt: skip
        found = await read_record(bus, alias)
        assert found is not None, "no record"
        mid, _ = found
        by_first = [s for s in mid.steps if s.epoch == first_epoch]
        assert by_first and by_first[-1].name.startswith(step) and by_first[-1].outcome is StepOutcome.DONE, [
            (s.name, s.outcome) for s in mid.steps
        ]

        async def closed() -> tuple[RecoveryRecord, int] | None:
            current = await read_record(bus, alias)
            return current if current is not None and not current[0].active else None

        rec, revision = await wait_for(
            lambda: f"not closed: {[(s.name, s.outcome, s.epoch) for s in (mid.steps)]}", 30, closed
        )
        assert rec.uid == mid.uid and rec.outcome is Outcome.SUCCEEDED, (rec.outcome, rec.reason)
        assert rec.epochs[0] == first_epoch and len(rec.epochs) == 2, rec.epochs
        done = [s.name for s in rec.steps if s.outcome is StepOutcome.DONE]
        assert len(done) == len(set(done)), f"a step ran twice: {done}"
        assert [s.name for s in rec.steps if s.epoch == first_epoch] == [s.name for s in by_first]
        assert len([n for n in done if n.startswith(PROMOTING)]) == 1, done
        assert rec.successor is not None and rec.promoted_at is not None
        new_master = sb.name_of(rec.successor)
        assert new_master is not None and new_master != master
        assert await writable_roots(sb) == [new_master]
        for name in sb.names:
            if name not in (new_master, master):
                await wait_replicating(sb, name, rec.successor)
        if kind == "takeover":
            await wait_replicating(sb, master, rec.successor)  # -auto: the old master follows
        kv = await bus.js.key_value(MASTERS)
        published = MasterRecord.model_validate_json((await kv.get(kv_key(rec.alias))).value or b"")
        assert published.master == rec.successor and published.recovery_uid == rec.uid
        assert published.epoch in rec.epochs

        if how == "STOP":  # continued: it must see the lease is gone and change nothing
            crasher.proc.send_signal(signal.SIGCONT)
            ended = f"epoch {first_epoch} ended"
            await wait_for(lambda: f"{crasher.node} did not end its term:\n{crasher.output()[-3000:]}", 15,
                           lambda: asyncio.sleep(0, ended in crasher.output()))  # fmt: skip
            after = await read_record(bus, alias)
            assert after is not None and after[1] == revision, (
                "the frozen leader wrote after it was continued"
            )
            assert await writable_roots(sb) == [new_master]
            info = await leases.read(bus.js, LEADER, "recovery")
            assert info is not None and info.holder == survivor.node
        crasher.kill()
        if kind == "failover":
            await survivor.stop()  # before the old master is back: nobody fences it meanwhile
            survivor = None
            await rejoin(sb, master, rec.successor)
    finally:
        crasher.kill()
        if survivor is not None:
            await survivor.stop()
        await bus.close()
        h.pool.close()
