"""What a replica *holds* from its upstream: what candidate choice ranks replicas of a dead master by.

A replica holds what it applied plus what its IO thread received and its SQL thread has not applied
yet (its relay log): once the relay log is applied, that is what it has. Ranking by what is applied now
would let a replica that received more but applied less lose, and with it the transactions no other
replica got.

Errant transactions (what the replica has that the failed master never had: `errant.py`) are not held
*from upstream*: they are taken out before any comparison, so they never count as progress, and a
replica is never "ahead" of a source by its errant transactions alone.

Per flavor:
- MySQL: applied = `gtid_executed`; received = `Retrieved_Gtid_Set`; held = their union.
- MariaDB: applied = `gtid_slave_pos` (replicated transactions only; `gtid_current_pos` when empty);
  received = `Gtid_IO_Pos`; held = the higher seq of the two per domain. Entries of a (domain, server)
  pair found errant in its binlog position are dropped from both.
- Without GTIDs: coordinates in the shared master's binlog: applied = `Relay_Master_Log_File`:
  `Exec_Master_Log_Pos`, held = `Master_Log_File`:`Read_Master_Log_Pos`.
A replica whose SQL thread stopped with an error cannot apply its relay log: it holds what it applied.

Pure and cheap: one `Holding` per replica per choice; the GTID parsing underneath is memoised.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from libs.models import Flavor, InstanceKey, InstanceSnapshot
from libs.topology.errant import errant_gtids
from libs.topology.gtid import GtidSet, MariadbGtid, gtid_compare, more_up_to_date, parse_mariadb

Coordinates = tuple[str, int]


def applied_position(info: InstanceSnapshot) -> str:
    """What the replica has applied, in its flavor's GTID text. MariaDB: `gtid_slave_pos`, which counts
    only replicated transactions (`gtid_current_pos` would rank its own local writes as progress)."""
    if info.flavor is Flavor.MARIADB:
        return info.gtid_slave_pos or info.gtid_current_pos
    return info.gtid_executed or (info.replication.executed_gtid_set if info.replication else "")


def received_position(info: InstanceSnapshot) -> str:
    """What the IO thread has received: `Gtid_IO_Pos` (MariaDB), `Retrieved_Gtid_Set` (MySQL)."""
    replication = info.replication
    if replication is None:
        return ""
    return replication.gtid_io_pos if info.flavor is Flavor.MARIADB else replication.retrieved_gtid_set


def sql_error(info: InstanceSnapshot) -> str | None:
    """The SQL thread's error (`Last_SQL_Errno` ≠ 0, or stopped with an error text), else None."""
    replication = info.replication
    if replication is None:
        return None
    if replication.last_sql_errno or (not replication.sql_running and replication.last_sql_error):
        text = replication.last_sql_error or "no message"
        return f"{replication.last_sql_errno}: {text}" if replication.last_sql_errno else text
    return None


@dataclass(frozen=True, slots=True)
class Holding:
    """One replica's data as candidate choice sees it. GTID texts are canonical and errant-free; None
    means the server's text did not parse (coordinates decide then)."""

    key: InstanceKey
    flavor: Flavor | None
    master: InstanceKey | None
    applied: str | None
    held: str | None
    applied_at: Coordinates | None
    held_at: Coordinates | None
    errant: str  # "" when none or when it cannot be judged
    applying: bool  # the SQL thread runs without error: it goes on applying its relay log
    stuck: str | None  # the SQL error that keeps its relay log from being applied

    @property
    def drained(self) -> bool:
        """Nothing received is left to apply (GTIDs when known, else coordinates)."""
        gtids = self.applied is not None and self.held is not None and bool(self.applied or self.held)
        if self.flavor is not None and gtids:
            return self.applied == self.held
        return self.applied_at == self.held_at

    def will_have(self) -> tuple[str | None, Coordinates | None]:
        """What it may have applied by the time it is repointed: everything held while its SQL thread
        runs, else only what it applied (repointing throws the relay log away)."""
        return (self.held, self.held_at) if self.applying else (self.applied, self.applied_at)


def _mariadb_upstream(positions: Iterable[str], errant: str) -> str:
    drop = {(g.domain, g.server_id) for g in parse_mariadb(errant)}
    best: dict[int, MariadbGtid] = {}
    for text in positions:
        for gtid in parse_mariadb(text):
            if (gtid.domain, gtid.server_id) in drop:
                continue
            if gtid.domain not in best or gtid.seq > best[gtid.domain].seq:
                best[gtid.domain] = gtid
    return ",".join(str(best[d]) for d in sorted(best))


def _mysql_upstream(positions: Iterable[str], errant: str) -> str:
    held = GtidSet()
    for text in positions:
        held = held | GtidSet.parse(text)
    return str(held - GtidSet.parse(errant)) if errant else str(held)


def _upstream(flavor: Flavor | None, positions: Sequence[str], errant: str) -> str | None:
    try:
        if flavor is Flavor.MARIADB:
            return _mariadb_upstream(positions, errant)
        return _mysql_upstream(positions, errant)
    except ValueError:
        return None


