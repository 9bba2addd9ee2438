"""No acknowledged commit is lost: semi-sync MariaDB, a client writing as fast as it can, SIGKILL of the
master mid-stream, failover by the pipeline; every insert the client saw acknowledged must be on the new
master. Repeated `RUNS` times on a fresh 3-node sandbox each (semi-sync makes the master wait for one
replica to have *received* each transaction, not applied it: in some runs the replicas' SQL threads are
stopped, so the acknowledged rows are only in relay logs and the failover has to drain them)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from libs.recovery.audit import Outcome
from libs.recovery.fence import StaticFence
from libs.sandbox import SANDBOX_DB, Sandbox
from libs.sandbox.spec import semisync
from tests.integration.recovery.harness import build, probe_all, wait_dead_master
from tests.integration.recovery.writer import Writer, prepare

RUNS = 8
STOPPED_SQL = {0: (), 1: ("replica1",), 2: ("replica1", "replica2")}  # by run % 3


async def semi_sync_status(sb: Sandbox, name: str) -> dict[str, str]:
    rows = await sb.sql(name, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_%'")
    return {str(r["Variable_name"]): str(r["Value"]) for r in rows}


async def one_run(base: Path, template: Path, run: int) -> tuple[int, int, float]:
    """One failover; returns (acknowledged inserts, missing on the new master, failover seconds)."""
    sb = Sandbox(base / f"sb{run}", semisync(2), template_dir=template)
    await sb.start()
    h = None
    try:
        await prepare(sb, "master")
        h = build(sb)
        master = sb.key("master")
        for name in STOPPED_SQL[run % 3]:
            await sb.sql(name, "STOP SLAVE SQL_THREAD")
        h.known.add(await probe_all(sb, h.pool))
        writer = Writer([master]).start()
        try:
            await writer.wait_acked(40 + 9 * run, within=20)
            status = await semi_sync_status(sb, "master")
            assert status["Rpl_semi_sync_master_status"] == "ON", status
            assert status["Rpl_semi_sync_master_no_tx"] == "0", status  # every commit was acknowledged
            sb.kill("master")  # mid-stream: the writer is inserting
        finally:
            await writer.finish()
        acked = list(writer.acked)
        detection = await wait_dead_master(h, master)
        started = time.monotonic()
        record = await h.pipeline.handle(detection, StaticFence(1))
        took = time.monotonic() - started
        assert record.outcome is Outcome.SUCCEEDED, (run, record.reason)
        assert record.successor is not None
        new = sb.name_of(record.successor)
        assert new is not None
        rows = await sb.sql(new, f"SELECT id FROM {SANDBOX_DB}.counter")
        present = {int(r["id"]) for r in rows}
        return len(acked), len(set(acked) - present), took
    finally:
        if h is not None:
            h.pool.close()
        await sb.stop()


@pytest.mark.timeout(300)
async def test_no_acknowledged_commit_is_lost_across_semi_sync_failovers(
    tmp_path: Path, sandbox_template: Path
) -> None:
    results = []
    for run in range(RUNS):
        results.append(await one_run(tmp_path, sandbox_template, run))
    missing = [(run, m) for run, (_, m, _) in enumerate(results) if m]
    acked = sum(a for a, _, _ in results)
    assert missing == [], f"acknowledged commits missing on the new master (run, count): {missing}"
    assert acked >= RUNS * 40
    slowest = max(t for _, _, t in results)
    assert slowest < 15, results  # bounded: the drain waits at most InstanceBulkOperationsWaitTimeoutSeconds
