"""The statements that remove errant transactions, per dialect (pure: no I/O, unit-tested per version).

- `gtid-errant-reset-master` on the replica, replication stopped around it: `RESET MASTER` (MySQL 8.2+:
  `RESET BINARY LOGS AND GTIDS`, the only spelling left in 8.4), then the GTID state restored without
  the errant set. MySQL: `gtid_purged` = `gtid_executed` minus the errant set (orchestrator asks the
  server's `GTID_SUBTRACT()`; Baton subtracts with `libs.topology.gtid`, the same arithmetic its errant
  check uses). MariaDB: `gtid_binlog_state` = `gtid_slave_pos`, what the replica replicated, which by
  construction holds none of its own transactions.
- `gtid-errant-inject-empty` on the cluster's master. MySQL: per errant GTID `SET GTID_NEXT = '<gtid>'`,
  `BEGIN`, `COMMIT`, then `SET GTID_NEXT = 'AUTOMATIC'`, one sequence on one session. MariaDB logs no
  empty transaction (a `BEGIN; COMMIT` writes nothing, whatever `gtid_seq_no` says), so its carrier is
  a statement MariaDB does log and that changes nothing anywhere: `FLUSH TABLES` of a table no server
  has (it needs only RELOAD, which the topology user holds; `DROP TABLE IF EXISTS` would need DROP),
  logged under the errant GTID by `SET STATEMENT gtid_domain_id=…, server_id=…, gtid_seq_no=… FOR …`
  (statement-scoped: no session variable outlives it). When MariaDB may do so is
  decided in `libs/topology/errant_inject.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from libs.mysql.dialect import Dialect
from libs.topology.gtid import GtidSet, MariadbGtid

Statement = tuple[str, tuple[Any, ...]]

# A table no server has: flushing it closes nothing. `mysql` exists on every server, so the statement
# means the same everywhere (an unknown schema would do too, but this reads as what it is).
PLACEHOLDER_TABLE = "`mysql`.`baton_errant_gtid_placeholder`"


def reset_binary_logs(dialect: Dialect) -> str:
    """`RESET MASTER`, or `RESET BINARY LOGS AND GTIDS` on MySQL 8.2+ (RESET MASTER is gone in 8.4)."""
    if not dialect.is_mariadb and dialect.version >= (8, 2, 0):
        return "RESET BINARY LOGS AND GTIDS"
    return "RESET MASTER"


def kept_gtid_state(dialect: Dialect, *, executed: str, slave_pos: str, errant: str) -> str:
    """The GTID state the replica keeps after the reset: MySQL `executed - errant`, MariaDB `slave_pos`."""
    if dialect.is_mariadb:
        return slave_pos
    return str(GtidSet.parse(executed).subtract(GtidSet.parse(errant)))


def reset_master_statements(dialect: Dialect, kept: str) -> list[Statement]:
    """The statements of gtid-errant-reset-master once replication is stopped (see the module docstring)."""
    reset: Statement = (reset_binary_logs(dialect), ())
    if dialect.is_mariadb:
        return [reset, ("SET GLOBAL gtid_binlog_state = %s", (kept,))]
    if not kept:
        return [reset]
    return [reset, ("SET GLOBAL gtid_purged = %s", (kept,))]


def mysql_injections(errant: str) -> list[list[Statement]]:
    """One statement sequence per errant GTID (MySQL), each to run on one session."""
    out: list[list[Statement]] = []
    for source, intervals in GtidSet.parse(errant).as_dict().items():
        for first, last in intervals:
            for n in range(first, last + 1):
                out.append(
                    [
                        ("SET GTID_NEXT = %s", (f"{source}:{n}",)),
                        ("BEGIN", ()),
                        ("COMMIT", ()),
                        ("SET GTID_NEXT = 'AUTOMATIC'", ()),
                    ]
                )
    return out


def mariadb_injection(gtid: MariadbGtid) -> Statement:
    """One statement that MariaDB logs under `gtid` and that changes nothing (numbers are ints)."""
    domain, server_id, seq = (int(v) for v in gtid)
    sql = (
        f"SET STATEMENT gtid_domain_id={domain}, server_id={server_id}, gtid_seq_no={seq} "
        f"FOR FLUSH TABLES {PLACEHOLDER_TABLE}"
    )
    return sql, ()


def describe(statements: Sequence[Statement]) -> str:
    """The statements as one line for a step's detail (values shown: GTIDs are no secret)."""
    return "; ".join(sql.replace("%s", repr(params[0])) if params else sql for sql, params in statements)
