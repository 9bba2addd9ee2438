"""MasterFailoverDetachReplicaMasterHost on real MariaDB: after a failover with
ApplyMySQLPromotionAfterMasterFailover off (no RESET SLAVE ALL), the promoted server's MASTER_HOST is
detached (`//host`) so that it can never replicate from the old master again; without the key it still
points at the old master."""

from __future__ import annotations

import pytest

from libs.recovery.audit import Outcome
from libs.recovery.fence import StaticFence
from libs.recovery.steps import ExecutionOptions
from libs.sandbox.spec import master_replicas
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.recovery.harness import build, probe_all, wait_dead_master, write_rows


@pytest.mark.parametrize("detach", [True, False], ids=["detach", "no-detach"])
async def test_promoted_server_master_host_is_detached(sandbox_factory: SandboxFactory, detach: bool) -> None:
    sb = await sandbox_factory(master_replicas(2))
    options = ExecutionOptions(lost_downtime_minutes=0, apply_promotion=False, detach_master_host=detach)
    h = build(sb, options=options)
    master = sb.key("master")
    pos = await write_rows(sb, "master", 100, 2, "before crash")
    for r in ("replica1", "replica2"):
        await sb.wait_gtid(r, pos)
    h.known.add(await probe_all(sb, h.pool))
    sb.kill("master")
    detection = await wait_dead_master(h, master)

    record = await h.pipeline.handle(detection, StaticFence(3))

    assert record.outcome is Outcome.SUCCEEDED, (record.reason, record.steps)
    assert record.successor is not None
    new = sb.name_of(record.successor)
    assert new is not None
    [status] = await sb.sql(new, "SHOW SLAVE STATUS")
    assert status["Master_Host"] == ("//127.0.0.1" if detach else "127.0.0.1")
    assert status["Slave_IO_Running"] == "No" and status["Slave_SQL_Running"] == "No"
    promote = next(s for s in record.steps if s.name.startswith("promote:"))
    assert ("MasterFailoverDetachReplicaMasterHost" in str(promote)) is detach
