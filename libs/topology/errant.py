"""Errant transactions: what a replica executed that its master never had, on both flavors.

orchestrator computes this with MySQL's `gtid_subtract()` only; Baton does the arithmetic itself
(`gtid.py`), so MariaDB's `domain-server-seq` positions get the same check.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from libs.models import Flavor, InstanceKey, InstanceSnapshot
from libs.topology.gtid import mariadb_errant, mysql_errant, raw_mariadb_errant, raw_mysql_errant


class ErrantGtid(BaseModel):
    """A replica's transactions its master never had (MySQL set text, or MariaDB `d-s-n` list)."""

    model_config = ConfigDict(frozen=True)

    replica: InstanceKey
    gtids: str


def errant_gtids(
    replica: InstanceSnapshot, master: InstanceSnapshot, chain: Sequence[InstanceSnapshot]
) -> str:
    """The replica's errant transactions against its master, "" if none or if it cannot be judged.

    `chain` is the master and the servers above it: transactions they originated reach the replica only
    through the master, so a difference there means the two snapshots were taken at different moments.
    MySQL compares `gtid_executed`; MariaDB compares the replica's `gtid_binlog_pos` with the master's
    (plus its `gtid_current_pos` when the master does not log replicated events).
    """
    if replica.flavor is not master.flavor:
        return ""
    if replica.flavor is Flavor.MARIADB:
        master_pos = _mariadb_master_pos(master)
        if not replica.gtid_binlog_pos or not master_pos:
            return ""
        own = replica.server_id
        ids = {s.server_id for s in chain if s.server_id is not None and s.server_id != own} if chain else ()
        return ",".join(mariadb_errant(replica.gtid_binlog_pos, master_pos, ids))
    if not replica.gtid_executed or not master.gtid_executed:
        return ""
    own_uuid = replica.server_uuid
    uuids = {s.server_uuid for s in chain if s.server_uuid and s.server_uuid != own_uuid} if chain else ()
    return str(mysql_errant(replica.gtid_executed, master.gtid_executed, uuids))


def may_have_errant(replica: InstanceSnapshot, master: InstanceSnapshot) -> bool:
    """The cheap first look (memoised on the position strings): does the replica have anything its
    master's snapshot lacks, counting what may merely be in flight? `errant_gtids` then judges."""
    flavor = replica.flavor
    if flavor is not master.flavor:
        return False
    if flavor is Flavor.MARIADB:
        mine, theirs = replica.gtid_binlog_pos, _mariadb_master_pos(master)
        return bool(mine and theirs and mine != theirs and raw_mariadb_errant(mine, theirs))
    mine, theirs = replica.gtid_executed, master.gtid_executed
    return bool(mine and theirs and mine != theirs and raw_mysql_errant(mine, theirs))


def _mariadb_master_pos(master: InstanceSnapshot) -> str:
    """The master's binlog position, plus its current position when it does not log replicated events."""
    position = master.gtid_binlog_pos
    if not master.log_slave_updates and master.gtid_current_pos:
        return f"{position},{master.gtid_current_pos}" if position else master.gtid_current_pos
    return position
