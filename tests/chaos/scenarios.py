"""Chaos scenarios and the one way every run goes: world up, observer on, fault, settle, judge.

A run (`run_scenario`): start a fresh three-DC world (tests/chaos/world.py), start the observer, let it
sample a healthy cluster, apply the scenario's fault (which records when the fault *ended*), wait until
the state has settled — the observer's latest round shows one writable master followed by everyone and
every reachable Consul naming it, and the failover expectation met — or `settle_within_s` passed, keep
observing a little longer (a flap after settling must show), then read Baton's recovery audit from the
API, stop everything and judge the rounds with tests/chaos/invariants.py. The scenario's expectation
(a failover, or none) is one more check; `no_recovery` scenarios also require that no master recovery
was even registered.

A scenario with `writer` (its world semi-sync: `SEMI_SYNC`) runs tests/chaos/writer.py in the observer
namespace from before the baseline to the end (`LedgerRun`): its ledger of acknowledged ids is compared
with the ids on the final master (`acked-writes-kept`), and semi-sync must have held on the master before
the fault and on the final master after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen

from libs.models import InstanceKey
from libs.sandbox import Sandbox
from libs.sandbox.spec import NodeOptions, NodeSpec, TopologySpec, chain
from tests.chaos.invariants import (
    Check,
    Observations,
    RecoveryOutcome,
    Round,
    Verdict,
    _consul_wrong,
    _topology_right,
    check,
    writable,
)
from tests.chaos.netlab import OBSERVER, NetLab
from tests.chaos.observer import load_rounds
from tests.chaos.world import CLUSTER_ALIAS, ROOT, World, WorldSpec
from tests.chaos.writer import TABLE, prepare_statements, read_ledger

FAILOVER_WITHIN_S = 60.0


@dataclass
class Run:
    world: World
    lab: NetLab
    old_master: str
    fault_started_at: float = 0.0
    fault_ended_at: float = 0.0

    @property
    def sb(self) -> Sandbox:
        return self.world.sandbox

    async def failed_over(self, dcs: tuple[str, ...] | None = None) -> None:
        """Wait until Consul in `dcs` (default: every DC) names a server other than the old master."""
        deadline = time.monotonic() + FAILOVER_WITHIN_S
        while True:
            values = await self.world.consul_values()
            wanted = [values[dc] for dc in (dcs or tuple(values))]
            if all(v not in (None, "", self.old_master) for v in wanted):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"no failover within {FAILOVER_WITHIN_S:g}s: Consul {values}")
            await asyncio.sleep(0.25)


Fault = Callable[[Run], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: Fault
    failover: bool | None  # a new master is expected (False: the old one must stay; None: either)
    what: str
    spec: WorldSpec = field(default_factory=WorldSpec)
    settle_within_s: float = 45.0
    writer: bool = False  # a semi-sync writer with a ledger (tests/chaos/writer.py) runs throughout
    no_recovery: bool = False  # no master recovery may even be registered (a stall is not a death)


@dataclass(frozen=True)
class RunResult:
    scenario: str
    verdict: Verdict
    converge_s: float | None
    rounds: int
    logs: Path

    @property
    def ok(self) -> bool:
        return self.verdict.ok


def _kill(proc: Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)


# --- faults -----------------------------------------------------------------------------------------
async def master_sigkill(run: Run) -> None:
    run.sb.kill(run.sb.master, signal.SIGKILL)
    run.fault_ended_at = time.monotonic()


async def master_sigstop(run: Run) -> None:
    """A hung master (SIGSTOP): fail over on the replicas' silence, then SIGCONT — the old master comes
    back writable and must be fenced read-only at once."""
    run.sb.kill(run.sb.master, signal.SIGSTOP)
    try:
        await run.failed_over()
    finally:
        run.sb.kill(run.sb.master, signal.SIGCONT)
    run.fault_ended_at = time.monotonic()


async def master_dc_isolated(run: Run) -> None:
    """dc1 (master, a replica, a NATS node, a Consul, a Baton of each kind) is cut off: dc2 and dc3 keep
    the NATS quorum and fail over; dc1's services can do nothing without a quorum; on rejoining, the old
    master is fenced read-only."""
    run.lab.isolate("dc1")
    try:
        await run.failed_over(("dc2", "dc3"))
    finally:
        run.lab.rejoin("dc1")
    run.fault_ended_at = time.monotonic()


async def replica_dc_isolated(run: Run) -> None:
    run.lab.isolate("dc3")
    await asyncio.sleep(8)
    run.lab.rejoin("dc3")
    run.fault_ended_at = time.monotonic()


async def replica_restart_hard(run: Run) -> None:
    run.sb.kill("replica2", signal.SIGKILL)
    await asyncio.sleep(4)
    await run.sb.restart("replica2")
    run.fault_ended_at = time.monotonic()


async def link_cut_between_replica_dcs(run: Run) -> None:
    run.lab.cut("dc2", "dc3")
    await asyncio.sleep(8)
    run.lab.mend("dc2", "dc3")
    run.fault_ended_at = time.monotonic()


async def nats_node_killed_then_master(run: Run) -> None:
    """One NATS node (dc3) crashes; the other two keep the quorum; then the master dies: Baton fails over
    on two NATS nodes, and dc3's kvpublisher (connected elsewhere) still writes dc3's Consul.

    The master dies once the recovery lease is held again: when the dead node led the lease bucket's
    stream, the lease lapses until JetStream elects a new stream leader (seconds; nats-server's raft
    timing), which is the NATS fault's own cost, measured by `nats-node-kill-during-failover` (to come)."""
    _kill(run.world.nats["dc3"], signal.SIGKILL)
    await run.world.leader_after(time.monotonic())
    run.sb.kill(run.sb.master, signal.SIGKILL)
    run.fault_ended_at = time.monotonic()


