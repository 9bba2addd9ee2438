"""A hung master is dead once its replicas stop hearing from it, not a slave_net_timeout later; a master
that is merely slow (it answers, its heartbeats flow) is never dead."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

from nats.aio.msg import Msg

from libs.bus.subjects import snapshot_subject
from libs.models import InstanceKey, InstanceSnapshot, utcnow
from libs.sandbox import SANDBOX_DB, Sandbox
from libs.sandbox.spec import master_replicas
from libs.topology.codes import Analysis
from libs.topology.detection import Detection, DetectionState
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.analyzer.conftest import Env
from tests.integration.analyzer.harness import stored_detections, wait_for
from tests.integration.analyzer.test_failures import stored

A = Analysis
DEAD_CODES = {
    A.DEAD_MASTER,
    A.DEAD_MASTER_AND_SOME_REPLICAS,
    A.DEAD_MASTER_AND_REPLICAS,
    A.DEAD_MASTER_WITHOUT_REPLICAS,
}


class MasterProbes:
    """Every snapshot of one instance as published (core NATS), to report what the probes saw."""

    def __init__(self) -> None:
        self.snaps: list[InstanceSnapshot] = []

    async def start(self, env: Env, key: InstanceKey) -> MasterProbes:
        async def on(msg: Msg) -> None:
            self.snaps.append(InstanceSnapshot.model_validate_json(msg.data))

        await env.bus.nc.subscribe(snapshot_subject(key), cb=on)
        return self

    def summary(self) -> str:
        failed = [s for s in self.snaps if not s.reachable]
        slowest = max((s.latency_ms for s in self.snaps if s.reachable), default=0.0)
        return f"{len(self.snaps)} probes, {len(failed)} failed, slowest answer {slowest:.0f} ms"


async def _watched(env: Env, sandbox_factory: SandboxFactory, replicas: int) -> tuple[Sandbox, MasterProbes]:
    """1 master + `replicas` (slave_net_timeout 60, heartbeat 1 s), probed and analysed, settled and
    healthy; the master's snapshots recorded from now on."""
    sb = await sandbox_factory(master_replicas(replicas), slave_net_timeout=60)
    await env.probe(sb)
    await env.analyzer()
    await asyncio.sleep(2.5)
    assert await stored_detections(env.bus) == [], "a healthy topology has no detection"
    return sb, await MasterProbes().start(env, sb.key("master"))


async def _never_failed_over(env: Env, sb: Sandbox, probes: MasterProbes, what: str, written: int) -> None:
    """Once replication caught up: no Dead* detection of the master, nothing that triggers a recovery."""
    (row,) = await sb.sql("master", "SELECT @@gtid_binlog_pos AS p")
    for replica in ("replica1", "replica2"):
        await sb.wait_gtid(replica, row["p"], within=10)
    await asyncio.sleep(1.0)  # anything decided during the test has been published
    published = await stored_detections(env.bus)
    master = sb.key("master")
    codes = [(d.finding.code.value, d.state.value) for d in published if d.finding.instance == master]
    print(f"\n{what}: {written} writes; {probes.summary()}; detections about it: {codes}")
    assert written > 5, "the writer ran"
    assert not [d for d in published if d.finding.code in DEAD_CODES], published
    assert not [d for d in published if d.finding.triggers_recovery], published


async def test_hung_master_is_dead_from_its_replicas_heartbeats(
    env: Env, sandbox_factory: SandboxFactory
) -> None:
    # slave_net_timeout 60: the replicas' IO threads keep saying Yes for a minute; heartbeat 1 s.
    sb, _ = await _watched(env, sandbox_factory, 3)
    master = sb.key("master")
    stopped_at = utcnow()
    started = time.monotonic()
    sb.kill("master", signal.SIGSTOP)
    try:

        async def dead() -> list[Detection]:
            return await stored(env.bus, A.DEAD_MASTER, DetectionState.ACTIVE, master)

        (detection,) = await wait_for(dead, 20, "DeadMaster of the hung master")
        elapsed = time.monotonic() - started
        io = [(await sb.sql(r, "SHOW SLAVE STATUS"))[0]["Slave_IO_Running"] for r in ("replica1", "replica2")]
        f = detection.finding
        print(f"\nhung master (slave_net_timeout 60, heartbeat 1 s): DeadMaster {elapsed:.2f}s: {f.reason}")
        assert elapsed < 15, f"DeadMaster {elapsed:.1f}s after SIGSTOP"
        assert (f.valid_replicas, f.connected_replicas, f.silent_replicas) == (3, 0, 3)
        assert "3/3 replicas received no heartbeat for" in f.reason and "(period 1s)" in f.reason
        assert f.triggers_recovery
        assert detection.first_evidence_at >= stopped_at
        assert io == ["Yes", "Yes"], "the IO threads still trust the master: only the heartbeats told"
    finally:
        sb.kill("master", signal.SIGCONT)


async def _load(sb: Sandbox, sleepers: int, burners: int, seconds: int, stop: asyncio.Event) -> int:
    """Hold `sleepers` server threads in SLEEP, burn CPU on `burners`, and write 4 rows a second (so
    replication carries events, not only heartbeats). Returns the number of rows written."""

    async def sleeper() -> None:
        with contextlib.suppress(Exception):
            await sb.sql("master", f"SELECT SLEEP({seconds})")

    async def burner() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                await sb.sql("master", "SELECT BENCHMARK(3000000, MD5(RAND()))")

    tasks = [asyncio.create_task(sleeper()) for _ in range(sleepers)]
    tasks += [asyncio.create_task(burner()) for _ in range(burners)]
    written = 0
    try:
        while not stop.is_set():
            await sb.sql("master", f"INSERT INTO {SANDBOX_DB}.marker VALUES ({5000 + written}, 'load')")
            written += 1
            await asyncio.sleep(0.25)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    return written


async def test_a_master_under_heavy_load_is_never_failed_over(
    env: Env, sandbox_factory: SandboxFactory
) -> None:
    sb, probes = await _watched(env, sandbox_factory, 2)
    stop = asyncio.Event()
    load = asyncio.create_task(_load(sb, sleepers=80, burners=1, seconds=9, stop=stop))
    await asyncio.sleep(8)  # well over 3 heartbeat periods and the 3 s stale_after
    stop.set()
    await _never_failed_over(env, sb, probes, "loaded master", await load)


async def test_a_stuttering_master_whose_heartbeats_flow_is_not_dead(
    env: Env, sandbox_factory: SandboxFactory
) -> None:
    """Stopped 1.3 s, running 0.4 s, for 9 s: probes sent into a stop outlive the 1 s read timeout, so
    Baton may find it unreachable, but the replicas hear from it every cycle (events and heartbeats),
    never for 3 heartbeat periods of silence: never dead."""
    sb, probes = await _watched(env, sandbox_factory, 2)
    stop = asyncio.Event()
    load = asyncio.create_task(_load(sb, sleepers=0, burners=0, seconds=0, stop=stop))
    deadline = time.monotonic() + 9
    try:
        while time.monotonic() < deadline:
            sb.kill("master", signal.SIGSTOP)
            await asyncio.sleep(1.3)
            sb.kill("master", signal.SIGCONT)
            await asyncio.sleep(0.4)
    finally:
        sb.kill("master", signal.SIGCONT)
    stop.set()
    await _never_failed_over(env, sb, probes, "stuttering master", await load)
