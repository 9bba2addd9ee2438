"""LockedSemiSyncMasterHypothesis → LockedSemiSyncMaster without waiting for the next poll: the analyzer
re-probes the master (orchestrator's emergent operation), so the lock is confirmed once its binary log
coordinates have been still for ReasonableLockedSemiSyncMasterSeconds."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from nats.aio.msg import Msg

from libs.bus.subjects import snapshot_subject
from libs.sandbox.spec import semisync
from libs.topology.codes import Analysis
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.analyzer.conftest import Env
from tests.integration.analyzer.harness import stored_detections, wait_for
from tests.integration.recovery.writer import Writer, prepare

POLL_S = 6  # the regular poll: far longer than the confirmation takes with the re-probes
LOCKED_AFTER_S = 1  # ReasonableLockedSemiSyncMasterSeconds


@pytest.mark.timeout(120)
async def test_a_hypothesis_is_confirmed_by_re_probes_not_the_next_poll(
    env: Env, sandbox_factory: SandboxFactory
) -> None:
    sb = await sandbox_factory(semisync(1))
    master = sb.key("master")
    await prepare(sb, "master")
    await sb.sql("master", "SET GLOBAL rpl_semi_sync_master_timeout = 600000")  # never fall back to async
    await env.probe(sb, poll_s=POLL_S)
    await env.analyzer(ReasonableLockedSemiSyncMasterSeconds=LOCKED_AFTER_S, InstancePollSeconds=POLL_S)
    seen: list[float] = []  # arrival of each of the master's snapshots

    async def on(_msg: Msg) -> None:
        seen.append(time.monotonic())

    await env.bus.nc.subscribe(snapshot_subject(master), cb=on)
    writer = Writer([master]).start()
    await writer.wait_acked(3, within=20)
    await sb.sql("replica1", "STOP SLAVE IO_THREAD")  # the only semi-sync replica stops acknowledging
    try:

        async def found(code: Analysis) -> float | None:
            detections = await stored_detections(env.bus)
            hit = [d for d in detections if d.finding.instance == master and d.finding.code is code]
            return time.monotonic() if hit else None

        hypothesis_at = await wait_for(
            lambda: found(Analysis.LOCKED_SEMI_SYNC_MASTER_HYPOTHESIS), 3 * POLL_S, "the hypothesis", 0.02
        )
        locked_at = await wait_for(
            lambda: found(Analysis.LOCKED_SEMI_SYNC_MASTER), 3 * POLL_S, "the lock", 0.02
        )
        between = [t for t in seen if hypothesis_at - 0.5 <= t <= locked_at]
        # the regular poll alone would give one snapshot POLL_S later; the re-probes give several sooner
        assert locked_at - hypothesis_at < POLL_S - 1.0, (locked_at - hypothesis_at, len(between))
        assert len(between) >= 3, between
        acked = len(writer.acked)
        await asyncio.sleep(0.5)
        assert len(writer.acked) == acked, "the writer waits for an acknowledgement nobody sends"
    finally:
        await sb.sql("replica1", "START SLAVE IO_THREAD")
        writer.stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(writer.finish(), 10)