async def consul_dc_down_during_failover(run: Run) -> None:
    """dc3's Consul is down when the master dies; when it comes back (with its old data) it must be
    brought to the new master."""
    _kill(run.world.consul["dc3"], signal.SIGKILL)
    run.sb.kill(run.sb.master, signal.SIGKILL)
    await run.failed_over(("dc1", "dc2"))
    await asyncio.sleep(2)
    run.world.start_consul("dc3")
    run.fault_ended_at = time.monotonic()


async def leader_sigkill_mid_failover(run: Run) -> None:
    """The recovery leader's process is SIGKILLed just after the master: another DC's recovery takes
    the lease over (after the TTL) and finishes or redoes the failover."""
    dc = run.world.leader_dc()
    assert dc is not None, "no recovery leader elected"
    run.sb.kill(run.sb.master, signal.SIGKILL)
    await asyncio.sleep(0.05)
    _kill(run.world.services[(dc, "recovery")], signal.SIGKILL)
    run.fault_ended_at = time.monotonic()


async def flapping_master(run: Run) -> None:
    """The master dies and comes back three times, a few seconds apart: one failover (then the block
    holds), and each time the old master is back it is fenced read-only."""
    run.sb.kill(run.sb.master, signal.SIGKILL)
    await run.failed_over()
    for _ in range(3):
        await run.sb.restart(run.sb.master)
        await asyncio.sleep(3)
        run.sb.kill(run.sb.master, signal.SIGKILL)
        await asyncio.sleep(2)
    await run.sb.restart(run.sb.master)
    run.fault_ended_at = time.monotonic()


