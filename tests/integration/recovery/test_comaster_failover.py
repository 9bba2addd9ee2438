"""Co-master failover on a real ring: master1 (writable) and master2 (read-only) replicate from each
other, one replica under each (`libs.sandbox.spec.comasters`). The pipeline runs with in-memory NATS
stand-ins, as in test_failover.py; each test starts its own ring (about 3 s)."""

from __future__ import annotations

from dataclasses import dataclass, field

from libs.hooks import HookContext, HookKind, HookResult
from libs.models import InstanceKey
from libs.recovery.audit import Outcome, RecoveryKind, RecoveryRecord
from libs.recovery.fence import StaticFence
from libs.recovery.old_master import OldMasterFencer
from libs.sandbox import SANDBOX_DB, Sandbox
from libs.sandbox.spec import comasters
from libs.topology.codes import Analysis
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.recovery.harness import (
    Harness,
    build,
    probe_all,
    wait_dead_master,
    wait_replicating_from,
    writable_masters,
    write_rows,
)

CO_MASTER_CODES = (Analysis.DEAD_CO_MASTER, Analysis.DEAD_CO_MASTER_AND_SOME_REPLICAS)
NODES = ("master1", "master2", "replica1_1", "replica2_1")


@dataclass
class Hooks:
    """Records which hooks ran and what they were told."""

    ran: list[tuple[HookKind, HookContext]] = field(default_factory=list)

    async def __call__(self, kind: HookKind, ctx: HookContext) -> list[HookResult]:
        self.ran.append((kind, ctx))
        return []


async def _ring(sandbox_factory: SandboxFactory) -> tuple[Sandbox, Harness, Hooks]:
    sb = await sandbox_factory(comasters(1))
    hooks = Hooks()
    h = build(sb, hooks=hooks)
    # the ring as built: each master replicates from the other, only master1 is writable
    await wait_replicating_from(sb, "master1", sb.key("master2"))
    await wait_replicating_from(sb, "master2", sb.key("master1"))
    assert int((await sb.sql("master1", "SELECT @@read_only AS r"))[0]["r"]) == 0
    assert int((await sb.sql("master2", "SELECT @@read_only AS r"))[0]["r"]) == 1
    pos = await write_rows(sb, "master1", 100, 3, "before crash")
    for name in ("master2", "replica1_1", "replica2_1"):
        await sb.wait_gtid(name, pos)
    h.known.add(await probe_all(sb, h.pool))
    return sb, h, hooks


async def _fail_over(h: Harness, dead: InstanceKey, epoch: int) -> RecoveryRecord:
    detection = await wait_dead_master(h, dead, codes=CO_MASTER_CODES)
    assert detection.finding.is_co_master
    return await h.pipeline.handle(detection, StaticFence(epoch))


def _audited(record: RecoveryRecord, h: Harness, hooks: Hooks, successor: InstanceKey, epoch: int) -> None:
    """The audit, the published master, the events and the hooks of a successful co-master failover."""
    assert record.kind is RecoveryKind.CO_MASTER and record.code == "DeadCoMaster"
    entry = record.to_orchestrator()
    assert entry["Type"] == "CoMasterRecovery" and entry["IsSuccessful"] is True
    assert entry["AnalysisEntry"]["Analysis"] == "DeadCoMaster" and entry["AnalysisEntry"]["IsCoMaster"]
    assert entry["SuccessorKey"] == {"Hostname": successor.host, "Port": successor.port}
    assert h.masters.written[-1].master == successor and h.masters.written[-1].epoch == epoch
    assert h.events.phases[0] == "registered" and h.events.phases[-1] == "completed"
    kinds = [kind for kind, _ in hooks.ran]
    assert kinds == [HookKind.PRE_FAILOVER, HookKind.POST_MASTER_FAILOVER, HookKind.POST_FAILOVER]
    for _, ctx in hooks.ran:
        assert ctx.instance_type == "co-master" and ctx.is_co_master and not ctx.is_master
    assert hooks.ran[-1][1].successor_host == successor.host
    assert hooks.ran[-1][1].successor_port == successor.port


async def test_writable_co_master_dies_the_other_takes_over(sandbox_factory: SandboxFactory) -> None:
    sb, h, hooks = await _ring(sandbox_factory)
    dead, other = sb.key("master1"), sb.key("master2")
    sb.kill("master1")

    record = await _fail_over(h, dead, 11)

    assert record.outcome is Outcome.SUCCEEDED, (record.reason, record.steps)
    assert record.successor == other
    # master2 is the one writable master, out of the ring (no replication left: RESET SLAVE ALL)
    assert await writable_masters(sb, NODES) == ["master2"]
    assert await sb.sql("master2", "SHOW SLAVE STATUS") == []
    # the dead co-master's replica moved under master2; master2's own replica stayed
    await wait_replicating_from(sb, "replica1_1", other)
    await wait_replicating_from(sb, "replica2_1", other)
    rows = await sb.sql("master2", f"SELECT note FROM {SANDBOX_DB}.marker WHERE id = 102")
    assert rows == [{"note": "before crash"}]
    _audited(record, h, hooks, other, 11)
    assert [r.key for r in record.lost] == [dead]
    pos = await write_rows(sb, "master2", 200, 1, "after failover")
    for name in ("replica1_1", "replica2_1"):
        await sb.wait_gtid(name, pos, within=30)

    # The dead co-master comes back writable and still configured to replicate from master2: the
    # leader keeps it read-only (never a second writer), as after a master failover.
    fencer = OldMasterFencer(h.pool, sb.topology_creds, h.events)
    fencer.watch(record)
    await sb.restart("master1")
    fenced = await fencer.check_once(StaticFence(11))
    assert [r.failed for r in fenced] == [dead]
    assert int((await sb.sql("master1", "SELECT @@read_only AS r"))[0]["r"]) == 1
    assert await writable_masters(sb, NODES) == ["master2"]


async def test_read_only_co_master_dies_the_writable_one_keeps_going(sandbox_factory: SandboxFactory) -> None:
    sb, h, hooks = await _ring(sandbox_factory)
    dead, writer = sb.key("master2"), sb.key("master1")
    sb.kill("master2")
    # writes go on on master1 while its partner is dead
    pos = await write_rows(sb, "master1", 300, 2, "partner dead")

    record = await _fail_over(h, dead, 12)

    assert record.outcome is Outcome.SUCCEEDED, (record.reason, record.steps)
    assert record.successor == writer  # the writable co-master must be the promoted one
    assert record.intermediate is None  # in one step: the writer is never repointed under a replica
    assert await writable_masters(sb, NODES) == ["master1"]
    assert await sb.sql("master1", "SHOW SLAVE STATUS") == []  # no longer replicating from master2
    await wait_replicating_from(sb, "replica2_1", writer)  # the dead one's replica moved under master1
    await wait_replicating_from(sb, "replica1_1", writer)
    for name in ("replica1_1", "replica2_1"):
        await sb.wait_gtid(name, pos, within=30)
    _audited(record, h, hooks, writer, 12)
