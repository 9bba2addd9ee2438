"""The actions of gtid-errant-reset-master and gtid-errant-inject-empty (the recovery leader's, fenced).

They run as the one step of a refactoring operation (`libs/recovery/refactoring.py`: the cluster's lock,
a fresh look and the pure decision of `libs/topology/refactor.py` first, the audit event after); the
statements are `libs/mysql/errant_sql.py`'s, in the server's dialect.
"""

from __future__ import annotations

from libs.errors import ReplicationCommandError
from libs.mysql.errant_sql import (
    describe,
    kept_gtid_state,
    mariadb_injection,
    mysql_injections,
    reset_master_statements,
)
from libs.mysql.fenced import FencedSession
from libs.mysql.replication import (
    applied_gtid_position,
    binlog_gtid_position,
    replication_status,
    start_replication,
    stop_replication,
)
from libs.topology.errant_inject import still_injectable
from libs.topology.gtid import GtidSet, parse_mariadb


def injection_count(errant: str, *, mariadb: bool) -> int:
    """How many transactions gtid-errant-inject-empty logs for `errant` (orchestrator's count)."""
    return len(parse_mariadb(errant)) if mariadb else GtidSet.parse(errant).count()


async def reset_master(s: FencedSession, errant: str) -> str:
    """RESET MASTER on the replica, its GTID state kept minus the errant set; replication stopped
    around it (and started again even when the reset failed, as orchestrator does)."""
    dialect = await s.dialect()
    status = await replication_status(s)
    if status is not None:
        await stop_replication(s)
    try:
        executed = "" if dialect.is_mariadb else await binlog_gtid_position(s)
        slave_pos = await applied_gtid_position(s) if dialect.is_mariadb else ""
        kept = kept_gtid_state(dialect, executed=executed, slave_pos=slave_pos, errant=errant)
        statements = reset_master_statements(dialect, kept)
        for sql, params in statements:
            await s.write(sql, params or None, what=sql.split(" %s")[0])
    finally:
        if status is not None:
            await start_replication(s)
    return f"errant {errant} removed: {describe(statements)}"


async def inject_empty(s: FencedSession, errant: str, replica: FencedSession) -> str:
    """Log each errant GTID of `replica` on the master `s` as a transaction that changes nothing."""
    dialect = await s.dialect()
    if not dialect.is_mariadb:
        sequences = mysql_injections(errant)
        for sequence in sequences:
            await s.write_sequence(sequence, what=describe(sequence[:1]))
        return f"{len(sequences)} empty transactions injected: {errant}"
    gtids = list(parse_mariadb(errant))
    moved_on = still_injectable(await binlog_gtid_position(s), await applied_gtid_position(replica), gtids)
    if moved_on:
        raise ReplicationCommandError(f"gtid-errant-inject-empty on {s.key}: {moved_on}")
    for gtid in gtids:
        sql, params = mariadb_injection(gtid)
        await s.write(sql, params or None, what=f"inject {gtid}")
    position = await binlog_gtid_position(s)
    return f"{len(gtids)} no-op transactions logged under {errant}; {s.key} at {position}"