async def leader_sigstop_mid_failover(run: Run) -> None:
    """The recovery leader hangs (SIGSTOP) just after the master dies; the next leader fails over; then
    the old leader continues (SIGCONT): its epoch is stale, so it must not act on MySQL any more."""
    dc = run.world.leader_dc()
    assert dc is not None, "no recovery leader elected"
    leader = run.world.services[(dc, "recovery")]
    run.sb.kill(run.sb.master, signal.SIGKILL)
    await asyncio.sleep(0.05)
    _kill(leader, signal.SIGSTOP)
    try:
        await run.failed_over()
        await asyncio.sleep(2)
    finally:
        _kill(leader, signal.SIGCONT)
    run.fault_ended_at = time.monotonic()


async def nats_quorum_lost_and_regained(run: Run) -> None:
    """Two of three NATS nodes die, then the master: without a quorum Baton cannot act (no lease, no
    records); once the nodes are back, the failover happens."""
    for dc in ("dc2", "dc3"):
        _kill(run.world.nats[dc], signal.SIGKILL)
    await asyncio.sleep(1)
    run.sb.kill(run.sb.master, signal.SIGKILL)
    await asyncio.sleep(8)
    values = await run.world.consul_values()
    assert all(v in (None, "", run.old_master) for v in values.values()), (
        f"failed over without quorum: {values}"
    )
    for dc in ("dc2", "dc3"):
        run.world.start_nats(dc)
    await run.world.wait_nats_ready()  # the fault ends when JetStream has its quorum again
    run.fault_ended_at = time.monotonic()


async def intermediate_master_sigkill(run: Run) -> None:
    """A chain (`CHAIN`: master in dc1 -> intermediate in dc2 -> replicas in dc2 and dc3): the intermediate
    master dies; its replicas are moved under the master or a sibling (DeadIntermediateMaster), the
    master stays."""
    run.sb.kill("intermediate", signal.SIGKILL)
    run.fault_ended_at = time.monotonic()


async def nats_node_isolated(run: Run) -> None:
    """dc1's NATS node loses its cluster peers (its routes' address is cut both ways) for 10 s while
    MySQL, Consul and NATS clients flow: dc1's services, attached to a node without quorum, can do
    nothing; dc2 and dc3 carry on (dc1's probing shards move to them). The master is fine: no failover."""
    world, lab = run.world, run.lab
    others = [dc for dc in world.spec.dcs if dc != "dc1"]
    for dc in others:
        lab.block(dc, world.route_address("dc1"))
        lab.block("dc1", world.route_address(dc))
    await asyncio.sleep(10)
    for dc in others:
        lab.unblock(dc, world.route_address("dc1"))
        lab.unblock("dc1", world.route_address(dc))
    run.fault_ended_at = time.monotonic()


async def takeover_dc_partition(run: Run) -> None:
    """A graceful takeover (auto: the old master to replicate from the new one) towards dc2's replica,
    and dc1 (the old master's DC) cut off 0.2 s after it was asked, rejoined 10 s later. Whether the
    takeover finished, was undone or a failover followed, the end must be one writable master that
    everyone follows and every Consul names."""
    target = run.sb.key("replica2")
    asked = asyncio.create_task(
        run.world.api(f"/api/graceful-master-takeover-auto/{CLUSTER_ALIAS}/{target.host}/{target.port}")
    )
    await asyncio.sleep(0.2)
    run.lab.isolate("dc1")
    try:
        await asyncio.sleep(10)
    finally:
        run.lab.rejoin("dc1")
    run.fault_ended_at = time.monotonic()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asked, 30)


async def master_brief_stall(run: Run) -> None:
    """The master merely slow: SIGSTOP for 1.0 s, then SIGCONT. No failover, and no recovery registered
    (a detection may or may not be published; acting on it would be a false DeadMaster)."""
    run.sb.kill(run.sb.master, signal.SIGSTOP)
    try:
        await asyncio.sleep(1.0)
    finally:
        run.sb.kill(run.sb.master, signal.SIGCONT)
    run.fault_ended_at = time.monotonic()


