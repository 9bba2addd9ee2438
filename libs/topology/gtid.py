"""GTID arithmetic for both flavors, pure and cached.

MySQL: a GTID set is `uuid:1-5:7,uuid2:1-3` (8.4 adds tags: `uuid:tag:1-3`); `GtidSet` parses it,
and supports union, subtraction, containment, counting and canonical formatting. Errant transactions on
a replica are `replica_executed - master_executed`.

MariaDB: a position is comma-separated `domain-server-seq` triples. `gtid_binlog_pos` lists one per
(domain, server_id) pair that wrote to the binlog; `gtid_current_pos` / `gtid_slave_pos` one per domain.
With `gtid_strict_mode`, seq numbers only grow within a domain, so "who is ahead" is a per-domain seq
comparison, and a GTID in a replica's binlog that the master's binlog position does not cover for the
same (domain, server_id) is one the master never saw: errant.

Parsing is memoised (snapshots repeat the same strings on every analysis pass); results are immutable.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from libs.models import Flavor

Interval = tuple[int, int]  # inclusive [start, end]


def _normalise(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    """Sort and merge overlapping or adjacent intervals."""
    merged: list[list[int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple((a, b) for a, b in merged)


def _subtract(left: tuple[Interval, ...], right: tuple[Interval, ...]) -> tuple[Interval, ...]:
    out: list[Interval] = []
    j = 0
    for start, end in left:
        cur = start
        while j < len(right) and right[j][1] < cur:
            j += 1
        k = j
        while k < len(right) and right[k][0] <= end and cur <= end:
            r_start, r_end = right[k]
            if r_start > cur:
                out.append((cur, r_start - 1))
            cur = max(cur, r_end + 1)
            k += 1
        if cur <= end:
            out.append((cur, end))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class GtidSet:
    """An immutable MySQL GTID set. Keys are `uuid` or `uuid:tag` (lowercase); intervals are merged."""

    items: tuple[tuple[str, tuple[Interval, ...]], ...] = ()

    @classmethod
    def parse(cls, text: str) -> GtidSet:
        """Parse `gtid_executed` text (whitespace and newlines allowed). Raises ValueError on nonsense."""
        return _parse_mysql(text)

    @classmethod
    def from_mapping(cls, sets: Mapping[str, Iterable[Interval]]) -> GtidSet:
        items = []
        for key in sorted(sets):
            intervals = _normalise(sets[key])
            if intervals:
                items.append((key, intervals))
        return cls(tuple(items))

    def as_dict(self) -> dict[str, tuple[Interval, ...]]:
        return dict(self.items)

    @property
    def sources(self) -> frozenset[str]:
        """The source uuids (tags stripped)."""
        return frozenset(key.split(":", 1)[0] for key, _ in self.items)

    def is_empty(self) -> bool:
        return not self.items

    def __bool__(self) -> bool:
        return bool(self.items)

    def count(self) -> int:
        """How many transactions the set holds."""
        return sum(end - start + 1 for _, intervals in self.items for start, end in intervals)

    def union(self, other: GtidSet) -> GtidSet:
        merged = self.as_dict()
        for key, intervals in other.items:
            merged[key] = merged.get(key, ()) + intervals
        return GtidSet.from_mapping(merged)

    def subtract(self, other: GtidSet) -> GtidSet:
        theirs = other.as_dict()
        items = []
        for key, intervals in self.items:
            rest = _subtract(intervals, theirs[key]) if key in theirs else intervals
            if rest:
                items.append((key, rest))
        return GtidSet(tuple(items))

    def contains(self, other: GtidSet) -> bool:
        """True when every transaction of `other` is in this set."""
        return other.subtract(self).is_empty()

    def without_sources(self, uuids: Collection[str]) -> GtidSet:
        """Drop every transaction whose source uuid is in `uuids` (tags included)."""
        lowered = {u.lower() for u in uuids}
        return GtidSet(tuple(item for item in self.items if item[0].split(":", 1)[0] not in lowered))

    __or__ = union
    __sub__ = subtract

    def __ge__(self, other: GtidSet) -> bool:
        return self.contains(other)

    def __le__(self, other: GtidSet) -> bool:
        return other.contains(self)

    def __str__(self) -> str:
        parts = []
        for key, intervals in self.items:
            ranges = ":".join(str(a) if a == b else f"{a}-{b}" for a, b in intervals)
            parts.append(f"{key}:{ranges}")
        return ",".join(parts)


@lru_cache(maxsize=65536)
def _parse_mysql(text: str) -> GtidSet:
    sets: dict[str, list[Interval]] = {}
    for raw in text.replace("\n", "").split(","):
        part = raw.strip()
        if not part:
            continue
        fields = [f.strip() for f in part.split(":")]
        uuid = fields[0].lower()
        if len(uuid.replace("-", "")) != 32:
            raise ValueError(f"bad GTID source uuid in {part!r}")
        key = uuid
        if len(fields) < 2:
            raise ValueError(f"GTID set entry without intervals: {part!r}")
        for field in fields[1:]:
            if not field:
                raise ValueError(f"empty GTID interval in {part!r}")
            if not field[0].isdigit():
                key = f"{uuid}:{field.lower()}"  # a tag: following intervals belong to it
                continue
            start_text, _, end_text = field.partition("-")
            if not start_text.isdigit() or (end_text and not end_text.isdigit()):
                raise ValueError(f"bad GTID interval {field!r}")
            start, end = int(start_text), int(end_text or start_text)
            if start < 1 or end < start:
                raise ValueError(f"bad GTID interval {field!r}")
            sets.setdefault(key, []).append((start, end))
    return GtidSet.from_mapping(sets)


def mysql_errant(
    replica_executed: str, master_executed: str, ignore_sources: Collection[str] = ()
) -> GtidSet:
    """Transactions the replica executed that its master has not: `replica - master`.

    `ignore_sources` drops transactions originated by those server uuids (the replication chain above
    the replica): their writes reach the replica only through the master, so a difference there is the
    two snapshots being taken at different moments, not an errant transaction.
    """
    if replica_executed == master_executed:
        return GtidSet()
    errant = raw_mysql_errant(replica_executed, master_executed)
    return errant.without_sources(ignore_sources) if errant and ignore_sources else errant


@lru_cache(maxsize=65536)
def raw_mysql_errant(replica: str, master: str) -> GtidSet:
    """`replica - master`, memoised (snapshots repeat the same strings pass after pass)."""
    return GtidSet.parse(replica) - GtidSet.parse(master)


class MariadbGtid(NamedTuple):
    domain: int
    server_id: int
    seq: int

    def __str__(self) -> str:
        return f"{self.domain}-{self.server_id}-{self.seq}"


@lru_cache(maxsize=65536)
def parse_mariadb(text: str) -> tuple[MariadbGtid, ...]:
    """Parse a MariaDB GTID position (`0-1-100,1-2-7`). Raises ValueError on nonsense."""
    out = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        fields = part.split("-")
        if len(fields) != 3 or not all(f.isdigit() for f in fields):
            raise ValueError(f"bad MariaDB GTID {part!r}")
        out.append(MariadbGtid(int(fields[0]), int(fields[1]), int(fields[2])))
    return tuple(out)


def mariadb_domain_seqs(position: str) -> dict[int, int]:
    """The highest seq per domain in a position (binlog_pos may list several servers per domain)."""
    seqs: dict[int, int] = {}
    for gtid in parse_mariadb(position):
        if gtid.seq > seqs.get(gtid.domain, -1):
            seqs[gtid.domain] = gtid.seq
    return seqs


def mariadb_compare(a: str, b: str, domains: Collection[int] | None = None) -> int | None:
    """1 if `a` is ahead of `b`, -1 if behind, 0 if level, None if ahead in one domain and behind in another.

    Only `domains` are compared when given (the replication domains); a missing domain counts as seq 0.
    """
    seq_a, seq_b = mariadb_domain_seqs(a), mariadb_domain_seqs(b)
    keys = set(domains) if domains is not None else set(seq_a) | set(seq_b)
    ahead = behind = False
    for domain in keys:
        x, y = seq_a.get(domain, 0), seq_b.get(domain, 0)
        ahead |= x > y
        behind |= x < y
    if ahead and behind:
        return None
    return 1 if ahead else -1 if behind else 0


def mariadb_contains(a: str, b: str, domains: Collection[int] | None = None) -> bool:
    """True when `a` is at or past `b` in every (given) domain."""
    return mariadb_compare(a, b, domains) in (0, 1)


def mariadb_errant(
    replica_binlog_pos: str, master_pos: str, ignore_server_ids: Collection[int] = ()
) -> list[str]:
    """GTIDs in the replica's binlog that the master never had, as `domain-server-seq` strings.

    `master_pos` should be the master's `gtid_binlog_pos` (one entry per (domain, server_id)); it may be
    joined with its `gtid_current_pos` by a comma (entries combine by maximum). A replica entry is errant
    when the master has no entry for its (domain, server_id), or a lower seq there. `ignore_server_ids`
    are the replication chain above the replica (see `mysql_errant`).
    """
    if replica_binlog_pos == master_pos:
        return []
    errant = raw_mariadb_errant(replica_binlog_pos, master_pos)
    return [str(g) for g in errant if g.server_id not in ignore_server_ids]


@lru_cache(maxsize=65536)
def raw_mariadb_errant(replica: str, master: str) -> tuple[MariadbGtid, ...]:
    """Replica entries the master's position does not cover, with no chain ignored; memoised."""
    seen: dict[tuple[int, int], int] = {}
    for gtid in parse_mariadb(master):
        key = (gtid.domain, gtid.server_id)
        seen[key] = max(seen.get(key, -1), gtid.seq)
    return tuple(
        gtid for gtid in parse_mariadb(replica) if gtid.seq > seen.get((gtid.domain, gtid.server_id), -1)
    )