def judged_errant(info: InstanceSnapshot, master: InstanceSnapshot, chain: Sequence[InstanceSnapshot]) -> str:
    """`errant_gtids`, "" when a position does not parse (it cannot be judged)."""
    try:
        return errant_gtids(info, master, chain)
    except ValueError:
        return ""


def holding(
    info: InstanceSnapshot, master: InstanceSnapshot | None = None, chain: Sequence[InstanceSnapshot] = ()
) -> Holding:
    """`info`'s holding. With the failed `master`'s last snapshot (and `chain`, the master and the
    servers above it, as `errant_gtids` takes it), its errant transactions are found and left out."""
    errant = judged_errant(info, master, chain or (master,)) if master is not None else ""
    replication = info.replication
    stuck = sql_error(info)
    applied_text = applied_position(info)
    received_text = "" if stuck else received_position(info)
    applied_at = held_at = None
    if replication is not None:
        if replication.relay_master_log_file:
            applied_at = (replication.relay_master_log_file, replication.exec_master_log_pos)
        held_at = applied_at
        if replication.read_master_log_file and not stuck:
            held_at = (replication.read_master_log_file, replication.read_master_log_pos)
    return Holding(
        key=info.key,
        flavor=info.flavor,
        master=info.master_key,
        applied=_upstream(info.flavor, (applied_text,), errant),
        held=_upstream(info.flavor, (applied_text, received_text), errant),
        applied_at=applied_at,
        held_at=held_at,
        errant=errant,
        applying=replication is not None and replication.sql_running and stuck is None,
        stuck=stuck,
    )


def _compare(
    a: Holding,
    a_gtid: str | None,
    a_at: Coordinates | None,
    b: Holding,
    b_gtid: str | None,
    b_at: Coordinates | None,
) -> int | None:
    """1: `a` holds all `b` does and more; -1: the reverse; 0: level or not comparable; None: diverged.
    GTIDs when both parse in one flavor and either has any, else coordinates in a shared master's binlog."""
    flavor = a.flavor if a.flavor is b.flavor else None
    if flavor is not None and a_gtid is not None and b_gtid is not None and (a_gtid or b_gtid):
        return gtid_compare(a_gtid, b_gtid, flavor)
    return _coordinates_cmp(a, a_at, b, b_at)


def _coordinates_cmp(a: Holding, a_at: Coordinates | None, b: Holding, b_at: Coordinates | None) -> int:
    if a.master is None or a.master != b.master or a_at is None or b_at is None:
        return 0
    return (a_at > b_at) - (a_at < b_at)


def compare_held(a: Holding, b: Holding) -> int | None:
    """Compare what two replicas hold (see `_compare`)."""
    return _compare(a, a.held, a.held_at, b, b.held, b.held_at)


def compare_applied(a: Holding, b: Holding) -> int | None:
    """Compare what two replicas have applied (their relay logs aside)."""
    return _compare(a, a.applied, a.applied_at, b, b.applied, b.applied_at)


def holds(source: Holding, replica: Holding, *, applied_only: bool = False) -> bool:
    """Can `replica` be repointed under a master holding `source`'s data without having applied a
    transaction it lacks? Counts what the replica may apply before it is repointed (`will_have`), or
    only what it has applied. Errant transactions of the replica do not count: they stay where they are."""
    gtid, at = (replica.applied, replica.applied_at) if applied_only else replica.will_have()
    return _compare(source, source.held, source.held_at, replica, gtid, at) in (0, 1)


def ahead_on_applied(a: Holding, b: Holding) -> bool:
    """Is `a` ahead of everything `b` holds on what `a` has applied alone (its relay log aside)?"""
    return _compare(a, a.applied, a.applied_at, b, b.held, b.held_at) == 1


def ahead(a: Holding, b: Holding) -> bool:
    """Does `a` rank strictly ahead of `b`? It holds more; if they diverged, more by volume (MySQL
    transactions, MariaDB seq); if level, the one without errant transactions; then the one further in
    the shared master's binlog."""
    cmp = compare_held(a, b)
    if cmp is None:
        try:
            flavor = a.flavor or Flavor.MYSQL
            return a.held is not None and b.held is not None and more_up_to_date(a.held, b.held, flavor)
        except ValueError:
            return False
    if cmp != 0:
        return cmp == 1
    if bool(a.errant) != bool(b.errant):
        return not a.errant
    return _coordinates_cmp(a, a.held_at, b, b.held_at) == 1


def rank(holdings: Sequence[Holding]) -> dict[InstanceKey, int]:
    """0 for the replicas holding the most, higher further behind; level replicas share a rank. A round
    robin of `ahead` (rank = wins of the best minus own wins) stays a total, deterministic order even
    when positions have diverged and the pairwise relation stops being transitive."""
    wins = {h.key: sum(ahead(h, other) for other in holdings) for h in holdings}
    best = max(wins.values(), default=0)
    return {key: best - n for key, n in wins.items()}