async def replica_sigstop(run: Run) -> None:
    """dc2's replica hangs (SIGSTOP) for 8 s, then continues: nothing to recover, it catches up."""
    run.sb.kill("replica2", signal.SIGSTOP)
    try:
        await asyncio.sleep(8)
    finally:
        run.sb.kill("replica2", signal.SIGCONT)
    run.fault_ended_at = time.monotonic()


async def analyzers_sigkill(run: Run) -> None:
    """The master dies and 50 ms later so do the analyzers of dc1 and dc2: dc3's analyzer alone has to
    detect the DeadMaster."""
    run.sb.kill(run.sb.master, signal.SIGKILL)
    await asyncio.sleep(0.05)
    for dc in ("dc1", "dc2"):
        _kill(run.world.services[(dc, "analyzer")], signal.SIGKILL)
    run.fault_ended_at = time.monotonic()


async def kvpublisher_sigkill(run: Run) -> None:
    """dc3's kvpublisher dies, then the master; dc1 and dc2 fail over (their Consuls name the new master);
    5 s later dc3's kvpublisher starts again and must bring dc3's Consul to the new master. The fault
    ends at that restart."""
    _kill(run.world.services[("dc3", "kvpublisher")], signal.SIGKILL)
    run.sb.kill(run.sb.master, signal.SIGKILL)
    await run.failed_over(("dc1", "dc2"))
    await asyncio.sleep(5)
    run.world.start_service("dc3", "kvpublisher")
    run.fault_ended_at = time.monotonic()


async def nats_stream_leader_kill(run: Run) -> None:
    """The NATS node leading the recovery lease bucket's stream (JetStream's `cluster.leader` of
    KV_baton_leader) is SIGKILLed 50 ms after the master: the lease lapses until the two others elect
    a new stream leader, and the failover happens on them."""
    dc = await run.world.stream_leader_dc("KV_baton_leader")
    run.sb.kill(run.sb.master, signal.SIGKILL)
    await asyncio.sleep(0.05)
    _kill(run.world.nats[dc], signal.SIGKILL)
    run.fault_ended_at = time.monotonic()


# semi-sync on both sides everywhere (the sandbox switches it on once replication runs), and a master
# timeout of an hour: a commit is acknowledged by a replica or not at all, never silently async
_SEMI_SYNC = NodeOptions(semi_sync=True, extra_args=("--rpl-semi-sync-master-timeout=3600000",))
SEMI_SYNC = WorldSpec(
    topology=TopologySpec(
        shape="semisync",
        nodes=(
            NodeSpec(name="master", options=_SEMI_SYNC),
            *(NodeSpec(name=f"replica{i}", master="master", options=_SEMI_SYNC) for i in (1, 2, 3)),
        ),
    )
)


