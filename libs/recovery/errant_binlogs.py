"""`locate-gtid-errant`: which of an instance's binary logs hold its errant transactions.

orchestrator reads each binary log's `Previous_gtids` event and reports the logs where errant GTIDs
appear (`inst.LocateErrantGTID`). Baton does the same on both flavors: every binary log starts with
the GTID state of everything logged before it (MySQL `Previous_gtids`, a GTID set; MariaDB `Gtid_list`,
the last seq per (domain, server_id)), so a log holds a transaction exactly when the state before it
lacks the transaction and the state after it (the next log's header, or the server's current position
for the last log) has it. Only the first events of each log are read, never a whole log.

The decision (`locate_mysql`, `locate_mariadb`) is pure and table-tested; `read_binlog_headers` is the
I/O, through the recovery leader's fenced read-only session. Why the leader: the API never connects to
MySQL (architecture.md), and the leader holds the topology credentials, a bounded connection pool and
the fleet memory that says what the instance's master and upstream chain are.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from libs.models import Flavor, InstanceSnapshot
from libs.models.operator import CommandReply, CommandRequest, CommandStatus
from libs.mysql.fenced import FencedSession
from libs.recovery.manual import Operations
from libs.topology.errant_view import errant_of, upstream_chain
from libs.topology.gtid import GtidSet, parse_mariadb

PURGED = "locate-errant-gtid: {gtids} is already purged on {key}"  # orchestrator's words
NONE = "locate-errant-gtid: no errant-gtid on {key}"


class ErrantPurged(ValueError):
    """Some errant transactions are older than the first binary log still on the server."""


@dataclass(frozen=True)
class BinlogHeader:
    """One binary log and the GTID state its header records (before its own transactions)."""

    name: str
    previous: str  # MySQL: a GTID set; MariaDB: `d-s-n,...` (the Gtid_list)


# -- MySQL -------------------------------------------------------------------------------------------


def _intersect(a: GtidSet, b: GtidSet) -> GtidSet:
    return a - (a - b)


def locate_mysql(errant: str, headers: Sequence[BinlogHeader], executed: str) -> list[str]:
    """The logs holding any of the `errant` GTID set; ErrantPurged when some are in no log any more."""
    wanted = GtidSet.parse(errant)
    if not wanted or not headers:
        return []
    purged = _intersect(wanted, GtidSet.parse(headers[0].previous))
    if purged:
        raise ErrantPurged(str(purged))
    found = []
    for i, header in enumerate(headers):
        after = GtidSet.parse(headers[i + 1].previous if i + 1 < len(headers) else executed)
        if _intersect(after - GtidSet.parse(header.previous), wanted):
            found.append(header.name)
    return found


# -- MariaDB -----------------------------------------------------------------------------------------

Ranges = dict[tuple[int, int], tuple[int, int]]  # (domain, server_id) -> (lo, hi]: errant seqs


def mariadb_errant_ranges(
    replica_binlog_pos: str, master_pos: str, ignore_server_ids: Collection[int]
) -> Ranges:
    """Per (domain, server_id), the errant seqs (lo, hi]: past the master's last seq of that pair (or
    all of them when the master has none) up to the replica's (the rule of `gtid.mariadb_errant`)."""
    seen: dict[tuple[int, int], int] = {}
    for g in parse_mariadb(master_pos):
        seen[(g.domain, g.server_id)] = max(seen.get((g.domain, g.server_id), -1), g.seq)
    out: Ranges = {}
    for g in parse_mariadb(replica_binlog_pos):
        pair = (g.domain, g.server_id)
        lo = seen.get(pair, -1)
        if g.seq > lo and g.server_id not in ignore_server_ids:
            out[pair] = (lo, g.seq)
    return out


def _state(position: str) -> dict[tuple[int, int], int]:
    return {(g.domain, g.server_id): g.seq for g in parse_mariadb(position.strip("[] "))}


def locate_mariadb(ranges: Ranges, headers: Sequence[BinlogHeader], binlog_pos: str) -> list[str]:
    """The logs holding any errant seq; ErrantPurged when some were logged before the first log kept."""
    if not ranges or not headers:
        return []
    first = _state(headers[0].previous)
    purged = [
        f"{d}-{s}-{min(hi, first[(d, s)])}"
        for (d, s), (lo, hi) in ranges.items()
        if first.get((d, s), -1) > lo
    ]
    if purged:
        raise ErrantPurged(",".join(sorted(purged)))
    found = []
    for i, header in enumerate(headers):
        before = _state(header.previous)
        after = _state(headers[i + 1].previous if i + 1 < len(headers) else binlog_pos)
        for pair, (lo, hi) in ranges.items():
            start, end = before.get(pair, -1), after.get(pair, -1)
            if end > start and start < hi and end > lo:  # (start, end] meets (lo, hi]
                found.append(header.name)
                break
    return found