def gtid_compare(a: str, b: str, flavor: Flavor, domains: Collection[int] | None = None) -> int | None:
    """1: `a` holds everything `b` does and more; -1: the reverse; 0: equal; None: each has something new.

    MySQL compares sets (subset relations); MariaDB compares seq per domain (`domains` restricts it).
    """
    if flavor is Flavor.MARIADB:
        return mariadb_compare(a, b, domains)
    set_a, set_b = GtidSet.parse(a), GtidSet.parse(b)
    a_has_more, b_has_more = not (set_a - set_b).is_empty(), not (set_b - set_a).is_empty()
    if a_has_more and b_has_more:
        return None
    return 1 if a_has_more else -1 if b_has_more else 0


def more_up_to_date(a: str, b: str, flavor: Flavor, domains: Collection[int] | None = None) -> bool:
    """Is `a` strictly more up to date than `b`? The ordering candidate choice ranks replicas by.

    Comparable positions are ordered by containment. Diverged ones (each has something the other lacks)
    fall back to volume: MySQL by transaction count, MariaDB by the sum of per-domain seq differences.
    """
    cmp = gtid_compare(a, b, flavor, domains)
    if cmp is not None:
        return cmp == 1
    if flavor is Flavor.MARIADB:
        seq_a, seq_b = mariadb_domain_seqs(a), mariadb_domain_seqs(b)
        keys = set(domains) if domains is not None else set(seq_a) | set(seq_b)
        return sum(seq_a.get(d, 0) - seq_b.get(d, 0) for d in keys) > 0
    return GtidSet.parse(a).count() > GtidSet.parse(b).count()