# libs/sandbox/spec.chain: master -> intermediate -> replica1, replica2; replica3 under the master
CHAIN = WorldSpec(
    mysql={"master": "dc1", "replica3": "dc1", "intermediate": "dc2", "replica1": "dc2", "replica2": "dc3"},
    topology=chain(),
)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("master-sigkill", master_sigkill, True, "master SIGKILL"),
        Scenario("master-sigstop", master_sigstop, True, "master hung (SIGSTOP), then SIGCONT"),
        Scenario("master-dc-isolated", master_dc_isolated, True, "the master's whole DC cut off, rejoined"),
        Scenario("replica-dc-isolated", replica_dc_isolated, False, "a replica's DC cut off for 8 s"),
        Scenario("replica-sigkill", replica_restart_hard, False, "a replica SIGKILLed, restarted 4 s later"),
        Scenario("dc2-dc3-cut", link_cut_between_replica_dcs, False, "the dc2-dc3 link cut for 8 s"),
        Scenario(
            "nats-node-kill", nats_node_killed_then_master, True, "a NATS node SIGKILLed, then the master"
        ),
        Scenario(
            "consul-dc-down", consul_dc_down_during_failover, True, "dc3's Consul down during a failover"
        ),
        Scenario(
            "leader-sigkill", leader_sigkill_mid_failover, True, "recovery leader SIGKILLed mid-failover"
        ),
        Scenario("flapping-master", flapping_master, True, "the master dies and returns 3 times"),
        Scenario("leader-sigstop", leader_sigstop_mid_failover, True, "recovery leader hung mid-failover"),
        Scenario(
            "nats-quorum-lost",
            nats_quorum_lost_and_regained,
            True,
            "two NATS nodes down, then the master; nodes back",
        ),
        Scenario(
            "intermediate-master-sigkill",
            intermediate_master_sigkill,
            False,
            "an intermediate master SIGKILLed (chain dc1 -> dc2 -> dc2, dc3)",
            spec=CHAIN,
        ),
        Scenario(
            "nats-node-isolated",
            nats_node_isolated,
            False,
            "dc1's NATS node cut from its peers for 10 s, MySQL flowing",
            spec=WorldSpec(nats_route_addresses=True),
        ),
        Scenario(
            "takeover-dc-partition",
            takeover_dc_partition,
            None,
            "dc1 cut off 0.2 s into a graceful takeover to dc2, rejoined 10 s later",
        ),
        Scenario(
            "semisync-writer-master-sigkill",
            master_sigkill,
            True,
            "master SIGKILL under a semi-sync writer (ledger of acknowledged ids)",
            spec=SEMI_SYNC,
            writer=True,
        ),
        Scenario(
            "master-brief-stall",
            master_brief_stall,
            False,
            "master SIGSTOP 1.0 s, then SIGCONT",
            no_recovery=True,
        ),
        Scenario(
            "replica-sigstop", replica_sigstop, False, "dc2's replica hung (SIGSTOP) 8 s", no_recovery=True
        ),
        Scenario(
            "analyzers-sigkill",
            analyzers_sigkill,
            True,
            "dc1's and dc2's analyzers SIGKILLed after the master",
        ),
        Scenario(
            "kvpublisher-sigkill",
            kvpublisher_sigkill,
            True,
            "dc3's kvpublisher SIGKILLed, then the master; it restarts 5 s after the failover",
        ),
        Scenario(
            "nats-stream-leader-kill",
            nats_stream_leader_kill,
            True,
            "the lease stream's NATS leader SIGKILLed 50 ms after the master",
        ),
    )
}


# --- the run ------------------------------------------------------------------------------------------
def _observer_argv(world: World, out: Path) -> list[str]:
    creds = world.sandbox.topology_creds
    argv = [sys.executable, "-m", "tests.chaos.observer", "--out", str(out)]
    argv += ["--user", creds.user, "--password", creds.password.get_secret_value()]
    argv += [a for name in world.spec.mysql for a in ("--server", world.server(name))]
    argv += [a for dc in world.spec.dcs for a in ("--consul", f"{dc}={world.consul_url(dc)}")]
    return argv


def _key(doc: object) -> str | None:
    if not isinstance(doc, dict) or not doc.get("Hostname"):
        return None
    return str(InstanceKey(host=str(doc["Hostname"]), port=int(doc["Port"])))


def recovery_outcomes(docs: list[dict[str, object]]) -> list[RecoveryOutcome]:
    """The API's recovery audit (newest first) as the checker's outcomes (oldest first)."""
    out = []
    for doc in reversed(docs):
        entry = doc.get("AnalysisEntry")
        failed = _key(entry.get("AnalyzedInstanceKey")) if isinstance(entry, dict) else None
        lost = doc.get("LostReplicas")
        out.append(
            RecoveryOutcome(
                successor=_key(doc.get("SuccessorKey")),
                lost_replicas=frozenset(k for k in (_key(x) for x in lost or []) if k)
                if isinstance(lost, list)
                else frozenset(),
                closed=not doc.get("IsActive"),
                failed=failed,
                of_master="IntermediateMaster"
                not in str(entry.get("Analysis") if isinstance(entry, dict) else ""),
            )
        )
    return out


