"""PostponeReplicaRecoveryOnLagMinutes on real MariaDB: a replica delayed by an hour (MASTER_DELAY=3600)
is repointed only after the successor was promoted, straight under it; everything else as usual."""

from __future__ import annotations

from libs.recovery.audit import Outcome
from libs.recovery.fence import StaticFence
from libs.sandbox.spec import delayed
from libs.topology.plan import CandidateRules
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.recovery.harness import (
    build,
    probe_all,
    wait_dead_master,
    wait_replicating_from,
    writable_masters,
)


async def test_a_delayed_replica_is_repointed_after_the_promotion(sandbox_factory: SandboxFactory) -> None:
    sb = await sandbox_factory(delayed(2, 3600))
    h = build(sb, rules=CandidateRules(postpone_replica_recovery_on_lag_minutes=30))
    h.known.add(await probe_all(sb, h.pool))
    sb.kill("master")
    detection = await wait_dead_master(h, sb.key("master"))

    record = await h.pipeline.handle(detection, StaticFence(4))

    assert record.outcome is Outcome.SUCCEEDED, (record.reason, record.steps)
    assert record.successor is not None and record.plan is not None
    new = sb.name_of(record.successor)
    assert new in ("replica1", "replica2") and await writable_masters(sb, sb.names) == [new]
    assert record.plan.postponed == (sb.key("delayed"),)
    names = [s.name for s in record.steps]
    promote, later = (
        names.index(f"promote:{record.successor}"),
        names.index(f"repoint-postponed:{record.successor}"),
    )
    assert promote < later, names
    early = [s.detail for s in record.steps[:promote] if s.name.startswith("repoint")]
    assert early and all(str(sb.key("delayed")) not in d for d in early), early
    assert str(sb.key("delayed")) in record.steps[later].detail
    for other in ("delayed", *({"replica1", "replica2"} - {new})):
        await wait_replicating_from(sb, other, record.successor)
    [status] = await sb.sql("delayed", "SHOW SLAVE STATUS")
    assert int(status["SQL_Delay"]) == 3600  # its delay is kept