def locate(
    replica: InstanceSnapshot, chain: Sequence[InstanceSnapshot], headers: Sequence[BinlogHeader]
) -> list[str]:
    """The binlogs of `replica` holding its errant transactions (chain[0] is its master)."""
    if not chain:
        return []
    if replica.flavor is Flavor.MARIADB:
        master = chain[0]
        master_pos = master.gtid_binlog_pos
        if not master.log_slave_updates and master.gtid_current_pos:
            master_pos = f"{master_pos},{master.gtid_current_pos}" if master_pos else master.gtid_current_pos
        own = replica.server_id
        ids = {s.server_id for s in chain if s.server_id is not None and s.server_id != own}
        ranges = mariadb_errant_ranges(replica.gtid_binlog_pos, master_pos, ids)
        return locate_mariadb(ranges, headers, replica.gtid_binlog_pos)
    return locate_mysql(errant_of(replica, chain), headers, replica.gtid_executed)


# -- I/O ---------------------------------------------------------------------------------------------

_HEADER_EVENTS = {Flavor.MARIADB: "Gtid_list", Flavor.MYSQL: "Previous_gtids"}


async def read_binlog_headers(session: FencedSession, flavor: Flavor) -> list[BinlogHeader]:
    """Every binary log of the server and the GTID state in its header (its first few events)."""
    logs = await session.read("SHOW BINARY LOGS", what="SHOW BINARY LOGS")
    wanted = _HEADER_EVENTS[flavor]
    headers = []
    for row in logs:
        name = str(row.get("Log_name", ""))
        events = await session.read(
            "SHOW BINLOG EVENTS IN %s LIMIT 4", (name,), what=f"SHOW BINLOG EVENTS IN {name}"
        )
        info = next((str(e.get("Info") or "") for e in events if e.get("Event_type") == wanted), "")
        headers.append(BinlogHeader(name, info.replace("\n", "")))
    return headers


async def locate_command(ops: Operations, req: CommandRequest) -> CommandReply:
    """The leader's answer to `locate-gtid-errant` (read-only: fenced reads, nothing written).

    The instance and its upstream chain are probed afresh, so the errant set is judged on the same
    moment's state that the binlog headers are read in. Details: the binlog names (orchestrator's).
    """
    key = req.instance
    if key is None:
        return CommandReply(status=CommandStatus.BAD_REQUEST, message=f"{req.verb}: instance missing")
    c = ops.pipeline.c
    known = c.known()
    if key not in known:
        return CommandReply(status=CommandStatus.NOT_FOUND, message=f"instance {key} not found")
    chain_keys = upstream_chain(key, known)
    fresh = await c.probe([key, *chain_keys])
    replica = fresh.get(key)
    if replica is None or not replica.reachable:
        why = replica.error if replica is not None else "no answer"
        return CommandReply(status=CommandStatus.FAILED, message=f"{req.verb}: cannot read {key}: {why}")
    chain = [s for s in (fresh.get(k) for k in chain_keys) if s is not None and s.reachable]
    if not chain_keys or not chain or chain[0].key != chain_keys[0]:
        master = chain_keys[0] if chain_keys else None
        message = (
            NONE.format(key=key)
            if master is None
            else f"{req.verb}: cannot read the master {master} of {key}"
        )
        return CommandReply(status=CommandStatus.REFUSED, message=message)
    errant = errant_of(replica, chain)
    if not errant:
        return CommandReply(status=CommandStatus.REFUSED, message=NONE.format(key=key))
    executor = c.executor
    pool, creds = getattr(executor, "pool", None), getattr(executor, "creds", None)
    if pool is None or creds is None:
        return CommandReply(
            status=CommandStatus.FAILED, message=f"{req.verb}: this leader cannot read binary logs"
        )
    session = FencedSession(pool, key, creds, ops.fence, c.options.statement_timeout_s)
    flavor = replica.flavor or Flavor.MYSQL
    headers = await read_binlog_headers(session, flavor)
    try:
        found = locate(replica, chain, headers)
    except ErrantPurged as exc:
        return CommandReply(status=CommandStatus.REFUSED, message=PURGED.format(gtids=exc, key=key))
    return CommandReply(status=CommandStatus.OK, message="located errant GTID", details=found)
