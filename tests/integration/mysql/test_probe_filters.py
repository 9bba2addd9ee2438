"""A replica's replication filters, as the probe of a real MariaDB reads them (VerifyReplicationFilters)."""

from __future__ import annotations

from libs.mysql.connection import ConnectionPool
from libs.mysql.probe import probe
from libs.sandbox import SANDBOX_DB
from libs.sandbox.spec import master_replicas
from tests.fixtures.sandbox import SandboxFactory


async def test_probe_reads_the_replication_filters(sandbox_factory: SandboxFactory) -> None:
    sb = await sandbox_factory(master_replicas(1))
    creds = sb.topology_creds
    pool = ConnectionPool()
    try:
        before = await probe(sb.key("replica1"), creds, pool=pool)
        assert before.replication is not None and before.replication.replication_filters == ""
        await sb.sql("replica1", "STOP SLAVE")
        await sb.sql("replica1", f"SET GLOBAL replicate_do_db = '{SANDBOX_DB}'")
        await sb.sql("replica1", "SET GLOBAL replicate_wild_ignore_table = 'tmp.%'")
        await sb.sql("replica1", "START SLAVE")
        after = await probe(sb.key("replica1"), creds, pool=pool)
    finally:
        pool.close()
    assert after.replication is not None
    expected = f"Replicate_Do_DB={SANDBOX_DB}; Replicate_Wild_Ignore_Table=tmp.%"
    assert after.replication.replication_filters == expected