WRITER_PASSWORD = "chaos-app-secret"


async def semi_sync_status(sb: Sandbox, name: str) -> dict[str, str]:
    rows = await sb.sql(name, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_%'")
    return {str(r["Variable_name"]): str(r["Value"]) for r in rows}


_SHOWN = ("Rpl_semi_sync_master_status", "Rpl_semi_sync_master_clients", "Rpl_semi_sync_master_yes_tx",
          "Rpl_semi_sync_master_no_tx")  # fmt: skip


def _semi_sync_held(status: dict[str, str]) -> bool:
    """The master side on, and no commit acknowledged to a client without a replica's ack."""
    return (
        status.get("Rpl_semi_sync_master_status") == "ON" and status.get("Rpl_semi_sync_master_no_tx") == "0"
    )


@dataclass
class LedgerRun:
    """A scenario's semi-sync writer (tests/chaos/writer.py, in the observer namespace) and what it
    proves: the ids it saw acknowledged, the ids on the final master, and that semi-sync held — on the
    master before the fault and on the successor after it, never a commit without a replica's ack
    (`Rpl_semi_sync_master_no_tx` 0), the writer acknowledged again after the fault."""

    path: Path
    min_acked: int = 20  # acknowledged before the baseline ends
    proc: Popen[bytes] | None = None
    acked: frozenset[int] = frozenset()
    final_master_ids: frozenset[int] | None = None
    checks: list[Check] = field(default_factory=list)
    last_before_fault: int = 0

    async def start(self, world: World, within: float = 60.0) -> None:
        sb = world.sandbox
        await sb.script(sb.master, prepare_statements(WRITER_PASSWORD))
        argv = [sys.executable, "-m", "tests.chaos.writer", "--ledger", str(self.path)]
        argv += ["--password", WRITER_PASSWORD]
        argv += [a for dc in world.spec.dcs for a in ("--consul", world.consul_url(dc))]
        with open(world.logs / "writer.log", "ab") as log:
            self.proc = world.lab.spawn(OBSERVER, argv, stdout=log, cwd=ROOT)
        deadline = time.monotonic() + within
        while len(read_ledger(self.path)) < self.min_acked:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                log_text = (world.logs / "writer.log").read_text(errors="replace")[-2000:]
                raise AssertionError(
                    f"the writer had no {self.min_acked} acks within {within:g}s:\n{log_text}"
                )
            await asyncio.sleep(0.2)

    async def before_fault(self, world: World) -> None:
        status = await semi_sync_status(world.sandbox, world.sandbox.master)
        self.last_before_fault = max(read_ledger(self.path))
        held = _semi_sync_held(status)
        self.checks.append(Check("semi-sync-before-fault", held, "" if held else f"master: {status}"))

    async def finish(self, world: World, rounds: list[Round]) -> None:
        if self.proc is not None:
            world.lab.stop(self.proc)
        self.acked = read_ledger(self.path)
        masters = writable(rounds[-1]) if rounds else []
        if len(masters) != 1:
            self.checks.append(Check("acked-writes-kept", False, f"no single master to read: {masters}"))
            return
        sb = world.sandbox
        name = sb.name_of(InstanceKey.parse(masters[0]))
        assert name is not None, masters
        rows = await sb.sql(name, f"SELECT id FROM {TABLE}")
        self.final_master_ids = frozenset(int(r["id"]) for r in rows)
        status = await semi_sync_status(sb, name)
        after = sum(1 for i in self.acked if i > self.last_before_fault)
        held = _semi_sync_held(status) and after > 0
        missing = len(self.acked - self.final_master_ids)
        shown = {k.removeprefix("Rpl_semi_sync_master_"): status.get(k) for k in _SHOWN}
        detail = f"{len(self.acked)} acked ({after} from the fault on), {missing} missing; {name}: {shown}"
        self.checks.append(Check("semi-sync-after-fault", held, detail))


async def run_scenario(lab: NetLab, base: Path, template: Path, scenario: Scenario) -> RunResult:
    world = World(lab, base, template, scenario.spec)
    rounds_file = base / "rounds.jsonl"
    ledger = LedgerRun(base / "ledger.txt") if scenario.writer else None
    await world.start()
    try:
        run = Run(world, lab, old_master=world.server(world.sandbox.master))
        with open(world.logs / "observer.log", "ab") as log:
            observer = lab.spawn(OBSERVER, _observer_argv(world, rounds_file), stdout=log, cwd=ROOT)
        await _first_round(rounds_file)  # a loaded machine may take seconds to start the observer
        if ledger is not None:
            await ledger.start(world)
        await asyncio.sleep(2)  # a healthy baseline
        if ledger is not None:
            await ledger.before_fault(world)
        run.fault_started_at = time.monotonic()
        await scenario.fault(run)
        await _settle(run, scenario, rounds_file)
        await asyncio.sleep(3)  # a flap right after settling must show in the final rounds
        if ledger is not None:
            await ledger.finish(world, load_rounds(rounds_file))
        docs = await world.recoveries(expect_some=scenario.failover is not False)
        (base / "audit.json").write_text(json.dumps(docs, indent=1, default=str))  # kept with the logs
        lab.stop(observer)
    finally:
        await world.stop()
    rounds = load_rounds(rounds_file)
    outcomes = recovery_outcomes(docs)
    verdict = check(
        Observations(
            rounds=rounds,
            fault_ended_at=run.fault_ended_at,
            recoveries=outcomes,
            acked_ids=ledger.acked if ledger is not None else frozenset(),
            final_master_ids=ledger.final_master_ids if ledger is not None else None,
        )
    )
    extra = [*ledger.checks] if ledger is not None else []
    if scenario.no_recovery:
        masters_recovered = [o.failed for o in outcomes if o.of_master]
        detail = f"recoveries of {masters_recovered}" if masters_recovered else ""
        extra.append(Check("no-master-recovery", not masters_recovered, detail))
    masters = writable(rounds[-1]) if rounds else []
    if scenario.failover is None:
        expectation, name = len(masters) == 1, "one-master-either-way"
    elif scenario.failover:
        expectation, name = bool(masters) and masters != [run.old_master], "failover-as-expected"
    else:
        expectation, name = masters == [run.old_master], "no-failover"
    detail = f"final writable {masters}; old master {run.old_master}"
    verdict = Verdict(
        (*verdict.checks, *extra, Check(name, expectation, detail)),
        verdict.converge_s,
    )
    return RunResult(scenario.name, verdict, verdict.converge_s, len(rounds), world.logs)


async def _first_round(rounds_file: Path, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not (rounds_file.exists() and load_rounds(rounds_file)):
        if time.monotonic() > deadline:
            raise AssertionError(f"the observer wrote no round within {within:g}s")
        await asyncio.sleep(0.2)


def settled(run: Run, scenario: Scenario, last: Round) -> bool:
    """The latest round shows the end state: the expected master alone writable, every other answering
    server (the old master aside, fenced or not back yet) following it, every reachable Consul naming it."""
    masters = writable(last)
    if len(masters) != 1:
        return False
    if scenario.failover is not None and (masters[0] != run.old_master) is not scenario.failover:
        return False
    ok, _, master = _topology_right(last, frozenset({run.old_master}))
    return ok and not _consul_wrong(last, master) and None not in last.consul.values()


async def _settle(run: Run, scenario: Scenario, rounds_file: Path) -> None:
    deadline = time.monotonic() + scenario.settle_within_s
    while time.monotonic() < deadline:
        rounds = load_rounds(rounds_file)
        if rounds and rounds[-1].at > run.fault_ended_at and settled(run, scenario, rounds[-1]):
            return
        await asyncio.sleep(0.5)
