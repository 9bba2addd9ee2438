"""A crashed master: one DeadMaster detection from two analyzers, hooks once, no re-announce after an
analyzer restart, and a `cleared` detection once the master is back."""

from __future__ import annotations

import asyncio

from libs.models import utcnow
from libs.models.events import Event
from libs.sandbox.spec import master_replicas
from libs.topology.codes import Analysis
from libs.topology.detection import Detection, DetectionState
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.analyzer.conftest import Env
from tests.integration.analyzer.harness import stored_audit, stored_detections, use_real_prober, wait_for

DEAD = Analysis.DEAD_MASTER


async def test_killed_master_two_analyzers_restart_and_clear(
    env: Env, sandbox_factory: SandboxFactory, tmp_path: object
) -> None:
    sb = await sandbox_factory(master_replicas(2))
    hook_log = f"{tmp_path}/hooks.log"
    hooks = {
        "OnFailureDetectionProcesses": [
            f"echo {{failureType}} {{failedPort}} {{countReplicas}} >> {hook_log}"
        ]
    }
    await env.probe(sb)
    a = await env.analyzer("analyzer-a", **hooks)
    b = await env.analyzer("analyzer-b", **hooks)
    await asyncio.sleep(2.5)
    assert await stored_detections(env.bus) == [], "a healthy topology has no detection"

    master = sb.key("master")
    killed_at = utcnow()
    sb.kill("master")

    async def dead_master_stored() -> list[Detection]:
        return [
            d
            for d in await stored_detections(env.bus)
            if d.finding.code is DEAD and d.state is DetectionState.ACTIVE
        ]

    (dead,) = await wait_for(dead_master_stored, 6, "a stored DeadMaster detection")
    assert dead.finding.instance == master
    assert dead.finding.replica_count == 2
    assert dead.finding.valid_replicas == 2
    assert dead.finding.connected_replicas == 0
    latency = (dead.detected_at - killed_at).total_seconds()
    # The real prober's liveness watch + probe-now: ~20 ms here (bench/detection_latency.py); the
    # test-only loop has no watch, so the next 1 s poll + probe-now.
    assert latency < (1.0 if use_real_prober() else 3.0), f"DeadMaster {latency:.3f}s after the kill"
    assert dead.first_evidence_at >= killed_at
    assert dead.facts is not None and dead.facts.cluster_instances == 3

    await asyncio.sleep(1.5)  # both analyzers have long decided
    assert len(await dead_master_stored()) == 1, "two analyzers, one stored detection"
    firsts = [o for an in (a, b) for o in an.outcomes if o.detection.finding.code is DEAD and o.first]
    assert len([o for o in firsts if o.detection.state is DetectionState.ACTIVE]) == 1
    for analyzer in (a, b):
        assert analyzer.book.open_for((dead.finding.cluster, master, DEAD)) is not None

    async def hooks_audited() -> list[Event]:
        return await stored_audit(env.bus, "baton.audit.hooks")

    audits = await wait_for(hooks_audited, 5, "the hooks' audit event")
    (audit,) = [e for e in audits if e.data["incident"] == dead.incident]
    assert audit.data["failed"] is False
    assert audit.data["results"][0]["exit_code"] == 0
    with open(hook_log) as fh:
        lines = [ln for ln in fh.read().splitlines() if ln.startswith("DeadMaster")]
    assert lines == [f"DeadMaster {master.port} 2"], "OnFailureDetectionProcesses ran once"

    # A restarted analyzer rebuilds the open incident from the stream and does not re-announce it.
    before = len(await stored_detections(env.bus))
    await a.stop()
    env.analyzers.remove(a)
    c = await env.analyzer("analyzer-a", **hooks)
    assert c.book.open_for((dead.finding.cluster, master, DEAD)) is not None
    await asyncio.sleep(2.5)
    assert len(await stored_detections(env.bus)) == before
    assert not [o for o in c.outcomes if o.detection.state is DetectionState.ACTIVE]

    # The master comes back: the replicas reconnect, and the incident is cleared once.
    await sb.restart("master")
    await sb.wait_replicating("replica1")
    await sb.wait_replicating("replica2")

    async def cleared() -> list[Detection]:
        return [
            d
            for d in await stored_detections(env.bus)
            if d.incident == dead.incident and d.state is DetectionState.CLEARED
        ]

    await wait_for(cleared, 8, "the DeadMaster incident cleared")
    await asyncio.sleep(1.5)
    assert len(await cleared()) == 1
    for analyzer in (b, c):
        assert analyzer.book.open_detections() == []
    with open(hook_log) as fh:
        # (While the replicas reconnect, AllMasterReplicasNotReplicating may come and go: its own hook.)
        assert [ln for ln in fh.read().splitlines() if ln.startswith("DeadMaster")] == lines
